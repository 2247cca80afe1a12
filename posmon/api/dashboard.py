"""The operator's dashboard: a static page at ``/`` and a live status feed at ``GET /api/stream``.

The page (``posmon/api/static/``: one HTML file, one script, one stylesheet, no build step, nothing vendored)
carries no data, so it is public like a login page; everything it shows comes from the API with the same bearer
token as any client, which the page asks for (or reads from ``#token=...``) and keeps in sessionStorage. Its
Content-Security-Policy allows only this origin, so the page itself cannot be made to send data elsewhere.

The feed is server-sent events over a plain streaming GET: the page needs one direction only, and it reads the
stream with ``fetch()`` because ``EventSource`` cannot send an ``Authorization`` header. Each stream polls
``Control.status()`` at most every ``interval`` seconds (less often when a status read is slow: a large book)
and sends the report when it differs from the last one sent (``event: status``), else a comment line every
``heartbeat`` seconds. A stream ends by itself after
``max_seconds`` (below the server's read timeout, which would otherwise cut it) with ``event: reconnect``; the
page then opens the next one at once. It ends on a client disconnect (a task in the stream's own nursery waits
for it) and with the daemon, whose cancellation reaches it through the server's nursery (it then sends
``event: end``, shielded for at most a second): no task outlives its request. At most ``max_streams`` are open
at once; more answer 503 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

import orjson
import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from posmon.api.serialize import to_jsonable
from posmon.api.server import READ_TIMEOUT_SECONDS
from posmon.control import Control, ControlError

log = logging.getLogger(__name__)

# path -> (file under static/, content type)
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STREAM_INTERVAL_SECONDS = 1.0
STREAM_HEARTBEAT_SECONDS = 10.0
STREAM_MAX_SECONDS = READ_TIMEOUT_SECONDS - 5.0  # hypercorn drops a connection whose client sends nothing that long
MAX_STREAMS = 8
STATUS_SHARE_DIVISOR = 10  # a stream waits at least 9x as long as its last status read took
STATUS_TIMEOUT_SECONDS = 5.0  # a status that takes longer ends the stream (the page reconnects)
FINISH_SECONDS = 1.0  # for the last event and the end of the body

Handler = Callable[[Request], Awaitable[Response]]


def static_file(name: str) -> bytes:
    return resources.files("posmon.api").joinpath("static", name).read_bytes()


def page_handlers() -> dict[str, Handler]:
    """``path -> handler`` for the page's files, read once here (they are package data)."""

    def handler(body: bytes, media_type: str) -> Handler:
        async def serve(_request: Request) -> Response:
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

        return serve

    return {path: handler(static_file(name), media) for path, (name, media) in PAGES.items()}


@dataclass(slots=True)
class StreamSettings:
    interval: float = STREAM_INTERVAL_SECONDS
    heartbeat: float = STREAM_HEARTBEAT_SECONDS
    max_seconds: float = STREAM_MAX_SECONDS
    max_streams: int = MAX_STREAMS


class StatusFeed:
    """``GET /api/stream``: admission (at most ``max_streams`` at once) and one ``EventStream`` per request."""

    def __init__(self, control: Control, settings: StreamSettings | None = None) -> None:
        self._control = control
        self.settings = settings or StreamSettings()
        self.open_streams = 0

    async def stream(self, _request: Request) -> Response:
        if self.open_streams >= self.settings.max_streams:
            raise ControlError(
                f"{self.open_streams} live streams are open already; retry shortly", status=503, retry_after=5.0
            )
        self.open_streams += 1  # given back when the stream's response ends, however it ends
        return EventStream(self)

    async def pump(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Send status events until ``max_seconds`` are up or the daemon stops; the caller bounds and cancels it."""
        s = self.settings
        await send(f"retry: {math.ceil(s.interval * 1000)}\n\n".encode())
        last: bytes | None = None
        quiet_since = trio.current_time()
        while True:
            began = trio.current_time()
            with trio.fail_after(STATUS_TIMEOUT_SECONDS):
                report = await self._control.status()
            cost = trio.current_time() - began
            payload = to_jsonable(report)
            compared = orjson.dumps({k: v for k, v in payload.items() if k != "now"})
            if compared != last:
                await send(b"event: status\ndata: " + orjson.dumps(payload) + b"\n\n")
                last, quiet_since = compared, trio.current_time()
            elif trio.current_time() - quiet_since >= s.heartbeat:
                await send(b": heartbeat\n\n")
                quiet_since = trio.current_time()
            if not report.running:
                await send(b"event: end\ndata: {}\n\n")
                return
            # A status reads every open tranche from the store: on a large book that is real work on the
            # daemon's one thread, so the feed spends at most 1/STATUS_SHARE_DIVISOR of the loop on it.
            await trio.sleep(max(s.interval, cost * (STATUS_SHARE_DIVISOR - 1)))


class EventStream(Response):
    """One ``text/event-stream`` answer; its ASGI call returns when the stream ends, with no task left behind."""

    media_type = "text/event-stream"

    def __init__(self, feed: StatusFeed) -> None:  # no body: Response.__init__ would add Content-Length: 0
        self.status_code = 200
        self.background = None
        self._feed = feed
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self._feed

        async def chunk(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        async def finish(event: bytes) -> None:
            """The last event and the end of the body, bounded: a client that reads nothing must not hold on."""
            with trio.move_on_after(FINISH_SECONDS):
                if event:
                    await chunk(event)
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        ended_by_client = finished = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            with trio.move_on_after(feed.settings.max_seconds) as lifetime:
                async with trio.open_nursery() as nursery:

                    async def until_disconnect() -> None:
                        nonlocal ended_by_client
                        while (await receive())["type"] != "http.disconnect":
                            pass
                        ended_by_client = True
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(until_disconnect)
                    try:
                        await feed.pump(chunk)
                    except trio.TooSlowError:
                        log.warning("live stream: the status took over %g s; ending it", STATUS_TIMEOUT_SECONDS)
                    except Exception:
                        log.exception("live stream failed; ending it (the page opens another)")
                    nursery.cancel_scope.cancel()
            if not ended_by_client:
                await finish(b"event: reconnect\ndata: {}\n\n" if lifetime.cancelled_caught else b"")
            finished = True
        finally:
            # Cancelled from outside (the daemon or its server shutting down; trio may raise it inside an
            # exception group): say so before the connection goes.
            if not (finished or ended_by_client):
                with trio.CancelScope(shield=True):
                    await finish(b"event: end\ndata: {}\n\n")
            feed.open_streams -= 1
