"""The simulated matching engine behaves like the venue where posmon depends on it."""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posmon.domain.orders import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionState,
    Side,
    SymbolRules,
)
from posmon.exchange.errors import OrderNotFound, Rejected
from posmon.exchange.events import OrderUpdate, PositionUpdate
from posmon.sim.engine import MatchingEngine

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LONG, SHORT = Side.LONG, Side.SHORT
MARKET, LIMIT = OrderType.MARKET, OrderType.LIMIT
STOP, TP = OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET

RULES = {
    "BTCUSDT": SymbolRules("BTCUSDT", D("0.1"), D("0.001"), min_qty=D("0.001"), min_notional=D("5")),
    "XRPUSDT": SymbolRules("XRPUSDT", D("0.0001"), D("0.1"), min_qty=D("0.1"), min_notional=D("5")),
}


def req(
    side: OrderSide,
    ps: str,
    type_: OrderType = MARKET,
    qty: str = "1",
    *,
    price: str | None = None,
    stop: str | None = None,
    reduce_only: bool = False,
    symbol: str = "BTCUSDT",
    cid: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        client_id=cid if cid is not None else f"pm-{uuid.uuid4().hex[:16]}",
        symbol=symbol,
        side=side,
        position_side=ps,
        type=type_,
        qty=D(qty),
        price=D(price) if price is not None else None,
        stop_price=D(stop) if stop is not None else None,
        reduce_only=reduce_only,
    )


def engine(mark: str | None = "100", *, hedge: bool = True) -> MatchingEngine:
    e = MatchingEngine(RULES, hedge_mode=hedge)
    if mark is not None:
        e.set_mark("BTCUSDT", D(mark), 0.0)
    return e


def opened(e: MatchingEngine, side: Side, qty: str = "1") -> None:
    ps = side.value if e.hedge_mode else "BOTH"
    state = e.place(req(side.opening_order_side, ps, MARKET, qty), 0.0)
    assert state.status is OrderStatus.FILLED
    e.drain_events()


def order_events(events: list) -> list[tuple[str, str, OrderStatus]]:
    return [(ev.client_id, ev.exec_type, ev.status) for ev in events if isinstance(ev, OrderUpdate)]


def position_events(events: list) -> list[PositionState]:
    return [ev.position for ev in events if isinstance(ev, PositionUpdate)]


# ---- market and limit orders --------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [LONG, SHORT])
def test_market_order_opens_at_the_mark(side: Side) -> None:
    e = engine("100")
    state = e.place(req(side.opening_order_side, side.value, MARKET, "2"), 1.0)
    assert (state.status, state.filled_qty, state.avg_price) == (OrderStatus.FILLED, D(2), D(100))
    assert e.position("BTCUSDT", side) == PositionState("BTCUSDT", side, D(2), D(100))
    assert e.positions() == [PositionState("BTCUSDT", side, D(2), D(100))]
    assert e.open_orders() == []


def test_market_order_without_a_mark_is_rejected() -> None:
    e = engine(None)
    with pytest.raises(Rejected):
        e.place(req(BUY, "LONG", MARKET), 0.0)
    assert e.positions() == []
    assert e.drain_events() == []


@pytest.mark.parametrize(
    ("side", "ps", "price", "miss", "beyond"),
    [
        (BUY, "LONG", "95", "95.1", "90"),  # buy limit fills when the mark comes down to it
        (SELL, "SHORT", "105", "104.9", "110"),  # sell limit fills when the mark comes up to it
    ],
)
def test_resting_limit_fills_at_its_price(side: OrderSide, ps: str, price: str, miss: str, beyond: str) -> None:
    e = engine("100")
    e.place(req(side, ps, LIMIT, "1", price=price, cid="lim"), 0.0)
    e.set_mark("BTCUSDT", D(miss), 1.0)
    assert e.query("BTCUSDT", "lim").status is OrderStatus.NEW
    assert [o.client_id for o in e.open_orders("BTCUSDT")] == ["lim"]
    e.set_mark("BTCUSDT", D(beyond), 2.0)  # gaps through the limit: still filled at the limit price
    filled = e.query("BTCUSDT", "lim")
    assert (filled.status, filled.filled_qty, filled.avg_price) == (OrderStatus.FILLED, D(1), D(price))
    assert e.position("BTCUSDT", Side(ps)) == PositionState("BTCUSDT", Side(ps), D(1), D(price))
    assert e.open_orders() == []


