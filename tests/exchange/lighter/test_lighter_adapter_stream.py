"""The Lighter websocket protocol: greeting, subscriptions with auth, pong for ping, our own keep-alive pings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed

from posmon.exchange.lighter.stream import open_lighter_stream
from posmon.exchange.venue import StreamClosed


class FakeWs:
    def __init__(self) -> None:
        self.inbound_send, self.inbound = trio.open_memory_channel[str](100)
        self.sent: list[dict] = []
        self.closed: str | None = None

    async def get_message(self) -> str:
        try:
            return await self.inbound.receive()
        except trio.EndOfChannel:
            raise ConnectionClosed(None) from None  # type: ignore[arg-type]

    async def send_message(self, message: str | bytes) -> None:
        self.sent.append(json.loads(message))

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = reason
        await self.inbound_send.aclose()


def connector(ws: FakeWs):
    @asynccontextmanager
    async def connect(url: str) -> AsyncIterator[FakeWs]:
        assert url == "ws://sim/stream"
        yield ws

    return connect


async def test_subscribes_after_connected_answers_pings_and_keeps_alive(autojump_clock: trio.testing.MockClock) -> None:
    ws = FakeWs()
    ws.inbound_send.send_nowait('{"type":"connected","session_id":"s"}')
    async with open_lighter_stream(
        "ws://sim/stream",
        ["account_all/5", "account_all_orders/5"],
        what="test",
        handshake_seconds=5,
        ping_seconds=60,
        auth="tok",
        connect=connector(ws),
    ) as frames:
        assert ws.sent == [
            {"type": "subscribe", "channel": "account_all/5", "auth": "tok"},
            {"type": "subscribe", "channel": "account_all_orders/5", "auth": "tok"},
        ]
        ws.inbound_send.send_nowait('{"type":"ping"}')
        assert json.loads(await frames.receive()) == {"type": "ping"}
        assert ws.sent[-1] == {"type": "pong"}
        await trio.sleep(61)
        assert ws.sent[-1] == {"type": "ping"}  # something goes out at least every ping_seconds


async def test_no_greeting_or_token_expiry_end_the_stream(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(StreamClosed, match="no 'connected'"):
        async with open_lighter_stream(
            "ws://sim/stream", [], what="test", handshake_seconds=5, ping_seconds=60, connect=connector(FakeWs())
        ):
            pass
    ws = FakeWs()
    ws.inbound_send.send_nowait('{"type":"connected"}')
    async with open_lighter_stream(
        "ws://sim/stream",
        ["account_all/5"],
        what="test",
        handshake_seconds=5,
        ping_seconds=60,
        auth="tok",
        end_at=100.0,
        clock=trio.current_time,
        connect=connector(ws),
    ) as frames:
        with pytest.raises(StreamClosed, match="auth token"):
            await frames.receive()
    assert trio.current_time() == pytest.approx(100.0)
