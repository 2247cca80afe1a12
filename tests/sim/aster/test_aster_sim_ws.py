"""Websockets of the Aster simulator over real loopback connections: mark prices, user data, disconnects."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from posmon.sim.aster import AsterSim, WsConfig
from tests.sim.aster.test_aster_sim_helpers import (
    D,
    ManualClock,
    V1Client,
    V3Client,
    body,
    limit_order,
    make_exchange,
    running,
    trio_epoch_clock,
)


async def receive(ws: Any) -> Any:
    with trio.fail_after(5):
        return orjson.loads(await ws.get_message())


async def test_single_symbol_mark_price_stream_sends_only_that_symbol_in_full_shape():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with (
        running(AsterSim(exchange)) as (_rest, ws_url),
        open_websocket_url(f"{ws_url}/ws/ethusdt@markPrice@1s") as ws,
    ):
        exchange.set_marks({"BTCUSDT": D("45100"), "ETHUSDT": D("3010.5")})
        update = await receive(ws)
        assert {k: update[k] for k in ("e", "s", "p", "i", "P", "r")} == {
            "e": "markPriceUpdate",
            "s": "ETHUSDT",
            "p": "3010.5",
            "i": "3010.5",
            "P": "3010.5",
            "r": "0.00010000",
        }
        assert update["E"] == round(clock.now * 1000) and update["T"] % (8 * 3600 * 1000) == 0
        exchange.set_marks({"BTCUSDT": D("45200")})  # nothing for ETH in this frame
        exchange.set_marks({"ETHUSDT": D("3011")})
        assert (await receive(ws))["p"] == "3011"


async def test_combined_stream_wraps_each_payload_with_its_stream_name():
    exchange = make_exchange(clock=ManualClock())
    path = "/stream?streams=btcusdt@markPrice@1s/!markPrice@arr@1s"
    async with running(AsterSim(exchange)) as (_rest, ws_url), open_websocket_url(ws_url + path) as ws:
        exchange.set_marks({"BTCUSDT": D("45100"), "ETHUSDT": D("3010")})
        single, array = await receive(ws), await receive(ws)
        assert single["stream"] == "btcusdt@markPrice@1s" and single["data"]["s"] == "BTCUSDT"
        assert array["stream"] == "!markPrice@arr@1s"
        assert [(u["s"], u["p"]) for u in array["data"]] == [("BTCUSDT", "45100"), ("ETHUSDT", "3010")]


async def test_raw_all_market_array_stream_and_live_subscribe_unsubscribe():
    exchange = make_exchange(clock=ManualClock())
    async with running(AsterSim(exchange)) as (_rest, ws_url):
        async with open_websocket_url(f"{ws_url}/ws/!markPrice@arr@1s") as ws:
            exchange.set_marks({"BTCUSDT": D("45100")})
            assert [u["s"] for u in await receive(ws)] == ["BTCUSDT"]
        async with open_websocket_url(f"{ws_url}/ws") as ws:
            await ws.send_message('{"method":"SUBSCRIBE","params":["btcusdt@markPrice"],"id":1}')
            assert await receive(ws) == {"result": None, "id": 1}
            await ws.send_message('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            assert await receive(ws) == {"result": ["btcusdt@markPrice"], "id": 2}
            exchange.set_marks({"BTCUSDT": D("45300")})
            assert (await receive(ws))["p"] == "45300"  # raw connection: no wrapper
            await ws.send_message('{"method":"UNSUBSCRIBE","params":["btcusdt@markPrice"],"id":3}')
            assert await receive(ws) == {"result": None, "id": 3}
            await ws.send_message('{"method":"SUBSCRIBE","params":["ethusdt@markPrice@1s"],"id":4}')
            assert await receive(ws) == {"result": None, "id": 4}
            exchange.set_marks({"BTCUSDT": D("45400"), "ETHUSDT": D("3020")})
            assert (await receive(ws))["s"] == "ETHUSDT"
            await ws.send_message("not json")
            assert (await receive(ws))["code"] == 3


async def test_more_than_200_streams_is_refused_at_the_handshake():
    streams = "/".join(f"s{i}usdt@markPrice" for i in range(201))
    async with running(AsterSim(make_exchange(clock=ManualClock()))) as (_rest, ws_url):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"{ws_url}/stream?streams={streams}"):
                pass
        assert refused.value.status_code == 400


async def test_user_stream_delivers_order_and_account_updates_of_a_fill():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, ws_url), httpx.AsyncClient(base_url=rest) as http:
        client = V3Client(http, clock)
        key = body(await client.signed("POST", "/fapi/v3/listenKey"))["listenKey"]
        async with open_websocket_url(f"{ws_url}/ws/{key}") as ws:
            placed = await client.signed("POST", "/fapi/v3/order", limit_order(newClientOrderId="tp-9"))
            order_id = body(placed)["orderId"]
            new = await receive(ws)
            assert new["e"] == "ORDER_TRADE_UPDATE"
            assert {k: new["o"][k] for k in ("c", "x", "X", "i", "f", "wt", "ps")} == {
                "c": "tp-9",
                "x": "NEW",
                "X": "NEW",
                "i": order_id,
                "f": "GTC",
                "wt": "CONTRACT_PRICE",
                "ps": "LONG",
            }
            clock.advance(1)
            exchange.set_mark("BTCUSDT", D("43900"))
            trade = await receive(ws)
            assert trade["e"] == "ORDER_TRADE_UPDATE"
            o = trade["o"]
            assert (o["x"], o["X"], o["m"]) == ("TRADE", "FILLED", True)
            assert (D(o["l"]), D(o["L"]), D(o["z"])) == (D("0.01"), D("44000"), D("0.01"))
            assert o["t"] > 0 and trade["E"] == round(clock.now * 1000)
            account = await receive(ws)
            assert account["e"] == "ACCOUNT_UPDATE"
            position = account["a"]["P"][0]
            assert (position["s"], D(position["pa"]), D(position["ep"]), position["ps"]) == (
                "BTCUSDT",
                D("0.01"),
                D("44000"),
                "LONG",
            )
            assert D(position["up"]) == D(-1)  # (43900 - 44000) * 0.01


async def test_listen_key_expiry_sends_listen_key_expired_and_closes(autojump_clock):
    exchange = make_exchange(clock=trio_epoch_clock)
    sim = AsterSim(exchange)
    async with running(sim) as (rest, ws_url), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, sim.now)
        key = body(await client.keyed("POST", "/fapi/v1/listenKey"))["listenKey"]
        async with open_websocket_url(f"{ws_url}/ws/{key}") as ws:
            await trio.sleep(3000)
            assert (await client.keyed("PUT", "/fapi/v1/listenKey")).status_code == 200  # 60 more minutes
            start = trio.current_time()
            expired = await receive_within(ws, 4000)
            assert expired == {"e": "listenKeyExpired", "E": sim.now_ms()}
            assert trio.current_time() - start == pytest.approx(3600, abs=2)
            with pytest.raises(ConnectionClosed):
                await receive_within(ws, 10)
        assert (await client.keyed("PUT", "/fapi/v1/listenKey")).json()["code"] == -1125
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(f"{ws_url}/ws/{key}"):
                pass


async def test_forced_expiry_and_dropped_websockets_make_clients_reconnect():
    clock = ManualClock()
    sim = AsterSim(make_exchange(clock=clock))
    async with running(sim) as (rest, ws_url), httpx.AsyncClient(base_url=rest) as http:
        key = body(await V1Client(http, clock).keyed("POST", "/fapi/v1/listenKey"))["listenKey"]
        async with (
            open_websocket_url(f"{ws_url}/ws/{key}") as user,
            open_websocket_url(f"{ws_url}/ws/btcusdt@markPrice") as prices,
        ):
            assert sim.counters.ws_open == 2
            assert sim.expire_listen_key() == [key]
            assert (await receive(user))["e"] == "listenKeyExpired"
            assert sim.drop_websockets() >= 1
            with pytest.raises(ConnectionClosed) as closed:
                await receive(prices)
            assert closed.value.reason.code == 1001


async def test_connections_are_dropped_at_the_maximum_age(autojump_clock):
    sim = AsterSim(make_exchange(clock=trio_epoch_clock))
    async with running(sim) as (_rest, ws_url), open_websocket_url(f"{ws_url}/ws/btcusdt@markPrice@1s") as ws:
        start = trio.current_time()
        with pytest.raises(ConnectionClosed) as closed:
            await receive_within(ws, 2 * 24 * 3600)
        assert closed.value.reason.code == 1001
        assert trio.current_time() - start == pytest.approx(24 * 3600, abs=1)


async def test_stalled_prices_send_nothing_until_released(autojump_clock):
    exchange = make_exchange(clock=trio_epoch_clock)
    sim = AsterSim(exchange, ws=WsConfig(ping_interval=None))
    async with running(sim) as (_rest, ws_url), open_websocket_url(f"{ws_url}/ws/btcusdt@markPrice") as ws:
        sim.stall_prices()
        exchange.set_marks({"BTCUSDT": D("45500")})
        with trio.move_on_after(30) as quiet:
            await ws.get_message()
        assert quiet.cancelled_caught
        sim.stall_prices(False)
        exchange.set_marks({"BTCUSDT": D("45600")})
        assert (await receive(ws))["p"] == "45600"


async def receive_within(ws: Any, seconds: float) -> Any:
    with trio.fail_after(seconds):
        return orjson.loads(await ws.get_message())


async def test_a_client_sending_more_than_ten_messages_a_second_is_dropped():
    async with (
        running(AsterSim(make_exchange(clock=ManualClock()))) as (_rest, ws_url),
        open_websocket_url(f"{ws_url}/ws") as ws,
    ):
        with pytest.raises(ConnectionClosed) as closed:
            for n in range(12):
                await ws.send_message(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": n}).decode())
            for _ in range(12):
                await receive(ws)
        assert closed.value.reason.code == 1008


async def test_exchange_level_stream_drop_closes_the_websockets_and_malformed_frames_pass_through():
    exchange = make_exchange(clock=ManualClock())
    async with (
        running(AsterSim(exchange)) as (_rest, ws_url),
        open_websocket_url(f"{ws_url}/ws/btcusdt@markPrice") as ws,
    ):
        exchange.publish_raw_price_frame(b"{not json")
        with trio.fail_after(5):
            assert await ws.get_message() == "{not json"
        exchange.drop_streams()
        with pytest.raises(ConnectionClosed):
            await receive(ws)


def test_server_pings_follow_the_configured_interval():
    from posmon.sim.serving import hypercorn_config

    assert hypercorn_config(AsterSim(make_exchange()), "127.0.0.1", 0).websocket_ping_interval == 300.0
    quick = AsterSim(make_exchange(), ws=WsConfig(ping_interval=0.5))
    assert hypercorn_config(quick, "127.0.0.1", 0).websocket_ping_interval == 0.5