@pytest.mark.parametrize(("side", "ps", "price"), [(BUY, "LONG", "120"), (SELL, "SHORT", "80")])
def test_marketable_limit_fills_at_once_at_the_mark(side: OrderSide, ps: str, price: str) -> None:
    e = engine("100")
    state = e.place(req(side, ps, LIMIT, "1", price=price), 0.0)
    assert (state.status, state.avg_price) == (OrderStatus.FILLED, D(100))
    assert e.position("BTCUSDT", Side(ps)) == PositionState("BTCUSDT", Side(ps), D(1), D(100))


def test_limit_rests_while_there_is_no_mark() -> None:
    e = engine(None)
    e.place(req(BUY, "LONG", LIMIT, "1", price="95", cid="lim"), 0.0)
    assert e.query("BTCUSDT", "lim").status is OrderStatus.NEW
    e.set_mark("BTCUSDT", D("94"), 1.0)
    assert e.query("BTCUSDT", "lim").avg_price == D(95)


# ---- stop-market and take-profit-market ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "type_", "stop", "no_trigger", "trigger"),
    [
        (LONG, STOP, "90", "90.1", "85"),  # long stop loss: SELL, triggers at mark <= stop
        (SHORT, STOP, "110", "109.9", "115"),  # short stop loss: BUY, triggers at mark >= stop
        (LONG, TP, "110", "109.9", "115"),  # long take profit: SELL, triggers at mark >= stop
        (SHORT, TP, "90", "90.1", "85"),  # short take profit: BUY, triggers at mark <= stop
    ],
)
def test_trigger_orders_fill_at_the_mark_that_triggers_them(
    side: Side, type_: OrderType, stop: str, no_trigger: str, trigger: str
) -> None:
    e = engine("100")
    opened(e, side, "2")
    e.place(req(side.closing_order_side, side.value, type_, "2", stop=stop, cid="prot"), 1.0)
    e.set_mark("BTCUSDT", D(no_trigger), 2.0)
    assert e.query("BTCUSDT", "prot").status is OrderStatus.NEW
    assert e.position("BTCUSDT", side) is not None
    e.set_mark("BTCUSDT", D(trigger), 3.0)
    state = e.query("BTCUSDT", "prot")
    assert (state.status, state.filled_qty, state.avg_price) == (OrderStatus.FILLED, D(2), D(trigger))
    assert e.position("BTCUSDT", side) is None
    assert e.positions() == []


def test_stop_triggers_at_exactly_its_stop_price() -> None:
    e = engine("100")
    opened(e, LONG)
    e.place(req(SELL, "LONG", STOP, "1", stop="90", cid="sl"), 1.0)
    e.set_mark("BTCUSDT", D("90"), 2.0)
    assert e.query("BTCUSDT", "sl").status is OrderStatus.FILLED


@pytest.mark.parametrize(
    ("side", "type_", "stop"),
    [
        (SELL, STOP, "100"),  # sell stop at/above the mark
        (SELL, STOP, "101"),
        (BUY, STOP, "99"),  # buy stop below the mark
        (SELL, TP, "99"),  # sell take-profit below the mark
        (BUY, TP, "101"),  # buy take-profit above the mark
    ],
)
def test_trigger_order_that_would_trigger_at_once_is_rejected(side: OrderSide, type_: OrderType, stop: str) -> None:
    e = engine("100")
    opened(e, LONG)
    opened(e, SHORT)
    ps = "LONG" if side is SELL else "SHORT"
    with pytest.raises(Rejected) as info:
        e.place(req(side, ps, type_, "1", stop=stop, cid="x"), 1.0)
    assert info.value.code == -2021
    assert e.open_orders() == []
    with pytest.raises(OrderNotFound):
        e.query("BTCUSDT", "x")


# ---- positions: average entry, realized PnL, clamping -------------------------------------------------------------


def test_average_entry_is_quantity_weighted() -> None:
    e = engine("100")
    e.place(req(BUY, "LONG", MARKET, "1"), 0.0)
    e.set_mark("BTCUSDT", D("130"), 1.0)
    e.place(req(BUY, "LONG", MARKET, "2"), 1.0)
    assert e.position("BTCUSDT", LONG) == PositionState("BTCUSDT", LONG, D(3), D(120))


