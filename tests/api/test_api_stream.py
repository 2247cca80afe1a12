"""The dashboard's live feed (``GET /api/stream``) and its page, over a real loopback socket on trio's mock clock.

The feed is read as the page reads it (a streaming GET with the bearer token); the clock jumps, so the pacing,
heartbeat and end-of-stream rules are checked without real waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import orjson
import trio

from posmon.api import ApiSettings, create_app, serve_api
from posmon.api.dashboard import PAGES, StreamSettings
from posmon.domain.orders import Side
from tests.api.test_api_fakes import TOKEN, FakeControl, served, tranche

SETTINGS = StreamSettings(interval=1.0, heartbeat=10.0, max_seconds=25.0, max_streams=2)


@dataclass
class Event:
    kind: str  # "status", "end", "reconnect", "comment", "retry"
    data: dict | None = None
    at: float = 0.0


@dataclass
class Reader:
    """Parses server-sent events off a streaming response, stamping each with trio's (mock) clock."""

    response: httpx.Response
    events: list[Event] = field(default_factory=list)
    _buffer: bytes = b""

    async def next(self) -> Event:
        while b"\n\n" not in self._buffer:
            chunk = await self._chunks.__anext__()
            self._buffer += chunk
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        lines = block.decode().split("\n")
        if lines[0].startswith(":"):
            event = Event("comment")
        elif lines[0].startswith("retry:"):
            event = Event("retry")
        else:
            kind = lines[0].removeprefix("event: ")
            event = Event(kind, orjson.loads(lines[1].removeprefix("data: ")))
        event.at = trio.current_time()
        self.events.append(event)
        return event

    def __post_init__(self) -> None:
        self._chunks = self.response.aiter_raw()


@asynccontextmanager
async def stream(url: str, *, token: str | None = None) -> AsyncIterator[Reader]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("GET", "/api/stream", headers=headers) as response,
    ):
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Reader(response)


def app_for(control: FakeControl, token: str | None = None, settings: StreamSettings = SETTINGS):
    return create_app(control, metrics_render=None, token=token, stream=settings)


async def test_the_stream_sends_the_status_at_once_then_only_changes_and_heartbeats(autojump_clock):
    control = FakeControl()
    async with served(app_for(control)) as url, stream(url) as feed:
        assert (await feed.next()).kind == "retry"
        first = await feed.next()
        async with httpx.AsyncClient(base_url=url) as c:
            status = (await c.get("/api/monitor/status")).json()
        assert first.kind == "status"
        assert {k: v for k, v in first.data.items() if k != "now"} == {k: v for k, v in status.items() if k != "now"}
        assert [t["entry"] for t in first.data["tranches"]] == ["60000.1", "60000.1"]  # exact decimal strings

        quiet = await feed.next()  # nothing changed: a heartbeat 10 s later, not the same status again
        assert (quiet.kind, quiet.at - first.at) == ("comment", 10.0)

        control.tranches.append(tranche(3, Side.SHORT, "ETHUSDT"))
        changed = await feed.next()
        assert changed.kind == "status" and [t["id"] for t in changed.data["tranches"]] == [1, 2, 3]
        assert changed.at - quiet.at <= SETTINGS.interval  # a change is seen within one interval


async def test_the_stream_ends_with_reconnect_after_its_lifetime_and_end_when_the_daemon_stops(autojump_clock):
    control = FakeControl()
    async with served(app_for(control)) as url:
        async with stream(url) as feed:
            kinds = []
            while not kinds or kinds[-1] not in ("reconnect", "end"):
                kinds.append((await feed.next()).kind)
            assert kinds[-1] == "reconnect" and feed.events[-1].at - feed.events[0].at == SETTINGS.max_seconds

        async with stream(url) as feed:
            await feed.next()
            await feed.next()
            control.running = False
            assert (await feed.next()).kind == "status"  # the report that says so
            assert (await feed.next()).kind == "end"
            assert [chunk async for chunk in feed._chunks] == []  # and the response is complete


async def test_a_disconnected_client_frees_its_stream_and_beyond_the_limit_the_answer_is_503(autojump_clock):
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as client:
        async with stream(url) as a, stream(url) as b:
            await a.next()
            await b.next()
            third = await client.get("/api/stream")
            assert third.status_code == 503 and third.headers["retry-after"] == "5"
        # Both clients went away: their streams end (their tasks too) and give their slots back.
        with trio.fail_after(5):
            while True:
                await trio.sleep(0.5)
                async with client.stream("GET", "/api/stream") as again:
                    if again.status_code == 200:
                        break
        await trio.sleep(SETTINGS.interval * 2)  # the last one noticed its client leave
        calls = len(control.calls)
        await trio.sleep(10)  # and no stream is left polling the daemon
        assert len(control.calls) == calls


async def test_the_stream_needs_the_bearer_token_and_the_page_does_not(autojump_clock):
    control = FakeControl()
    async with served(app_for(control, token=TOKEN), token=TOKEN) as url, httpx.AsyncClient(base_url=url) as c:
        refused = await c.get("/api/stream")
        assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
        async with stream(url, token=TOKEN) as feed:
            await feed.next()
            assert (await feed.next()).kind == "status"
        for path in PAGES:
            page = await c.get(path)
            assert page.status_code == 200 and "60000.1" not in page.text  # the shell carries no data
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert page.headers["x-content-type-options"] == "nosniff"
        assert control.mutations() == []


async def test_the_page_refuses_a_foreign_host_like_every_endpoint(autojump_clock):
    async with served(app_for(FakeControl())) as url, httpx.AsyncClient(base_url=url) as c:
        page = await c.get("/", headers={"Host": "attacker.example"})
        assert page.status_code == 403 and page.json()["field"] == "Host"
        feed = await c.get("/api/stream", headers={"Origin": "http://attacker.example"})
        assert feed.status_code == 403 and feed.json()["field"] == "Origin"


async def test_the_stream_says_end_and_closes_when_the_daemon_shuts_down(autojump_clock):
    control = FakeControl()
    server = trio.CancelScope()

    async def serve(task_status=trio.TASK_STATUS_IGNORED):
        with server:
            await serve_api(app_for(control), ApiSettings(host="127.0.0.1", port=0), task_status=task_status)

    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve)
        async with stream(url) as feed:
            await feed.next()
            assert (await feed.next()).kind == "status"
            server.cancel()  # as the daemon's shutdown cancels its API server
            assert (await feed.next()).kind == "end"
            assert [chunk async for chunk in feed._chunks] == []
    assert server.cancelled_caught  # the server, stream included, finished within the test


async def test_a_slow_status_read_is_polled_less_often_so_the_feed_never_hogs_the_daemon(autojump_clock):
    """On a large book a status read is real work on the daemon's thread: the feed keeps it to a tenth."""
    from posmon.api.dashboard import StatusFeed

    class SlowStatus(FakeControl):
        async def status(self):
            await trio.sleep(0.5)  # what reading 100,000 tranches costs
            return await super().status()

    control = SlowStatus()
    sent: list[bytes] = []

    async def send(chunk: bytes) -> None:
        sent.append(chunk)

    with trio.move_on_after(30):
        await StatusFeed(control, SETTINGS).pump(send)
    reads = sum(1 for name, _ in control.calls if name == "status")
    # 0.5 s read + 4.5 s wait: 6 reads in 30 s (a fixed 1 s interval would read 20 times, a third of the time)
    assert reads == 6
