"""Liquidation and auto-deleveraging in the user streams (issue 10.3, the parsing side).

The position actors close the affected tranches with their own exit reason and a notice when an ``OrderUpdate``
says the venue closed the position by force (``forced``). These tests pin the wire markers each codec
recognizes (the simulators emit exactly these):

- Aster (Binance semantics, docs/aster-api.md): ``ORDER_TRADE_UPDATE`` whose client id ``c`` is ``adl_autoclose``
  or whose status ``X`` is ``NEW_ADL`` is ADL; client id ``autoclose-...``, order type ``o`` ``LIQUIDATION``,
  status ``NEW_INSURANCE`` or execution type ``x`` ``CALCULATED`` (without an ADL marker) is a liquidation.
- Lighter: an order of ``type`` ``liquidation`` (lighter-sdk ``Order.type``) in ``account_all_orders`` is a
  liquidation; a trade in ``account_all``'s ``trades`` of ``type`` ``deleverage`` (ADL) or ``liquidation``
  (lighter-sdk ``Trade.type``) marks the account's order in it (``ask_id`` when ``ask_account_id`` is the
  frame's ``account``, else ``bid_id``), and that order's updates carry the mark; a trade seen after the order's
  update marks only later updates of it.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio

from posmon.domain.orders import OrderSide, OrderStatus, OrderType, Side
from posmon.exchange.aster import codec as aster
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.venue import AsterVenue
from posmon.exchange.events import MalformedMessage, OrderUpdate
from posmon.exchange.lighter import codec as lighter
from posmon.exchange.lighter.client_ids import ClientIds
from posmon.exchange.lighter.markets import Market, MarketTable
from posmon.exchange.lighter.settings import LighterSettings
from posmon.exchange.lighter.venue import LighterVenue
from posmon.sim.aster import credentials as cred
from posmon.sim.aster import serve_aster_sim
from posmon.sim.aster.sim import AsterSim
from posmon.sim.exchange import SimExchange
from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
from posmon.sim.lighter.credentials import (
    DEFAULT_ACCOUNT_INDEX,
    DEFAULT_API_KEY_INDEX,
    DEFAULT_API_PRIVATE_KEY,
)
from posmon.sim.markets import rules_for

D = Decimal
BASE = {
    "s": "BTCUSDT",
    "c": "pm-7-S-1",
    "S": "SELL",
    "o": "MARKET",
    "f": "IOC",
    "q": "0.010",
    "p": "0",
    "ap": "59000",
    "sp": "0",
    "x": "TRADE",
    "X": "FILLED",
    "i": 99,
    "l": "0.010",
    "z": "0.010",
    "L": "59000",
    "T": 1,
    "t": 5,
    "R": True,
    "wt": "CONTRACT_PRICE",
    "ot": "MARKET",
    "ps": "BOTH",
    "rp": "-3.5",
}


def aster_update(**o: Any) -> OrderUpdate:
    [update] = aster.parse_user_frame(
        orjson.dumps({"e": "ORDER_TRADE_UPDATE", "E": 1700000000000, "T": 1, "o": {**BASE, **o}})
    )
    assert isinstance(update, OrderUpdate)
    return update


@pytest.mark.parametrize(
    ("fields", "forced"),
    [
        (
            {"c": "autoclose-1700000000000123", "o": "LIQUIDATION", "ot": "LIQUIDATION", "x": "CALCULATED"},
            "LIQUIDATION",
        ),
        ({"c": "autoclose-1700000000000123"}, "LIQUIDATION"),
        ({"o": "LIQUIDATION"}, "LIQUIDATION"),
        ({"x": "CALCULATED"}, "LIQUIDATION"),
        ({"x": "CALCULATED", "X": "NEW_INSURANCE", "l": "0", "z": "0"}, "LIQUIDATION"),
        ({"c": "adl_autoclose", "x": "CALCULATED"}, "ADL"),
        ({"c": "adl_autoclose", "o": "LIQUIDATION", "x": "CALCULATED"}, "ADL"),
        ({"c": "adl_autoclose-17"}, "ADL"),
        ({"X": "NEW_ADL", "x": "CALCULATED", "l": "0", "z": "0"}, "ADL"),
        ({}, None),
        ({"c": "settlement_autoclose-1"}, None),
        ({"c": "web_autoclose"}, None),
    ],
)
def test_aster_forced_orders_are_recognized_from_client_id_type_status_and_exec_type(
    fields: dict[str, Any], forced: str | None
) -> None:
    assert aster_update(**fields).forced == forced


def test_aster_liquidation_fill_still_moves_the_position_like_a_trade() -> None:
    u = aster_update(c="autoclose-9", o="LIQUIDATION", x="CALCULATED", X="FILLED")
    assert u.is_fill and (u.last_qty, u.last_price, u.side, u.type) == (
        D("0.010"),
        D(59000),
        OrderSide.SELL,
        OrderType.MARKET,
    )
    assert (u.status, u.realized_pnl) == (OrderStatus.FILLED, D("-3.5"))


BTC = Market(market_id=1, symbol="BTC", size_decimals=5, price_decimals=1)
MARKETS = MarketTable.of([BTC])
IDS = ClientIds("pm")
ORDER = {
    "order_index": 2**48 + 11,
    "client_order_index": 0,
    "market_index": 1,
    "initial_base_amount": "0.02000",
    "remaining_base_amount": "0.00000",
    "filled_base_amount": "0.02000",
    "filled_quote_amount": "1100.000000",
    "price": "55000.0",
    "is_ask": True,
    "type": "liquidation",
    "time_in_force": "immediate-or-cancel",
    "reduce_only": True,
    "trigger_price": "0.0",
    "status": "filled",
    "timestamp": 1722337200,
}


def lighter_updates(order: dict[str, Any], kind: str = "update/account_all_orders") -> list[Any]:
    return lighter.parse_user_frame(
        orjson.dumps({"type": kind, "orders": {"1": [order]}}), MARKETS, IDS, lighter.FillTracker(), 0.0
    )


def test_lighter_liquidation_order_is_a_forced_fill() -> None:
    (u,) = lighter_updates(ORDER)
    assert isinstance(u, OrderUpdate)
    assert u.forced == "LIQUIDATION" and u.is_fill
    assert (u.client_id, u.symbol, u.side, u.type, u.last_qty, u.last_price) == (
        f"lighter-{2**48 + 11}",
        "BTC",
        OrderSide.SELL,
        OrderType.MARKET,
        D("0.02"),
        D(55000),
    )


@pytest.mark.parametrize("kind", ["liquidation", "LIQUIDATION", "Liquidation"])
def test_lighter_liquidation_type_is_read_in_any_case(kind: str) -> None:
    (u,) = lighter_updates({**ORDER, "type": kind})
    assert u.forced == "LIQUIDATION"


def test_lighter_snapshot_of_a_liquidation_order_is_marked_but_reports_no_fill() -> None:
    (u,) = lighter_updates(ORDER, "subscribed/account_all_orders")
    assert u.forced == "LIQUIDATION" and not u.is_fill


@pytest.mark.parametrize("kind", ["market", "limit", "stop-loss", "take-profit", "twap-sub"])
def test_lighter_ordinary_orders_are_not_forced(kind: str) -> None:
    (u,) = lighter_updates({**ORDER, "type": kind})
    assert u.forced is None


def test_an_order_update_built_without_forced_is_an_ordinary_order() -> None:
    u = OrderUpdate(
        symbol="X",
        client_id="c",
        order_id="1",
        side=OrderSide.BUY,
        position_side="BOTH",
        type=OrderType.MARKET,
        status=OrderStatus.NEW,
        exec_type="NEW",
        qty=D(1),
        filled_qty=D(0),
        last_qty=D(0),
        last_price=D(0),
        avg_price=D(0),
        reduce_only=False,
        realized_pnl=D(0),
        time=0.0,
    )
    assert u.forced is None


def account_all(*trades: dict[str, Any], account: int | None = 5) -> bytes:
    frame: dict[str, Any] = {
        "type": "update/account_all",
        "channel": "account_all:5",
        "positions": {},
        "trades": {"1": list(trades)},
    }
    if account is not None:
        frame["account"] = account
    return orjson.dumps(frame)


def trade(kind: str, *, ours_ask: bool = True, ours: int = 2**48 + 11) -> dict[str, Any]:
    theirs = 2**48 + 999
    return {
        "trade_id": 77,
        "type": kind,
        "market_id": 1,
        "size": "0.02000",
        "price": "55000.0",
        "ask_id": ours if ours_ask else theirs,
        "bid_id": theirs if ours_ask else ours,
        "ask_account_id": 5 if ours_ask else 0,
        "bid_account_id": 0 if ours_ask else 5,
        "timestamp": 1722337200,
    }


@pytest.mark.parametrize(
    ("kind", "forced"),
    [("deleverage", "ADL"), ("liquidation", "LIQUIDATION"), ("trade", None), ("market-settlement", None)],
)
@pytest.mark.parametrize("ours_ask", [True, False])
def test_lighter_forced_trades_mark_the_accounts_order(kind: str, forced: str | None, ours_ask: bool) -> None:
    fills = lighter.FillTracker()
    assert lighter.parse_user_frame(account_all(trade(kind, ours_ask=ours_ask)), MARKETS, IDS, fills, 0.0) == []
    order = {**ORDER, "type": "market", "is_ask": ours_ask}
    (u,) = lighter.parse_user_frame(
        orjson.dumps({"type": "update/account_all_orders", "orders": {"1": [order]}}), MARKETS, IDS, fills, 0.0
    )
    assert u.forced == forced and u.is_fill


def test_lighter_adl_overrides_the_liquidation_type_of_the_venues_order() -> None:
    """The simulator's ADL order has type liquidation; the deleverage trade tells it apart."""
    fills = lighter.FillTracker()
    lighter.parse_user_frame(account_all(trade("deleverage")), MARKETS, IDS, fills, 0.0)
    (u,) = lighter.parse_user_frame(
        orjson.dumps({"type": "update/account_all_orders", "orders": {"1": [ORDER]}}), MARKETS, IDS, fills, 0.0
    )
    assert u.forced == "ADL"