@pytest.mark.parametrize(("side", "exit_", "pnl"), [(LONG, "110", "5"), (SHORT, "110", "-5"), (SHORT, "90", "5")])
def test_realized_pnl_of_a_closing_fill(side: Side, exit_: str, pnl: str) -> None:
    e = engine("100")
    opened(e, side, "1")
    e.set_mark("BTCUSDT", D(exit_), 1.0)
    e.drain_events()
    e.place(req(side.closing_order_side, side.value, MARKET, "0.5"), 1.0)
    trade = [ev for ev in e.drain_events() if isinstance(ev, OrderUpdate) and ev.exec_type == "TRADE"]
    assert [(t.last_qty, t.last_price, t.realized_pnl) for t in trade] == [(D("0.5"), D(exit_), D(pnl))]
    assert e.realized_pnl("BTCUSDT") == D(pnl)
    assert e.position("BTCUSDT", side) == PositionState("BTCUSDT", side, D("0.5"), D(100))


def test_realized_pnl_accumulates_per_symbol_and_opening_fills_realize_nothing() -> None:
    e = engine("100")
    e.set_mark("XRPUSDT", D("1"), 0.0)
    opened(e, LONG, "2")
    e.place(req(BUY, "LONG", MARKET, "10", symbol="XRPUSDT"), 0.0)
    e.set_mark("BTCUSDT", D("110"), 1.0)
    e.place(req(SELL, "LONG", MARKET, "1"), 1.0)
    e.set_mark("BTCUSDT", D("90"), 2.0)
    e.place(req(SELL, "LONG", MARKET, "1"), 2.0)
    assert e.realized_pnl("BTCUSDT") == D(0)  # +10 then -10
    assert e.realized_pnl("XRPUSDT") == D(0)
    assert e.realized_pnl("ETHUSDT") == D(0)
    opens = [ev for ev in e.drain_events() if isinstance(ev, OrderUpdate) and ev.side is BUY]
    assert all(ev.realized_pnl == 0 for ev in opens)


def test_closing_fill_is_clamped_to_the_position_and_the_rest_expires() -> None:
    e = engine("100")
    opened(e, LONG, "0.4")
    state = e.place(req(SELL, "LONG", MARKET, "1", cid="big"), 1.0)
    assert (state.status, state.qty, state.filled_qty) == (OrderStatus.EXPIRED, D(1), D("0.4"))
    assert e.position("BTCUSDT", LONG) is None
    assert e.position("BTCUSDT", SHORT) is None  # hedge mode: closing LONG never opens SHORT
    events = e.drain_events()
    assert order_events(events) == [
        ("big", "NEW", OrderStatus.NEW),
        ("big", "TRADE", OrderStatus.PARTIALLY_FILLED),
        ("big", "EXPIRED", OrderStatus.EXPIRED),
    ]
    trade = events[1]
    assert isinstance(trade, OrderUpdate) and trade.last_qty == D("0.4")
    assert position_events(events) == [PositionState("BTCUSDT", LONG, D(0), D(0))]


def test_closing_order_meeting_no_position_expires_unfilled() -> None:
    e = engine("100")
    state = e.place(req(SELL, "LONG", MARKET, "1", cid="c"), 0.0)
    assert (state.status, state.filled_qty) == (OrderStatus.EXPIRED, D(0))
    assert order_events(e.drain_events()) == [("c", "NEW", OrderStatus.NEW), ("c", "EXPIRED", OrderStatus.EXPIRED)]
    assert e.positions() == []


def test_stop_left_behind_after_take_profit_expires_when_it_triggers() -> None:
    e = engine("100")
    opened(e, LONG, "1")
    e.place(req(SELL, "LONG", TP, "1", stop="110", cid="tp"), 0.0)
    e.place(req(SELL, "LONG", STOP, "1", stop="90", cid="sl"), 0.0)
    e.set_mark("BTCUSDT", D("111"), 1.0)
    assert e.query("BTCUSDT", "tp").status is OrderStatus.FILLED
    assert e.query("BTCUSDT", "sl").status is OrderStatus.NEW  # the venue does not cancel it for us
    e.drain_events()
    e.set_mark("BTCUSDT", D("89"), 2.0)
    sl = e.query("BTCUSDT", "sl")
    assert (sl.status, sl.filled_qty) == (OrderStatus.EXPIRED, D(0))
    assert e.positions() == []
    assert order_events(e.drain_events()) == [("sl", "EXPIRED", OrderStatus.EXPIRED)]


