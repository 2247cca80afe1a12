"""The Lighter simulator's /stream websocket over loopback: subscribe protocol, pushes, ping/pong, idle close."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from posmon.domain.orders import Side
from posmon.sim.lighter import WsConfig
from tests.sim.lighter.test_lighter_sim_helpers import ACCOUNT, D, make_sim, running


async def receive(ws: Any, seconds: float = 5) -> Any:
    with trio.fail_after(seconds):
        return orjson.loads(await ws.get_message())


async def subscribe(ws: Any, channel: str, **extra: Any) -> Any:
    await ws.send_message(orjson.dumps({"type": "subscribe", "channel": channel, **extra}).decode())
    return await receive(ws)


async def test_market_stats_all_snapshot_then_updates_keyed_by_market_id():
    sim = make_sim(ws=WsConfig(ping_interval=None))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        assert (await receive(ws))["type"] == "connected"
        snapshot = await subscribe(ws, "market_stats/all")
        assert (snapshot["type"], snapshot["channel"]) == ("subscribed/market_stats", "market_stats:all")
        assert {k: v["mark_price"] for k, v in snapshot["market_stats"].items()} == {
            "0": "3000.00", "1": "45000.0", "3": "0.200000"}  # fmt: skip
        sim.exchange.set_marks({"BTC": D("45123.4"), "DOGE": D("0.2012")})
        update = await receive(ws)
        assert (update["type"], update["channel"]) == ("update/market_stats", "market_stats:all")
        assert {k: v["mark_price"] for k, v in update["market_stats"].items()} == {"1": "45123.4", "3": "0.201200"}
        assert update["market_stats"]["1"]["market_id"] == 1


async def test_single_market_stats_channel_gets_only_its_market():
    sim = make_sim(ws=WsConfig(ping_interval=None))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        await receive(ws)
        assert (await subscribe(ws, "market_stats/0"))["market_stats"]["mark_price"] == "3000.00"
        sim.exchange.set_marks({"BTC": D("45100")})
        sim.exchange.set_marks({"ETH": D("3001.5")})
        update = await receive(ws)
        assert (update["channel"], update["market_stats"]["mark_price"]) == ("market_stats:0", "3001.50")


async def test_account_all_pushes_positions_and_trades_of_our_and_external_fills():
    sim = make_sim(ws=WsConfig(ping_interval=None))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        await receive(ws)
        snapshot = await subscribe(ws, f"account_all/{ACCOUNT}")
        assert (snapshot["type"], snapshot["channel"]) == ("subscribed/account_all", f"account_all:{ACCOUNT}")
        assert set(snapshot["positions"]) == {"0", "1", "3"} and snapshot["trades"] == {}
        await c.order(market=0, coi=7, base=1000, price=301000, market_order=True)
        update = await receive(ws)
        assert update["type"] == "update/account_all"
        assert (update["positions"]["0"]["sign"], update["positions"]["0"]["position"]) == (1, "0.1000")
        (trade,) = update["trades"]["0"]
        assert (trade["size"], trade["price"], trade["bid_client_id"]) == ("0.1000", "3000.00", 7)
        sim.external_entry("DOGE", Side.SHORT, D("100"))
        update = await receive(ws)
        assert (update["positions"]["3"]["sign"], update["positions"]["3"]["position"]) == (-1, "100")
        assert update["trades"]["3"][0]["ask_account_id"] == ACCOUNT


async def test_account_all_orders_needs_auth_and_pushes_status_changes():
    sim = make_sim(ws=WsConfig(ping_interval=None))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        await receive(ws)
        refused = await subscribe(ws, f"account_all_orders/{ACCOUNT}")
        assert refused["type"] == "error" and refused["error"]["message"]
        snapshot = await subscribe(ws, f"account_all_orders/{ACCOUNT}", auth=c.auth())
        assert (snapshot["type"], snapshot["orders"]) == ("subscribed/account_all_orders", {})
        await c.order(market=1, coi=9, base=100, price=440000)
        update = await receive(ws)
        assert update["type"] == "update/account_all_orders"
        (order,) = update["orders"]["1"]
        assert (order["client_order_index"], order["status"], order["filled_base_amount"]) == (9, "open", "0.00000")
        sim.exchange.set_marks({"BTC": D("43900")})
        (order,) = (await receive(ws))["orders"]["1"]
        assert (order["status"], order["filled_base_amount"], order["remaining_base_amount"]) == (
            "filled", "0.00100", "0.00000")  # fmt: skip


async def test_unknown_channel_and_bad_messages_answer_errors_and_keep_the_connection():
    sim = make_sim(ws=WsConfig(ping_interval=None))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        await receive(ws)
        assert (await subscribe(ws, "nonsense/1"))["type"] == "error"
        assert (await subscribe(ws, "account_all/12345"))["type"] == "error"
        await ws.send_message("not json")
        assert (await receive(ws))["type"] == "error"
        await ws.send_message('{"type":"ping"}')
        assert await receive(ws) == {"type": "pong"}


async def test_server_pings_and_closes_clients_silent_for_two_minutes(autojump_clock: Any):
    sim = make_sim(ws=WsConfig(ping_interval=60.0, idle_timeout=120.0))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        start = trio.current_time()
        assert (await receive(ws))["type"] == "connected"
        assert await receive(ws, 100) == {"type": "ping"}
        assert trio.current_time() - start == pytest.approx(60, abs=1)
        with pytest.raises(ConnectionClosed):
            while True:
                await receive(ws, 200)
        assert trio.current_time() - start == pytest.approx(120, abs=1)


async def test_answering_pongs_keeps_the_connection_open(autojump_clock: Any):
    sim = make_sim(ws=WsConfig(ping_interval=60.0, idle_timeout=120.0))
    async with running(sim) as c, open_websocket_url(c.ws_url) as ws:
        await receive(ws)
        for _ in range(5):
            assert await receive(ws, 100) == {"type": "ping"}
            await ws.send_message('{"type":"pong"}')
        assert sim.counters.ws_open == 1


async def test_dropped_websockets_close_and_a_reconnect_resubscribes():
    sim = make_sim(ws=WsConfig(ping_interval=None))
    async with running(sim) as c:
        async with open_websocket_url(c.ws_url) as ws:
            await receive(ws)
            await subscribe(ws, "market_stats/all")
            assert sim.counters.ws_open == 1  # attached before the handshake completed
            assert sim.drop_websockets() == 1
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await receive(ws)
            assert closed.value.reason.code == 1001
        async with open_websocket_url(c.ws_url) as ws:
            await receive(ws)
            await subscribe(ws, "market_stats/all")
            sim.exchange.set_marks({"ETH": D("3002")})
            assert (await receive(ws))["market_stats"]["0"]["mark_price"] == "3002.00"
        assert sim.counters.ws_opened == 2
