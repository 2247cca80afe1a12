"""What the chaos campaign needs from the simulators: changes no order explains, liquidations, 429/418, fills.

A live account changes under the daemon in ways no order update describes; these prove the simulators can
play each one the way the venues report it (or do not report it), so the campaign can test the daemon on them.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import httpx
import orjson
import trio

from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side
from posmon.sim.aster import AsterSim
from posmon.sim.aster.frames import user_event
from posmon.sim.engine import Fill
from posmon.sim.exchange import SimExchange
from posmon.sim.lighter import LighterSim, build_exchange
from posmon.sim.markets import rules_for
from tests.sim.aster.test_aster_sim_helpers import running


def hedge_exchange() -> tuple[SimExchange, trio.MemoryReceiveChannel[bytes]]:
    exchange = SimExchange(rules_for(["BTCUSDT"]), hedge_mode=True, clock=lambda: 1000.0)
    exchange.set_marks({"BTCUSDT": D("45000")})
    return exchange, exchange.open_user_stream()


def frames(tap: trio.MemoryReceiveChannel[bytes]) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            out.append(orjson.loads(tap.receive_nowait()))
        except trio.WouldBlock:
            return out


def test_silent_position_with_a_frame_sends_only_the_account_update():
    exchange, tap = hedge_exchange()
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.1"))
    frames(tap)
    exchange.silent_position("BTCUSDT", Side.LONG, D("0.15"), frame=True)
    (only,) = frames(tap)
    assert only["e"] == "ACCOUNT_UPDATE"
    assert only["a"]["P"] == [{"s": "BTCUSDT", "pa": "0.15", "ep": "45000", "ps": "LONG"}]


def test_silent_position_without_a_frame_changes_the_account_and_says_nothing():
    exchange, tap = hedge_exchange()
    exchange.external_entry("BTCUSDT", Side.SHORT, D("0.1"))
    frames(tap)
    exchange.silent_position("BTCUSDT", Side.SHORT, D("0.04"), frame=False)
    assert frames(tap) == []
    (position,) = exchange.positions()
    assert (position.side, position.qty) == (Side.SHORT, D("0.04"))
    assert exchange.engine.realized_pnl("BTCUSDT") == 0  # closed at the entry's mark: no PnL


def test_liquidation_sends_the_venues_order_then_the_position_and_cancels_the_sides_orders():
    exchange, tap = hedge_exchange()
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.1"))
    exchange.place_orders(
        [
            OrderRequest(
                "pm-1-S1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.STOP_MARKET, D("0.1"), stop_price=D("44000")
            )
        ]
    )
    exchange.set_marks({"BTCUSDT": D("44500")}, trade=False)
    frames(tap)
    assert exchange.liquidate("BTCUSDT", Side.LONG, cancel_orders=True) == D("0.1")
    cancel, order, account = frames(tap)
    assert (cancel["o"]["c"], cancel["o"]["X"]) == ("pm-1-S1", "CANCELED")
    o = order["o"]
    assert o["c"].startswith("autoclose-") and (o["o"], o["ot"], o["x"], o["X"]) == (
        "LIQUIDATION",
        "LIQUIDATION",
        "CALCULATED",
        "FILLED",
    )
    assert (o["S"], o["ps"], o["q"], o["z"], o["L"], o["rp"]) == ("SELL", "LONG", "0.1", "0.1", "44500", "-50.0")
    assert account["e"] == "ACCOUNT_UPDATE" and account["a"]["P"][0]["pa"] == "0"
    assert exchange.positions() == []


def test_adl_closes_part_of_the_position_under_adl_autoclose_and_leaves_orders_resting():
    exchange, tap = hedge_exchange()
    exchange.external_entry("BTCUSDT", Side.SHORT, D("0.3"))
    exchange.place_orders(
        [OrderRequest("pm-1-T1", "BTCUSDT", OrderSide.BUY, "SHORT", OrderType.LIMIT, D("0.3"), price=D("44000"))]
    )
    frames(tap)
    assert exchange.liquidate("BTCUSDT", Side.SHORT, D("0.1"), adl=True) == D("0.1")
    order, account = frames(tap)
    assert (order["o"]["c"], order["o"]["S"], order["o"]["q"]) == ("adl_autoclose", "BUY", "0.1")
    assert account["a"]["P"][0]["pa"] == "-0.2"
    assert [o.client_id for o in exchange.open_orders()] == ["pm-1-T1"]
    assert exchange.liquidate("BTCUSDT", Side.LONG) == 0  # a flat side: nothing to close, nothing sent
    assert frames(tap) == []


def test_aster_sim_shows_a_liquidation_in_the_venues_full_shape():
    exchange, _ = hedge_exchange()
    sim = AsterSim(exchange)
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.1"))
    tap = exchange.open_user_stream()
    exchange.liquidate("BTCUSDT", Side.LONG)
    sim.orders.sync()
    shaped = [user_event(f, sim.orders, exchange.engine) for f in [tap.receive_nowait(), tap.receive_nowait()]]
    assert shaped[0] is not None and shaped[0]["o"]["x"] == "CALCULATED" and shaped[0]["o"]["t"] == 0
    assert shaped[1] is not None and shaped[1]["a"]["P"][0]["pa"] == "0"


def test_fill_listener_sees_the_signed_position_before_and_after_each_fill():
    exchange = SimExchange(rules_for(["BTCUSDT"]), hedge_mode=False, clock=lambda: 1000.0)
    exchange.set_marks({"BTCUSDT": D("45000")})
    seen: list[Fill] = []
    exchange.engine.fill_listener = seen.append
    exchange.external_entry("BTCUSDT", Side.SHORT, D("0.2"))
    exchange.place_orders(
        [OrderRequest("pm-1-C1", "BTCUSDT", OrderSide.BUY, "BOTH", OrderType.MARKET, D("0.5"), reduce_only=True)]
    )
    assert [(f.client_id, f.qty, f.before, f.after) for f in seen] == [
        ("ext-1", D("0.2"), 0, D("-0.2")),
        ("pm-1-C1", D("0.2"), D("-0.2"), 0),
    ]


async def test_aster_sim_answers_429_then_418_unexecuted_with_retry_after():
    exchange, _ = hedge_exchange()
    sim = AsterSim(exchange)
    sim.reject_next("/fapi/v1/time", 429, retry_after=2)
    sim.reject_next("/fapi/v1/time", 418)
    async with running(sim) as (rest_url, _), httpx.AsyncClient(base_url=rest_url) as http:
        first = await http.get("/fapi/v1/time")
        second = await http.get("/fapi/v1/time")
        third = await http.get("/fapi/v1/time")
    assert (first.status_code, first.headers["Retry-After"], first.json()["code"]) == (429, "2", -1003)
    assert (second.status_code, "banned" in second.json()["msg"]) == (418, True)
    assert third.status_code == 200


def lighter() -> LighterSim:
    return LighterSim(build_exchange(clock=lambda: 1000.0), tx_clock=None)


def test_lighter_liquidation_and_deleverage_are_trades_of_their_own_type():
    sim = lighter()
    sim.external_entry("ETH", Side.LONG, D("0.5"))
    assert sim.liquidate("ETH", D("0.2")) == D("0.2")
    assert sim.liquidate("ETH", adl=True) == D("0.3")
    kinds = [(t.to_json()["type"], t.order.to_json()["type"], t.size) for t in list(sim.account.trades)[-2:]]
    assert kinds == [("liquidation", "liquidation", D("0.2")), ("deleverage", "liquidation", D("0.3"))]
    assert sim.account.signed_position("ETH") == 0


def test_lighter_silent_position_pushes_the_position_without_a_trade_or_nothing_at_all():
    sim = lighter()
    pushed: list[tuple[str, Any]] = []
    sim.hub.has_subscribers = lambda channel: True  # type: ignore[method-assign]
    sim.hub.publish = lambda channel, message: pushed.append((channel, message))  # type: ignore[method-assign]
    sim.silent_position("BTC", Side.SHORT, D("0.01"), frame=True)
    ((channel, message),) = pushed
    assert channel.startswith("account_all/") and message["trades"] == {}
    assert (message["positions"]["1"]["sign"], message["positions"]["1"]["position"]) == (-1, "0.01000")
    pushed.clear()
    sim.silent_position("BTC", Side.LONG, D("0.02"), frame=False)  # flips through zero, unannounced
    assert pushed == [] and sim.account.signed_position("BTC") == D("0.02")


async def test_aster_user_stream_stall_delivers_held_frames_late_in_order_and_duplicates_are_sent_twice():
    from trio_websocket import open_websocket_url

    from tests.sim.aster.test_aster_sim_helpers import ManualClock, V1Client, body, make_exchange

    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    sim = AsterSim(exchange)

    async def receive(ws: Any, seconds: float = 5) -> dict[str, Any]:
        with trio.fail_after(seconds):
            return orjson.loads(await ws.get_message())

    async with running(sim) as (rest, ws_url), httpx.AsyncClient(base_url=rest) as http:
        key = body(await V1Client(http, clock).keyed("POST", "/fapi/v1/listenKey"))["listenKey"]
        async with open_websocket_url(f"{ws_url}/ws/{key}") as ws:
            sim.stall_user_stream(True)
            exchange.silent_position("BTCUSDT", Side.LONG, D("0.1"))
            exchange.silent_position("BTCUSDT", Side.LONG, D("0.2"))
            with trio.move_on_after(0.3) as waited:
                await ws.get_message()
            assert waited.cancelled_caught  # held while stalled
            sim.stall_user_stream(False)
            assert [(await receive(ws))["a"]["P"][0]["pa"] for _ in range(2)] == ["0.1", "0.2"]
            sim.duplicate_user_frames(1)
            exchange.silent_position("BTCUSDT", Side.LONG, D("0.3"))
            first, second = await receive(ws), await receive(ws)
            assert first == second and first["a"]["P"][0]["pa"] == "0.3"


def test_lighter_stalled_pushes_go_out_merged_when_released_and_duplicates_twice():
    sim = lighter()
    pushed: list[Any] = []
    sim.hub.has_subscribers = lambda channel: channel.startswith("account_all/")  # type: ignore[method-assign]
    sim.hub.publish = lambda channel, message: pushed.append(message)  # type: ignore[method-assign]
    sim.stall_account_pushes(True)
    sim.external_entry("ETH", Side.LONG, D("0.1"))
    sim.external_entry("ETH", Side.LONG, D("0.1"))
    assert pushed == []
    sim.stall_account_pushes(False)
    (merged,) = pushed
    assert merged["positions"]["0"]["position"] == "0.2000" and len(merged["trades"]["0"]) == 2
    pushed.clear()
    sim.duplicate_pushes(1)
    sim.external_entry("ETH", Side.LONG, D("0.1"))
    assert len(pushed) == 2 and pushed[0] == pushed[1]