def test_two_stops_triggered_together_close_only_what_is_open() -> None:
    e = engine("100")
    opened(e, LONG, "1")
    e.place(req(SELL, "LONG", STOP, "0.7", stop="95", cid="a"), 0.0)
    e.place(req(SELL, "LONG", STOP, "0.7", stop="90", cid="b"), 0.0)
    e.set_mark("BTCUSDT", D("80"), 1.0)
    a, b = e.query("BTCUSDT", "a"), e.query("BTCUSDT", "b")
    assert (a.status, a.filled_qty) == (OrderStatus.FILLED, D("0.7"))
    assert (b.status, b.filled_qty) == (OrderStatus.EXPIRED, D("0.3"))  # older order first, the rest clamped
    assert e.positions() == []


# ---- hedge vs one-way -----------------------------------------------------------------------------------------------


def test_hedge_mode_keeps_long_and_short_apart() -> None:
    e = engine("100")
    opened(e, LONG, "1")
    opened(e, SHORT, "2")
    assert sorted(e.positions(), key=lambda p: p.side) == [
        PositionState("BTCUSDT", LONG, D(1), D(100)),
        PositionState("BTCUSDT", SHORT, D(2), D(100)),
    ]
    e.place(req(SELL, "LONG", MARKET, "1"), 0.0)
    assert e.positions() == [PositionState("BTCUSDT", SHORT, D(2), D(100))]


@pytest.mark.parametrize(("hedge", "ps"), [(True, "BOTH"), (False, "LONG"), (False, "SHORT")])
def test_position_side_must_match_the_account_mode(hedge: bool, ps: str) -> None:
    e = engine("100", hedge=hedge)
    with pytest.raises(Rejected) as info:
        e.place(req(BUY, ps, MARKET), 0.0)
    assert info.value.code == -4061


def test_one_way_mode_nets_and_can_flip_without_reduce_only() -> None:
    e = engine("100", hedge=False)
    e.place(req(BUY, "BOTH", MARKET, "1"), 0.0)
    assert e.positions() == [PositionState("BTCUSDT", LONG, D(1), D(100))]
    e.set_mark("BTCUSDT", D("110"), 1.0)
    e.drain_events()
    e.place(req(SELL, "BOTH", MARKET, "3", cid="flip"), 1.0)
    assert e.positions() == [PositionState("BTCUSDT", SHORT, D(2), D(110))]
    assert e.realized_pnl("BTCUSDT") == D(10)
    events = e.drain_events()
    assert position_events(events) == [
        PositionState("BTCUSDT", LONG, D(0), D(0)),
        PositionState("BTCUSDT", SHORT, D(2), D(110)),
    ]
    assert e.query("BTCUSDT", "flip").status is OrderStatus.FILLED


def test_one_way_reduce_only_is_clamped_and_never_flips() -> None:
    e = engine("100", hedge=False)
    e.place(req(SELL, "BOTH", MARKET, "1"), 0.0)
    state = e.place(req(BUY, "BOTH", MARKET, "5", reduce_only=True), 0.0)
    assert (state.status, state.filled_qty) == (OrderStatus.EXPIRED, D(1))
    assert e.positions() == []


@pytest.mark.parametrize("held", [None, LONG])
def test_one_way_reduce_only_that_cannot_reduce_expires(held: Side | None) -> None:
    e = engine("100", hedge=False)
    if held is not None:
        e.place(req(BUY, "BOTH", MARKET, "1"), 0.0)
    state = e.place(req(BUY, "BOTH", MARKET, "1", reduce_only=True), 0.0)
    assert (state.status, state.filled_qty) == (OrderStatus.EXPIRED, D(0))
    expected = [] if held is None else [PositionState("BTCUSDT", LONG, D(1), D(100))]
    assert e.positions() == expected


def test_one_way_reduce_only_stop_protects_a_short() -> None:
    e = engine("100", hedge=False)
    e.place(req(SELL, "BOTH", MARKET, "2"), 0.0)
    e.place(req(BUY, "BOTH", STOP, "2", stop="105", reduce_only=True, cid="sl"), 0.0)
    e.set_mark("BTCUSDT", D("106"), 1.0)
    assert e.query("BTCUSDT", "sl").avg_price == D(106)
    assert e.positions() == []
    assert e.realized_pnl("BTCUSDT") == D(-12)


