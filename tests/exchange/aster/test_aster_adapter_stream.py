"""Aster websocket streams: real loopback websockets for what goes over the wire, trio's MockClock with an
in-memory socket for the listenKey keepalive schedule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import CloseReason, ConnectionClosed, WebSocketRequest, serve_websocket

from posmon.exchange.aster.stream import ALL_MARKS_STREAM, mark_price_path
from posmon.exchange.aster.venue import AsterVenue
from posmon.exchange.errors import AuthRejected
from posmon.exchange.events import MarkPrice, OrderUpdate
from posmon.exchange.venue import StreamClosed
from tests.exchange.aster.test_aster_adapter_codec import DOC_ORDER_UPDATE, MARK
from tests.exchange.aster.test_aster_adapter_fakes import NOW, FakeAster, settings

EXPIRED = orjson.dumps({"e": "listenKeyExpired", "E": 1576653824250})


@asynccontextmanager
async def venue_on(fake: FakeAster, **overrides: Any) -> AsyncIterator[AsterVenue]:
    async with AsterVenue.open(settings(**overrides), transport=fake.transport(), clock=lambda: NOW) as venue:
        yield venue


async def serve(nursery: trio.Nursery, frames: list[bytes | str], paths: list[str]) -> str:
    """A loopback websocket server that records the requested path, sends ``frames`` and closes."""

    async def handler(request: WebSocketRequest) -> None:
        paths.append(request.path)
        ws = await request.accept()
        for f in frames:
            await ws.send_message(f)
        await ws.aclose(1000, "server done")

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return f"ws://127.0.0.1:{server.port}"


# --- mark-price stream over a real loopback websocket -------------------------------------------------------


async def test_symbols_mode_connects_one_combined_stream_and_delivers_bytes_until_closed(nursery: trio.Nursery) -> None:
    paths: list[str] = []
    combined = orjson.dumps({"stream": "btcusdt@markPrice@1s", "data": MARK})
    url = await serve(nursery, [combined.decode(), orjson.dumps([MARK])], paths)
    async with venue_on(FakeAster(), ws_url=url, mark_stream="symbols") as venue:
        async with venue.connect_prices(["BTCUSDT", "ETHUSDT"]) as stream:
            first, second = await stream.receive(), await stream.receive()
            with pytest.raises(StreamClosed):
                await stream.receive()
        mark = MarkPrice("BTCUSDT", Decimal("11794.15000000"), 1562305380.0, Decimal("0.00038167"), 1562306400.0)
        assert venue.parse_price_frame(first) == venue.parse_price_frame(second) == [mark]
    assert first == combined  # a text message arrives as its UTF-8 bytes
    assert paths == ["/stream?streams=btcusdt@markPrice@1s/ethusdt@markPrice@1s"]


async def test_all_mode_connects_the_all_symbols_array_stream(nursery: trio.Nursery) -> None:
    paths: list[str] = []
    url = await serve(nursery, [orjson.dumps([MARK])], paths)
    async with venue_on(FakeAster(), ws_url=url) as venue, venue.connect_prices(["BTCUSDT"]) as stream:
        assert venue.parse_price_frame(await stream.receive())[0].symbol == "BTCUSDT"
    assert paths == [f"/ws/{ALL_MARKS_STREAM}"]


def test_more_symbols_than_one_connection_takes_fall_back_to_the_all_stream() -> None:
    symbols = [f"S{i}USDT" for i in range(201)]
    assert mark_price_path("symbols", symbols) == f"/ws/{ALL_MARKS_STREAM}"
    assert mark_price_path("symbols", symbols[:200]).count("@markPrice@1s") == 200
    assert mark_price_path("symbols", []) == f"/ws/{ALL_MARKS_STREAM}"


async def test_an_unreachable_stream_is_stream_closed() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()
    async with venue_on(FakeAster(), ws_url=f"ws://127.0.0.1:{port}") as venue:
        with pytest.raises(StreamClosed, match="mark-price"):
            async with venue.connect_prices(["BTCUSDT"]):
                pass


# --- user-data stream over a real loopback websocket --------------------------------------------------------


async def test_user_stream_connects_with_the_listen_key_and_ends_on_listen_key_expired(nursery: trio.Nursery) -> None:
    paths: list[str] = []
    url = await serve(nursery, [orjson.dumps(DOC_ORDER_UPDATE), EXPIRED, orjson.dumps(DOC_ORDER_UPDATE)], paths)
    fake = FakeAster()
    async with venue_on(fake, ws_url=url) as venue, venue.connect_user_stream() as stream:
        [update] = venue.parse_user_frame(await stream.receive())
        with pytest.raises(StreamClosed, match="listenKey expired"):
            await stream.receive()
        with pytest.raises(StreamClosed):
            await stream.receive()
    assert isinstance(update, OrderUpdate) and update.client_id == "TEST"
    assert paths == [f"/ws/{fake.listen_key}"]
    assert [c.method for c in fake.calls(path="/listenKey")] == ["POST"]  # nothing deleted on the way out


async def test_a_server_drop_ends_the_user_stream(nursery: trio.Nursery) -> None:
    url = await serve(nursery, [], [])
    async with venue_on(FakeAster(), ws_url=url) as venue:
        with pytest.raises(StreamClosed, match="user-data stream closed"):
            async with venue.connect_user_stream() as stream:
                await stream.receive()


# --- keepalive schedule on trio's MockClock with an in-memory socket ----------------------------------------


class MemorySocket:
    """Stands in for a websocket: the test pushes frames; closing either end ends ``get_message``."""

    def __init__(self) -> None:
        self.push, self._pull = trio.open_memory_channel[bytes](100)
        self.close_reason: str | None = None

    async def get_message(self) -> bytes:
        try:
            return await self._pull.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise ConnectionClosed(CloseReason(1000, self.close_reason)) from None

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_reason = reason
        await self.push.aclose()


class MemoryConnector:
    def __init__(self) -> None:
        self.urls: list[str] = []
        self.sockets: list[MemorySocket] = []

    @asynccontextmanager
    async def __call__(self, url: str) -> AsyncIterator[MemorySocket]:
        self.urls.append(url)
        socket = MemorySocket()
        self.sockets.append(socket)
        yield socket


@asynccontextmanager
async def memory_venue(fake: FakeAster, connector: MemoryConnector, **overrides: Any) -> AsyncIterator[AsterVenue]:
    async with AsterVenue.open(
        settings(**overrides), transport=fake.transport(), clock=lambda: NOW, connect=connector
    ) as venue:
        yield venue


async def test_listen_key_is_kept_alive_every_interval_while_the_stream_is_open(autojump_clock: Any) -> None:
    fake, connector = FakeAster(), MemoryConnector()
    async with memory_venue(fake, connector, listen_key_keepalive_seconds=1800) as venue:
        start = trio.current_time()
        async with venue.connect_user_stream() as stream:
            connector.sockets[0].push.send_nowait(orjson.dumps(DOC_ORDER_UPDATE))
            assert await stream.receive() == orjson.dumps(DOC_ORDER_UPDATE)
            await trio.sleep(3 * 1800 + 1)
        await trio.sleep(5 * 1800)  # closed: no more keepalives
    assert [c.at - start for c in fake.calls("PUT", "/listenKey")] == pytest.approx([1800, 3600, 5400])
    assert not fake.calls("DELETE", "/listenKey")
    assert connector.urls == [f"ws://127.0.0.1:9/ws/{fake.listen_key}"]


async def test_a_failed_keepalive_is_retried_a_minute_later(autojump_clock: Any) -> None:
    fake, connector = FakeAster(), MemoryConnector()
    async with memory_venue(fake, connector, listen_key_keepalive_seconds=1800) as venue:
        start = trio.current_time()
        fake.answer("PUT", "/listenKey", 503, {"code": -1001, "msg": "Internal error"})
        async with venue.connect_user_stream():
            await trio.sleep(2 * 1800 + 120)
    assert [c.at - start for c in fake.calls("PUT", "/listenKey")] == pytest.approx([1800, 1860, 3660])


async def test_a_refused_keepalive_ends_the_stream_so_the_reader_reconnects(autojump_clock: Any) -> None:
    fake, connector = FakeAster(), MemoryConnector()
    async with memory_venue(fake, connector, listen_key_keepalive_seconds=600) as venue:
        start = trio.current_time()
        with pytest.raises(StreamClosed, match="keepalive refused") as info:
            async with venue.connect_user_stream() as stream:
                fake.listen_key_alive = False  # the venue forgot the key: PUT answers -1125
                while True:
                    await stream.receive()
        assert trio.current_time() - start == pytest.approx(600)
        assert connector.sockets[0].close_reason == "posmon: listenKey lost"
        assert "-1125" in str(info.value)
        # the next connection asks for the key again and gets going
        async with venue.connect_user_stream() as stream:
            connector.sockets[1].push.send_nowait(EXPIRED)
            with pytest.raises(StreamClosed, match="expired"):
                await stream.receive()
    assert [c.method for c in fake.calls(path="/listenKey")] == ["POST", "PUT", "POST"]


async def test_a_listen_key_that_cannot_be_created_is_a_venue_error_before_any_connection() -> None:
    fake, connector = FakeAster(), MemoryConnector()
    async with memory_venue(fake, connector) as venue:
        fake.answer("POST", "/listenKey", 401, {"code": -2015, "msg": "Invalid API-key"})
        with pytest.raises(AuthRejected):
            async with venue.connect_user_stream():
                pass
    assert connector.urls == []