def test_lighter_forced_trade_of_another_account_marks_nothing_of_ours() -> None:
    fills = lighter.FillTracker()
    other = {**trade("deleverage"), "ask_account_id": 9, "bid_account_id": 5, "bid_id": 2**48 + 999}
    lighter.parse_user_frame(account_all(other), MARKETS, IDS, fills, 0.0)
    (u,) = lighter.parse_user_frame(
        orjson.dumps({"type": "update/account_all_orders", "orders": {"1": [{**ORDER, "type": "market"}]}}),
        MARKETS,
        IDS,
        fills,
        0.0,
    )
    assert u.forced is None


def test_a_malformed_forced_trade_drops_the_frame_and_marks_nothing() -> None:
    fills = lighter.FillTracker()
    with pytest.raises(MalformedMessage):
        lighter.parse_user_frame(
            account_all(trade("deleverage"), {**trade("deleverage"), "ask_id": "²"}), MARKETS, IDS, fills, 0.0
        )
    (u,) = lighter.parse_user_frame(
        orjson.dumps({"type": "update/account_all_orders", "orders": {"1": [{**ORDER, "type": "market"}]}}),
        MARKETS,
        IDS,
        fills,
        0.0,
    )
    assert u.forced is None


# ---- what the simulators send, through the venues' real streams ----------------------------------------------------