# ---- validation -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (req(BUY, "LONG", MARKET, "1", symbol="NOPEUSDT"), -1121),
        (req(BUY, "LONG", LIMIT, "1", price="95.05"), -4014),
        (req(SELL, "LONG", STOP, "1", stop="90.05"), -4014),
        (req(BUY, "LONG", LIMIT, "1", price="0"), -4013),
        (req(BUY, "LONG", MARKET, "1.0005"), -4023),
        (req(BUY, "LONG", MARKET, "0.0001"), -4003),
        (req(BUY, "LONG", MARKET, "0"), -4003),
        (req(BUY, "LONG", MARKET, "-1"), -4003),
        (req(BUY, "LONG", MARKET, "0.01"), -4164),  # 1 USDT at mark 100
        (req(BUY, "LONG", LIMIT, "0.05", price="90"), -4164),  # 4.5 USDT at the limit price
        (req(BUY, "LONG", LIMIT, "1"), -1102),
        (req(SELL, "LONG", STOP, "1"), -1102),
        (req(SELL, "LONG", TP, "1"), -1102),
        (req(BUY, "LONG", MARKET, "1", price="100"), -1106),
        (req(BUY, "LONG", LIMIT, "1", price="90", stop="95"), -1106),
        (req(BUY, "LONG", MARKET, "1", reduce_only=True), -2022),
        (req(BUY, "LONG", MARKET, "1", cid="pm 1"), -1100),
        (req(BUY, "LONG", MARKET, "1", cid="x" * 37), -1100),
        (req(BUY, "LONG", MARKET, "1", cid=""), -1100),
        (req(BUY, "LONG", MARKET, "1", cid="pm-1\n"), -1100),
        (req(BUY, "LONG", MARKET, "1", cid="pm#1"), -1100),
    ],
    ids=lambda x: str(x) if isinstance(x, int) else "",
)
def test_invalid_orders_are_rejected_with_binance_codes(order: OrderRequest, code: int) -> None:
    e = engine("100")
    with pytest.raises(Rejected) as info:
        e.place(order, 0.0)
    assert info.value.code == code
    assert e.drain_events() == []
    assert e.positions() == [] and e.open_orders() == []
    with pytest.raises(OrderNotFound):  # a rejected order leaves no trace
        e.query(order.symbol, order.client_id)


def test_longest_legal_client_id_and_all_legal_characters_are_accepted() -> None:
    e = engine("100")
    assert e.place(req(BUY, "LONG", MARKET, "1", cid="x" * 36), 0.0).status is OrderStatus.FILLED
    assert e.place(req(BUY, "LONG", MARKET, "1", cid="pm.A:z/0_9-"), 0.0).status is OrderStatus.FILLED


@pytest.mark.parametrize("ps", ["LONG", "BOTH"])
def test_closing_and_reduce_only_orders_are_exempt_from_min_notional(ps: str) -> None:
    e = engine("100", hedge=ps == "LONG")
    e.place(req(BUY, ps, MARKET, "1"), 0.0)
    state = e.place(req(SELL, ps, MARKET, "0.01", reduce_only=ps == "BOTH"), 0.0)
    assert state.status is OrderStatus.FILLED
    assert e.positions()[0].qty == D("0.99")


@pytest.mark.parametrize("fate", ["filled", "canceled", "resting"])
def test_a_client_id_ever_seen_is_duplicated(fate: str) -> None:
    e = engine("100")
    if fate == "filled":
        e.place(req(BUY, "LONG", MARKET, "1", cid="dup"), 0.0)
    else:
        e.place(req(BUY, "LONG", LIMIT, "1", price="90", cid="dup"), 0.0)
        if fate == "canceled":
            e.cancel("BTCUSDT", "dup", 0.0)
    before = e.query("BTCUSDT", "dup")
    with pytest.raises(Rejected) as info:
        e.place(req(BUY, "LONG", LIMIT, "1", price="80", cid="dup"), 1.0)
    assert info.value.code == -4116
    assert "duplicated" in info.value.msg
    assert e.query("BTCUSDT", "dup") == before


