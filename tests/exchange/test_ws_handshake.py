"""Opening a stream is bounded as a whole: a handshake answered late or never, a greeting that never comes or a
subscription that cannot be sent ends in ``StreamClosed`` within the handshake time, so the reader reconnects."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from trio_websocket import serve_websocket

from posmon.exchange.lighter.stream import open_lighter_stream
from posmon.exchange.venue import StreamClosed
from posmon.exchange.websocket import open_websocket

HANDSHAKE = 0.5
LATE = 1.0  # after trio-websocket's own connect timeout (HANDSHAKE)
GIVE_UP = 30.0  # the test's own bound: reaching it means the open hung


async def _late_handshake(request) -> None:
    """Answer the handshake after the client's connect timeout, then fill its message queue (bench repro)."""
    await trio.sleep(LATE)
    try:
        ws = await request.accept()
        for _ in range(50):
            await ws.send_message("x" * 100_000)
        await trio.sleep(60)
    except Exception:  # the client went away: nothing to do
        return


async def _silent_tcp(stream: trio.SocketStream) -> None:
    """Accept the TCP connection, read the upgrade request, never answer it."""
    async with stream:
        await stream.receive_some()
        await trio.sleep_forever()


async def _expect_closed_in_time(url: str) -> float:
    start = trio.current_time()
    with trio.fail_after(GIVE_UP), pytest.raises(StreamClosed):
        async with open_websocket(url, handshake_seconds=HANDSHAKE, what="price stream"):
            pytest.fail("connected, but the handshake came after the deadline")
    return trio.current_time() - start


async def test_a_handshake_answered_after_the_connect_timeout_fails_in_time_instead_of_hanging(
    nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await nursery.start(
        lambda task_status: serve_websocket(_late_handshake, "127.0.0.1", 0, ssl_context=None, task_status=task_status)
    )
    assert await _expect_closed_in_time(f"ws://127.0.0.1:{server.port}/ws/!markPrice@arr@1s") <= HANDSHAKE + 1e-6


async def test_a_handshake_never_answered_fails_in_time(nursery, autojump_clock: trio.testing.MockClock) -> None:
    [listener] = await nursery.start(functools.partial(trio.serve_tcp, _silent_tcp, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    assert await _expect_closed_in_time(f"ws://127.0.0.1:{port}/stream") <= HANDSHAKE + 1e-6


class _StuckWs:
    """A connected websocket that greets and then never lets a subscription out (a full send buffer)."""

    def __init__(self, greet: bool) -> None:
        self.greet = greet

    async def get_message(self) -> str:
        if self.greet:
            self.greet = False
            return json.dumps({"type": "connected"})
        await trio.sleep_forever()
        raise AssertionError

    async def send_message(self, message: str | bytes) -> None:
        await trio.sleep_forever()

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        return None


def _connector(ws: _StuckWs):
    @asynccontextmanager
    async def connect(url: str) -> AsyncIterator[_StuckWs]:
        yield ws

    return connect


@pytest.mark.parametrize(("greet", "step"), [(False, "greeting"), (True, "subscribing")])
async def test_lighter_open_is_bounded_through_greeting_and_subscription(
    autojump_clock: trio.testing.MockClock, greet: bool, step: str
) -> None:
    start = trio.current_time()
    with trio.fail_after(GIVE_UP), pytest.raises(StreamClosed, match=step):
        async with open_lighter_stream(
            "ws://sim/stream",
            ["market_stats/all"],
            what="lighter price stream",
            handshake_seconds=HANDSHAKE,
            ping_seconds=60,
            connect=_connector(_StuckWs(greet)),
        ):
            pytest.fail("opened without a greeting or a subscription")
    assert trio.current_time() - start == pytest.approx(HANDSHAKE)


async def test_a_stream_once_open_is_not_cut_by_the_open_deadline(autojump_clock: trio.testing.MockClock) -> None:
    ws = _StuckWs(greet=True)
    ws.send_message = _sent  # type: ignore[method-assign]
    async with open_lighter_stream(
        "ws://sim/stream",
        ["market_stats/all"],
        what="lighter price stream",
        handshake_seconds=HANDSHAKE,
        ping_seconds=600,
        connect=_connector(ws),
    ):
        await trio.sleep(HANDSHAKE * 100)  # reading a quiet, open stream: the open's deadline no longer applies


async def _sent(message: str | bytes) -> None:
    return None
