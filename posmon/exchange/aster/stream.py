"""Aster websocket streams as ``FrameStream``s: the mark-price stream and the user-data stream.

Both hand raw bytes to the daemon (parsing is the venue's ``parse_*_frame``) and end with ``StreamClosed``
on any disconnect, the venue's routine 24-hour drop included, so the daemon's readers reconnect and, for
the user stream, reconcile against REST. trio-websocket answers the server's pings itself.

The user stream owns its listenKey's life: it creates (or re-fetches) the key, keeps it alive with a PUT
every ``listen_key_keepalive_seconds`` from a task in the context manager's own nursery, and ends the stream
on ``listenKeyExpired`` or a refused keepalive. It deletes nothing on exit: the next connection asks for the
account's key again and gets the same live one back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import trio
from trio_websocket import ConnectionClosed

from posmon.exchange.aster.codec import is_listen_key_expired
from posmon.exchange.aster.rest import AsterRest
from posmon.exchange.errors import OutcomeUnknown, RateLimited, VenueError
from posmon.exchange.venue import FrameStream, StreamClosed
from posmon.exchange.websocket import Connector, WebSocketLike, open_websocket, opening

__all__ = [
    "ALL_MARKS_STREAM",
    "MAX_STREAMS_PER_CONNECTION",
    "Connector",
    "UserDataFrames",
    "WebSocketFrames",
    "WebSocketLike",
    "mark_price_path",
    "open_mark_price_stream",
    "open_user_data_stream",
    "open_websocket",
]

log = logging.getLogger(__name__)

ALL_MARKS_STREAM = "!markPrice@arr@1s"
MAX_STREAMS_PER_CONNECTION = 200
KEEPALIVE_RETRY_SECONDS = 60.0  # after a failed keepalive; the key still has most of its 60 minutes


class WebSocketFrames:
    """``FrameStream`` over one websocket: every message as bytes, ``StreamClosed`` when it closes."""

    def __init__(self, ws: WebSocketLike, what: str) -> None:
        self._ws = ws
        self.what = what

    async def receive(self) -> bytes:
        try:
            message = await self._ws.get_message()
        except ConnectionClosed as exc:
            raise StreamClosed(f"{self.what} closed ({exc.reason})") from exc
        return message.encode() if isinstance(message, str) else message


class UserDataFrames(WebSocketFrames):
    """The user-data stream; also ends on ``listenKeyExpired`` and when its keepalive is refused."""

    def __init__(self, ws: WebSocketLike) -> None:
        super().__init__(ws, "aster user-data stream")
        self._ended: str | None = None

    async def receive(self) -> bytes:
        if self._ended is not None:
            raise StreamClosed(self._ended)
        try:
            frame = await super().receive()
        except StreamClosed:
            if self._ended is not None:
                raise StreamClosed(self._ended) from None
            raise
        if is_listen_key_expired(frame):
            self._ended = "listenKey expired; a new one is needed"
            raise StreamClosed(self._ended)
        return frame

    async def end(self, reason: str) -> None:
        """End the stream from outside (the keepalive): the reader's next ``receive`` raises ``StreamClosed``."""
        self._ended = reason
        await self._ws.aclose(1000, "posmon: listenKey lost")


def mark_price_path(mode: str, symbols: Sequence[str]) -> str:
    """``/stream?streams=<sym>@markPrice@1s/...`` for up to 200 symbols in "symbols" mode, else the all stream."""
    if mode == "symbols" and 0 < len(symbols) <= MAX_STREAMS_PER_CONNECTION:
        return "/stream?streams=" + "/".join(f"{s.lower()}@markPrice@1s" for s in symbols)
    if mode == "symbols" and symbols:
        log.info(
            "aster: %d symbols exceed %d streams per connection; using %s",
            len(symbols),
            MAX_STREAMS_PER_CONNECTION,
            ALL_MARKS_STREAM,
        )
    return f"/ws/{ALL_MARKS_STREAM}"


@asynccontextmanager
async def open_mark_price_stream(
    ws_url: str, mode: str, symbols: Sequence[str], *, handshake_seconds: float, connect: Connector | None = None
) -> AsyncIterator[FrameStream]:
    path = mark_price_path(mode, symbols)
    opener = connect or functools.partial(
        open_websocket, handshake_seconds=handshake_seconds, what="aster mark-price stream"
    )
    async with opening(handshake_seconds, "aster mark-price stream") as opened, opener(ws_url + path) as ws:
        opened.done()
        log.info("aster: mark-price stream connected (%s)", path if len(path) < 120 else f"{len(symbols)} symbols")
        yield WebSocketFrames(ws, "aster mark-price stream")


@asynccontextmanager
async def open_user_data_stream(
    rest: AsterRest,
    ws_url: str,
    *,
    keepalive_seconds: float,
    handshake_seconds: float,
    connect: Connector | None = None,
) -> AsyncIterator[FrameStream]:
    """Create/fetch the listenKey, connect ``/ws/<listenKey>``, keep the key alive while the stream is open."""
    key = await rest.create_listen_key()
    opener = connect or functools.partial(
        open_websocket, handshake_seconds=handshake_seconds, what="aster user-data stream"
    )
    async with opening(handshake_seconds, "aster user-data stream") as opened, opener(f"{ws_url}/ws/{key}") as ws:
        opened.done()
        log.info("aster: user-data stream connected")
        frames = UserDataFrames(ws)
        async with _running(functools.partial(_keep_alive, rest, keepalive_seconds, frames)):
            yield frames


async def _keep_alive(rest: AsterRest, interval: float, frames: UserDataFrames) -> None:
    """PUT the listenKey every ``interval``; retry sooner after a failure, end the stream if it is refused."""
    delay = interval
    while True:
        await trio.sleep(delay)
        try:
            await rest.keepalive_listen_key()
        except (OutcomeUnknown, RateLimited) as exc:
            delay = min(interval, KEEPALIVE_RETRY_SECONDS)
            log.warning("aster: listenKey keepalive failed (%s); retrying in %.0fs", exc, delay)
            continue
        except VenueError as exc:
            log.warning("aster: listenKey keepalive refused (%s); ending the user stream to reconnect", exc)
            await frames.end(f"listenKey keepalive refused: {exc}")
            return
        delay = interval


@asynccontextmanager
async def _running(task: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``task`` in a nursery of our own while the body runs; cancel it when the body ends.

    The body's own exception (``StreamClosed`` above all) comes out bare, not wrapped in an exception group,
    so callers can keep catching it by type.
    """
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        sole = group.exceptions[0] if len(group.exceptions) == 1 else None
        if sole is None or isinstance(sole, BaseExceptionGroup):
            raise
        raise sole  # noqa: B904 -- the group is the context; the exception keeps its own cause