def test_a_rejected_client_id_can_be_used_again() -> None:
    e = engine("100")
    with pytest.raises(Rejected):
        e.place(req(BUY, "LONG", LIMIT, "1", price="95.05", cid="retry"), 0.0)
    assert e.place(req(BUY, "LONG", LIMIT, "1", price="95", cid="retry"), 0.0).status is OrderStatus.NEW


# ---- query, cancel, open orders -------------------------------------------------------------------------------------


def test_query_after_fill_and_after_cancel() -> None:
    e = engine("100")
    e.place(req(BUY, "LONG", MARKET, "1", cid="m"), 0.0)
    e.place(req(SELL, "LONG", LIMIT, "1", price="120", cid="l"), 0.0)
    canceled = e.cancel("BTCUSDT", "l", 1.0)
    assert canceled.status is OrderStatus.CANCELED
    assert e.query("BTCUSDT", "l") == canceled
    filled = e.query("BTCUSDT", "m")
    assert (filled.status, filled.filled_qty, filled.avg_price) == (OrderStatus.FILLED, D(1), D(100))
    assert (filled.order_id, canceled.order_id) == ("1", "2")
    assert e.open_orders() == []


@pytest.mark.parametrize(("symbol", "cid"), [("BTCUSDT", "never"), ("XRPUSDT", "m")])
def test_query_of_an_unknown_order_is_2013(symbol: str, cid: str) -> None:
    e = engine("100")
    e.place(req(BUY, "LONG", MARKET, "1", cid="m"), 0.0)
    with pytest.raises(OrderNotFound) as info:
        e.query(symbol, cid)
    assert info.value.code == -2013


@pytest.mark.parametrize("cid", ["never", "filled", "canceled"])
def test_cancel_of_an_order_that_is_not_open_is_2011(cid: str) -> None:
    e = engine("100")
    e.place(req(BUY, "LONG", MARKET, "1", cid="filled"), 0.0)
    e.place(req(BUY, "LONG", LIMIT, "1", price="90", cid="canceled"), 0.0)
    e.cancel("BTCUSDT", "canceled", 0.0)
    e.drain_events()
    with pytest.raises(OrderNotFound) as info:
        e.cancel("BTCUSDT", cid, 1.0)
    assert info.value.code == -2011
    assert e.drain_events() == []


def test_canceled_order_no_longer_fills() -> None:
    e = engine("100")
    e.place(req(BUY, "LONG", LIMIT, "1", price="90", cid="l"), 0.0)
    e.cancel("BTCUSDT", "l", 0.0)
    e.set_mark("BTCUSDT", D("80"), 1.0)
    assert e.positions() == []
    assert e.query("BTCUSDT", "l").filled_qty == 0


def test_open_orders_by_symbol_and_all_in_placement_order() -> None:
    e = engine("100")
    e.set_mark("XRPUSDT", D("1"), 0.0)
    e.place(req(BUY, "LONG", LIMIT, "1", price="90", cid="b1"), 0.0)
    e.place(req(BUY, "LONG", LIMIT, "10", price="0.9", symbol="XRPUSDT", cid="x1"), 0.0)
    e.place(req(BUY, "LONG", LIMIT, "1", price="80", cid="b2"), 0.0)
    assert [o.client_id for o in e.open_orders()] == ["b1", "x1", "b2"]
    assert [o.client_id for o in e.open_orders("BTCUSDT")] == ["b1", "b2"]
    assert [o.client_id for o in e.open_orders("ETHUSDT")] == []
    ids = [int(o.order_id) for o in e.open_orders()]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_set_mark_refuses_unknown_symbols_and_non_positive_prices() -> None:
    e = engine("100")
    with pytest.raises(Rejected):
        e.set_mark("NOPE", D(1), 0.0)
    with pytest.raises(ValueError):
        e.set_mark("BTCUSDT", D(0), 0.0)
    assert e.mark("BTCUSDT") == D(100)
    assert e.mark("XRPUSDT") is None


# ---- the event stream -----------------------------------------------------------------------------------------------