WAIT = 10.0  # seconds; a loopback push takes milliseconds


async def forced_fills(venue: Any, frames: Any, count: int) -> list[tuple[str | None, Decimal]]:
    """The next ``count`` fills the stream reports, as (forced, last_qty)."""
    out: list[tuple[str | None, Decimal]] = []
    with trio.fail_after(WAIT):
        while len(out) < count:
            for event in venue.parse_user_frame(await frames.receive()):
                if isinstance(event, OrderUpdate) and event.is_fill:
                    out.append((event.forced, event.last_qty))
    return out


async def test_the_lighter_simulators_liquidation_and_adl_arrive_marked() -> None:
    sim = LighterSim(build_exchange())
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)
        settings = LighterSettings(
            rest_url=rest_url,
            ws_url=ws_url,
            account_index=DEFAULT_ACCOUNT_INDEX,
            api_key_index=DEFAULT_API_KEY_INDEX,
            api_private_key=DEFAULT_API_PRIVATE_KEY,
        )
        async with LighterVenue.open(settings, clock=time.time) as venue, venue.connect_user_stream() as frames:
            with trio.fail_after(WAIT):  # the orders channel's snapshot: from now on its updates are pushed
                while b"subscribed/account_all_orders" not in await frames.receive():
                    pass
            sim.silent_position("ETH", Side.LONG, D("0.1"))
            assert sim.liquidate("ETH", D("0.04"), adl=True) == D("0.04")
            assert await forced_fills(venue, frames, 1) == [("ADL", D("0.04"))]
            assert sim.liquidate("ETH") == D("0.06")
            assert await forced_fills(venue, frames, 1) == [("LIQUIDATION", D("0.06"))]
        nursery.cancel_scope.cancel()


async def test_the_aster_simulators_liquidation_and_adl_arrive_marked() -> None:
    exchange = SimExchange(rules_for(("BTCUSDT",)), hedge_mode=False, clock=time.time)
    sim = AsterSim(exchange, clock=time.time)
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_aster_sim, sim)
        settings = AsterSettings.from_config(
            {
                "rest_url": rest_url,
                "ws_url": ws_url,
                "auth": "v1",
                "api_key": cred.DEFAULT_API_KEY,
                "api_secret": cred.DEFAULT_API_SECRET,
            },
            {},
        )
        async with AsterVenue.open(settings, clock=time.time) as venue, venue.connect_user_stream() as frames:
            exchange.set_mark("BTCUSDT", D("60000"))
            exchange.silent_position("BTCUSDT", Side.LONG, D("0.010"))
            assert exchange.liquidate("BTCUSDT", Side.LONG, D("0.004"), adl=True) == D("0.004")
            assert await forced_fills(venue, frames, 1) == [("ADL", D("0.004"))]
            assert exchange.liquidate("BTCUSDT", Side.LONG) == D("0.006")
            assert await forced_fills(venue, frames, 1) == [("LIQUIDATION", D("0.006"))]
        nursery.cancel_scope.cancel()
