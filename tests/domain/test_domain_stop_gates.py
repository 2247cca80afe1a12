"""The trigger book's stop gates (trailing stop, break-even on a gain) and the exit policies' plan rules: which
tranche a mark wakes, and whether a resting leg is the one a tranche wants (price and quantity)."""

from dataclasses import replace
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from posmon.domain.exitplan import make_plan, moved_stop, stop_gate
from posmon.domain.exits import ExitContext, RestingExits
from posmon.domain.orders import Purpose, Side, SymbolRules, WorkingType
from posmon.domain.protection import OrderRecord
from posmon.domain.tranche import ExitReason, Risk, Tranche, new_tranche
from posmon.domain.triggers import TriggerBook

RULES = SymbolRules("BTCUSDT", tick_size=D("0.1"), step_size=D("0.001"), min_qty=D("0.001"))
TRAIL = make_plan(trailing_activation_pct=1, trailing_callback_pct=1, trailing_min_step_pct=0)
LADDER = make_plan(tp_levels=[[1, 30], [2, 30], [3, 40]])


def opened(id: int, side: Side, plan, price: str = "45000", qty: str = "0.1") -> Tranche:
    return new_tranche(
        id=id,
        venue="sim",
        symbol="BTCUSDT",
        side=side,
        index=id,
        qty=D(qty),
        price=D(price),
        now=0.0,
        risk=Risk(tp_pct=D(10), sl_pct=D(5), plan=plan if plan is not None else make_plan()),
        rules=RULES,
    )


def book(side: Side, *tranches: Tranche) -> TriggerBook:
    b = TriggerBook(side, take_profit=False, stop_loss=False, timeout=False, rules=RULES)
    for t in tranches:
        b.add(t)
    return b


def test_only_tranches_whose_gate_the_mark_reached_are_woken():
    near, far, plain = opened(1, Side.LONG, TRAIL), opened(2, Side.LONG, TRAIL, "46000"), opened(3, Side.LONG, None)
    b = book(Side.LONG, near, far, plain)
    assert list(b.pop_gated(D("45449.9"))) == []
    assert list(b.pop_gated(D("45450"))) == [1]  # +1 %: the activation of the tranche entered at 45000
    assert list(b.pop_gated(D("45450"))) == []  # consumed until the actor sets the next one


def test_a_mark_that_moved_nothing_is_watched_again_only_strictly_beyond_it():
    t = opened(1, Side.SHORT, make_plan(trailing_callback_pct=1, trailing_min_step_pct="0.5"))
    b = book(Side.SHORT, t)
    gate = stop_gate(t, RULES)
    assert gate is not None
    assert list(b.pop_gated(gate)) == [1]
    b.regate(t, gate)
    assert list(b.pop_gated(gate)) == []  # the same mark again: one comparison, nothing woken
    assert list(b.pop_gated(gate - D("0.1"))) == [1]  # a better one (lower, for a SHORT)


def test_the_slot_gate_includes_the_nearest_stop_gate():
    t = opened(1, Side.LONG, TRAIL)
    b = book(Side.LONG, t)
    assert b.price_gates() == (D("45450"), None)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    side=st.sampled_from(Side),
    path=st.lists(st.integers(min_value=-800, max_value=800), min_size=1, max_size=40),
    step=st.sampled_from(["0", "0.1", "0.25"]),
)
def test_gated_moves_equal_asking_moved_stop_on_every_tick(side, path, step):
    """Waking only at the gate misses no move: the stops match asking ``moved_stop`` on every mark."""
    plan = make_plan(trailing_activation_pct="0.5", trailing_callback_pct=1, trailing_min_step_pct=step)
    gated = every = opened(1, side, plan)
    b = book(side, gated)
    for delta in path:
        mark = D(45000) + D(delta) * 5
        if (m := moved_stop(every, mark, RULES)) is not None:
            every = m
        for _ in b.pop_gated(mark):
            if (m := moved_stop(gated, mark, RULES)) is not None:
                gated = m
                b.add(gated)
            else:
                b.regate(gated, mark)
        assert (gated.sl, gated.best_mark) == (every.sl, every.best_mark)


def ctx() -> ExitContext:
    return ExitContext(Side.LONG, RULES, "pm", False, WorkingType.MARK_PRICE, True, False, 5.0)


def test_resting_legs_are_the_current_levels_share_and_the_whole_tranche():
    policy = RestingExits(ctx())
    t, (tp, sl) = policy.protection(opened(1, Side.LONG, LADDER))
    assert (tp.request.qty, tp.request.price, sl.request.qty, sl.request.stop_price) == (
        D("0.03"),
        D("45450"),
        D("0.1"),
        D("42750"),
    )
    assert policy.leg_ok(t, tp) and policy.leg_ok(t, sl)
    assert not policy.leg_ok(replace(t, sl=D("45000")), sl)  # a moved stop: the resting one is stale
    assert not policy.leg_ok(replace(t, tp=D("45900"), level=1), tp)  # the next level's price
    # A level partly filled keeps resting for the rest of its share.
    part = replace(tp, filled_qty=D("0.01"))
    assert policy.leg_ok(replace(t, qty=D("0.09")), part)
    assert policy.trigger_qty(t, ExitReason.TP) == D("0.03") and policy.trigger_qty(t, ExitReason.SL) == D("0.1")


def test_without_a_plan_a_leg_is_checked_by_quantity_only_as_before():
    policy = RestingExits(ctx())
    t, (tp, sl) = policy.protection(opened(1, Side.LONG, None))
    assert policy.leg_ok(replace(t, sl=D("1"), tp=D("2")), tp)  # prices never change without the quantity
    assert not policy.leg_ok(replace(t, qty=D("0.2")), sl)
    assert policy.trigger_qty(t, ExitReason.TP) == t.qty
    assert isinstance(sl, OrderRecord) and sl.purpose is Purpose.SL