def test_event_sequence_of_a_protected_position() -> None:
    e = engine("100")
    e.drain_events()
    e.place(req(BUY, "LONG", MARKET, "2", cid="entry"), 1.0)
    e.place(req(SELL, "LONG", TP, "1", stop="110", cid="tp"), 2.0)
    e.place(req(SELL, "LONG", STOP, "2", stop="90", cid="sl"), 2.0)
    e.set_mark("BTCUSDT", D("112"), 3.0)
    e.cancel("BTCUSDT", "sl", 4.0)
    events = e.drain_events()
    summary = [
        (ev.client_id, ev.exec_type, ev.status, ev.last_qty, ev.time)
        if isinstance(ev, OrderUpdate)
        else ("position", ev.position.side, ev.position.qty, ev.position.entry_price, ev.time)
        for ev in events
    ]
    assert summary == [
        ("entry", "NEW", OrderStatus.NEW, D(0), 1.0),
        ("entry", "TRADE", OrderStatus.FILLED, D(2), 1.0),
        ("position", LONG, D(2), D(100), 1.0),
        ("tp", "NEW", OrderStatus.NEW, D(0), 2.0),
        ("sl", "NEW", OrderStatus.NEW, D(0), 2.0),
        ("tp", "TRADE", OrderStatus.FILLED, D(1), 3.0),
        ("position", LONG, D(1), D(100), 3.0),
        ("sl", "CANCELED", OrderStatus.CANCELED, D(0), 4.0),
    ]
    tp_trade = events[5]
    assert isinstance(tp_trade, OrderUpdate)
    assert (tp_trade.last_price, tp_trade.avg_price, tp_trade.realized_pnl) == (D(112), D(112), D(12))
    assert tp_trade.type is TP and tp_trade.side is SELL and tp_trade.position_side == "LONG"
    assert e.drain_events() == []


# ---- property: closing orders never take a position below zero ------------------------------------------------------

_prices = st.integers(min_value=50, max_value=150).map(D)
_qtys = st.integers(min_value=1, max_value=3000).map(lambda n: D(n) / 1000)
_start_qtys = st.integers(min_value=50, max_value=3000).map(lambda n: D(n) / 1000)  # above min notional at 100
_closing = st.tuples(
    st.sampled_from(["close"]),
    st.sampled_from([MARKET, LIMIT, STOP, TP]),
    _qtys,
    st.integers(min_value=-30, max_value=30),
)
_ops = st.lists(
    st.one_of(st.tuples(st.just("mark"), _prices), _closing, st.tuples(st.just("cancel"), st.integers(0, 50))),
    max_size=40,
)


def _close_request(e: MatchingEngine, side: Side, type_: OrderType, qty: D, offset: int) -> OrderRequest:
    mark = e.mark("BTCUSDT")
    assert mark is not None
    level = str(mark + offset) if mark + offset > 0 else "1"
    ps = side.value if e.hedge_mode else "BOTH"
    return req(
        side.closing_order_side,
        ps,
        type_,
        str(qty),
        price=level if type_ is LIMIT else None,
        stop=level if type_ in (STOP, TP) else None,
        reduce_only=not e.hedge_mode,
    )


def _run_closing_ops(hedge: bool, side: Side, start: D, ops: list) -> None:
    e = engine("100", hedge=hedge)
    opened(e, side, str(start))
    held = start
    placed: list[str] = []
    for op in ops:
        if op[0] == "mark":
            e.set_mark("BTCUSDT", op[1], 1.0)
        elif op[0] == "cancel" and placed:
            with contextlib.suppress(OrderNotFound):
                e.cancel("BTCUSDT", placed[op[1] % len(placed)], 1.0)
        elif op[0] == "close":
            try:
                placed.append(e.place(_close_request(e, side, op[1], op[2], op[3]), 1.0).client_id)
            except Rejected as exc:
                assert exc.code == -2021  # only a stop on the wrong side of the mark may be refused
        other = Side.SHORT if side is Side.LONG else Side.LONG
        assert e.position("BTCUSDT", other) is None, "a closing order flipped the position"
        position = e.position("BTCUSDT", side)
        qty = position.qty if position else D(0)
        assert D(0) <= qty <= held, "position went below zero or grew from closing orders"
        held = qty
    fills = [ev for ev in e.drain_events() if isinstance(ev, OrderUpdate) and ev.is_fill]
    assert sum(f.last_qty for f in fills) == start - held


@settings(max_examples=150, deadline=None)
@given(hedge=st.booleans(), side=st.sampled_from([LONG, SHORT]), start=_start_qtys, ops=_ops)
def test_closing_orders_never_take_a_position_below_zero_or_flip_it(
    hedge: bool, side: Side, start: D, ops: list
) -> None:
    _run_closing_ops(hedge, side, start, ops)
