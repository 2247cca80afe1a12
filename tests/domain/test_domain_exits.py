"""The exit policies (domain.exits) and the reconciliation maths they and the ops plan share."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posmon.domain.exits import (
    MAX_CAP_PAUSE_SECONDS,
    CloseSlippage,
    EmulatedExits,
    ExitContext,
    ExitPolicy,
    RestingExits,
)
from posmon.domain.orders import OrderSide, OrderType, Purpose, Side, SymbolRules, WorkingType
from posmon.domain.protection import worst_price
from posmon.domain.tranche import Tranche, implied_entry

RULES = SymbolRules("BTCUSDT", tick_size=D("0.1"), step_size=D("0.001"))


def ctx(side: Side = Side.LONG, *, instant_tp: bool = True, hold: bool = False) -> ExitContext:
    return ExitContext(
        side=side,
        rules=RULES,
        prefix="pm",
        hedge_mode=True,
        working_type=WorkingType.MARK_PRICE,
        instant_tp=instant_tp,
        watch_hold_time=hold,
        retry_seconds=5.0,
    )


def tranche(side: Side = Side.LONG, *, seq: int = 0, deadline: float | None = None) -> Tranche:
    tp, sl = (D("45450.0"), D("22500.0")) if side is Side.LONG else (D("44550.0"), D("67500.0"))
    return Tranche(
        id=42,
        venue="sim",
        symbol="BTCUSDT",
        side=side,
        index=0,
        entry=D("45000"),
        qty=D("0.150"),
        tp=tp,
        sl=sl,
        opened_at=0.0,
        seq=seq,
        deadline=deadline,
    )


def levels(policy: ExitPolicy, t: Tranche, mark: D | None, now: float = 0.0) -> list[str]:
    book = policy.trigger_book()
    book.add(t)
    return [reason.value for _, reason in book.pop_triggered(mark, now)]


# --- resting exits (Aster) ---------------------------------------------------------------------------------------


def test_resting_exits_rest_a_tp_limit_and_a_stop_market_for_the_whole_tranche():
    t, legs = RestingExits(ctx()).protection(tranche(seq=3))
    assert t.seq == 4 and [o.purpose for o in legs] == [Purpose.TP, Purpose.SL]
    tp, sl = (o.request for o in legs)
    assert (tp.type, tp.price, tp.qty, tp.client_id) == (OrderType.LIMIT, D("45450.0"), D("0.150"), "pm-42-T4")
    assert (sl.type, sl.stop_price, sl.qty, sl.client_id) == (
        OrderType.STOP_MARKET,
        D("22500.0"),
        D("0.150"),
        "pm-42-S4",
    )


def test_resting_exits_watch_only_the_instant_tp_and_the_hold_time():
    t = tranche(deadline=100.0)
    assert levels(RestingExits(ctx(hold=True)), t, D("45450.0")) == ["TP"]
    assert levels(RestingExits(ctx(hold=True)), t, D("22000")) == []  # the resting stop covers it
    assert levels(RestingExits(ctx(instant_tp=False)), t, D("46000")) == []
    assert levels(RestingExits(ctx(hold=True)), t, None, now=100.0) == ["TIMEOUT"]


def test_resting_exits_close_at_market_with_no_bound():
    close = RestingExits(ctx()).close(tranche(), mark=None)
    assert close is not None and close.rank == 0.0
    req = close.record.request
    assert (req.type, req.price, req.qty, req.side, close.tranche.seq) == (
        OrderType.MARKET,
        None,
        D("0.150"),
        OrderSide.SELL,
        1,
    )


def test_a_resting_close_that_falls_short_waits_longer_each_time_and_tells_a_human_at_the_third():
    policy, t = RestingExits(ctx()), tranche()
    shorts = [policy.close_fell_short(t, 1000.0, "expired") for _ in range(3)]
    assert [s.hold_until for s in shorts] == [1005.0, 1010.0, 1015.0]
    assert all(s.reconcile for s in shorts) and policy.attempts(t.id) == 3
    assert [s.alert for s in shorts] == [None, None, "tranche 42 still open after 3 close attempts: expired"]
    policy.forget(t.id)
    assert policy.attempts(t.id) == 0


# --- emulated exits (Lighter) ------------------------------------------------------------------------------------


def emulated(side: Side = Side.LONG, *, hold: bool = False) -> EmulatedExits:
    return EmulatedExits(ctx(side, instant_tp=False, hold=hold), CloseSlippage(D("0.5"), D("0.5"), D("1.5")))


def test_emulated_exits_rest_nothing_and_watch_tp_sl_and_the_hold_time_themselves():
    t = tranche(deadline=100.0)
    assert emulated().protection(t) == (t, ())
    assert levels(emulated(), t, D("45450.0")) == ["TP"]
    assert levels(emulated(), t, D("22500.0")) == ["SL"]
    assert levels(emulated(hold=True), t, D("45000"), now=100.0) == ["TIMEOUT"]
    short = tranche(Side.SHORT)
    assert levels(emulated(Side.SHORT), short, D("67500.0")) == ["SL"]


def test_an_emulated_close_waits_for_a_mark_then_is_bounded_through_it_and_widens_per_short_fill():
    policy, t = emulated(), tranche()
    assert policy.close(t, None) is None
    bounds = []
    for _ in range(4):
        close = policy.close(t, D("30000"))
        assert close is not None and close.record.request.type is OrderType.MARKET
        bounds.append(close.record.request.price)
        policy.close_fell_short(t, 0.0, "expired")
    # A SELL may fill down to 0.5 %, 1 %, 1.5 % below the mark, then stays at the cap.
    assert bounds == [D("29850.0"), D("29700.0"), D("29550.0"), D("29550.0")]


def test_emulated_closes_furthest_through_their_stop_go_first():
    policy = emulated()
    deep, shallow = tranche(), tranche()
    deep_close = policy.close(deep, D("20000"))
    shallow_close = policy.close(shallow, D("40000"))
    assert deep_close is not None and shallow_close is not None and deep_close.rank < shallow_close.rank


def test_emulated_close_retries_widen_at_once_then_pause_doubling_at_the_cap_with_one_alert():
    policy, t = emulated(), tranche()
    shorts = [policy.close_fell_short(t, 0.0, "expired") for _ in range(12)]
    assert [s.next_bound_pct for s in shorts[:3]] == [D("1.0"), D("1.5"), D("1.5")]
    assert [(s.hold_until, s.reconcile) for s in shorts[:2]] == [(None, False), (None, False)]
    at_cap = shorts[2:]
    assert [s.hold_until for s in at_cap[:5]] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert max(s.hold_until or 0 for s in at_cap) == MAX_CAP_PAUSE_SECONDS
    assert all(s.reconcile for s in at_cap)
    assert [s.exhausted for s in at_cap].count(True) == 1 and at_cap[0].exhausted
    assert [s.alert is not None for s in shorts].count(True) == 1
    assert at_cap[0].alert == (
        "tranche 42 (0.150) not closed within the 1.5% slippage cap: expired; retrying at the cap"
    )


# --- the shared maths --------------------------------------------------------------------------------------------


def test_worst_price_is_through_the_reference_rounded_outward_and_never_below_a_tick():
    assert worst_price(OrderSide.SELL, D("100.07"), D("1"), D("0.1")) == D("99.0")  # 99.0693 floors
    assert worst_price(OrderSide.BUY, D("100.07"), D("1"), D("0.1")) == D("101.1")  # 101.0707 ceils
    assert worst_price(OrderSide.SELL, D("0.1"), D("50"), D("0.1")) == D("0.1")


@given(
    st.decimals(D("0.01"), D("100000"), places=2),
    st.decimals(D("0.1"), D("50"), places=1),
    st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
)
def test_worst_price_never_tighter_than_asked(reference, pct, side):
    price = worst_price(side, reference, pct, D("0.01"))
    exact = reference * (100 - pct if side is OrderSide.SELL else 100 + pct) / 100
    assert (price <= exact or price == D("0.01")) if side is OrderSide.SELL else price >= exact
    assert price % D("0.01") == 0


def test_implied_entry_prices_the_unexplained_part_from_the_venues_average():
    # The venue holds 3 @ 102 on average; a tranche explains 1 @ 100: the other 2 came in at 103.
    assert implied_entry(D("102"), D("3"), [(D("1"), D("100"))], D("0.1")) == D("103.0")
    assert implied_entry(D("102.04"), D("2"), [], D("0.1")) == D("102.0")


@pytest.mark.parametrize("tranches", [[(D("1"), D("400"))], [(D("2"), D("200")), (D("1"), D("300"))]])
def test_implied_entry_falls_back_to_the_venues_average_when_the_tranches_cannot_explain_it(tranches):
    # 4 @ 100 held, but the tranches alone cost more than that: no positive price fits; the venue's average does.
    assert implied_entry(D("100"), D("4"), tranches, D("0.1")) == D("100")
