"""Exit plans: validation, the ladder's quantities and prices, the trailing stop and break-even, to the tick."""

from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posmon.domain.exitplan import (
    NO_PLAN,
    BreakEven,
    PlanError,
    TpLevel,
    Trailing,
    after_level_filled,
    level_qty,
    make_plan,
    moved_stop,
    plan_from_text,
    stop_gate,
    tp_leg_covers,
)
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import Risk, Tranche, extend_tranche, new_tranche

RULES = SymbolRules("BTCUSDT", tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"))
LADDER = [["1", "30"], ["2", "30"], ["3", "40"]]
PROPS = settings(max_examples=300, deadline=None, derandomize=True)


def opened(side: Side, plan, *, qty: str = "1.000", price: str = "100", sl_pct: str = "5") -> Tranche:
    risk = Risk(tp_pct=D(1), sl_pct=D(sl_pct), plan=plan)
    return new_tranche(
        id=1,
        venue="sim",
        symbol="BTCUSDT",
        side=side,
        index=0,
        qty=D(qty),
        price=D(price),
        now=0.0,
        risk=risk,
        rules=RULES,
    )


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"tp_levels": [["1", "30"], ["2", "30"]]}, "tp_levels", "shares sum to 60, expected 100"),
        ({"tp_levels": [["2", "50"], ["1", "50"]]}, "tp_levels", "must be above level 1's 2"),
        ({"tp_levels": [["1", "0"], ["2", "100"]]}, "tp_levels", "share 0 must be > 0"),
        ({"tp_levels": [["1", "50", "x"]]}, "tp_levels", "must be [pct, share]"),
        ({"tp_levels": [["abc", "100"]]}, "tp_levels", "expected a number"),
        ({"trailing_callback_pct": "0.05"}, "trailing_callback_pct", "outside 0.1-50 %"),
        ({"trailing_callback_pct": "60"}, "trailing_callback_pct", "outside 0.1-50 %"),
        ({"trailing_activation_pct": "1"}, "trailing_callback_pct", "needs trailing_callback_pct"),
        ({"trailing_callback_pct": "1", "trailing_activation_pct": "-1"}, "trailing_activation_pct", ">= 0"),
        ({"breakeven_after_tp": 1}, "breakeven_after_tp", "needs a ladder of more than 1 levels"),
        ({"breakeven_after_tp": 1.5}, "breakeven_after_tp", "whole number"),
        ({"breakeven_offset_pct": "0.1"}, "breakeven_offset_pct", "needs breakeven_after_tp"),
        ({"breakeven_trigger_pct": "0.1", "breakeven_offset_pct": "0.2"}, "breakeven_trigger_pct", "above"),
    ],
)
def test_a_plan_that_cannot_be_followed_is_refused_naming_its_field(fields, field, words):
    with pytest.raises(PlanError) as err:
        make_plan(**fields)
    assert err.value.field == field
    assert words in str(err.value)


def test_no_keys_make_the_empty_plan_which_is_todays_one_tp_one_sl():
    assert make_plan() == NO_PLAN
    assert not make_plan()
    assert NO_PLAN.to_text() is None and plan_from_text(None) is NO_PLAN


def test_a_plan_round_trips_through_its_stored_text():
    plan = make_plan(
        tp_levels=LADDER,
        trailing_activation_pct="1.5",
        trailing_callback_pct="0.5",
        trailing_min_step_pct="0.2",
        breakeven_after_tp=2,
        breakeven_offset_pct="0.1",
        breakeven_trigger_pct="1.2",
    )
    assert plan.tp_levels == (TpLevel(D(1), D(30)), TpLevel(D(2), D(30)), TpLevel(D(3), D(40)))
    assert plan.trailing == Trailing(D("1.5"), D("0.5"), D("0.2"))
    assert plan.breakeven == BreakEven(2, D("0.1"), D("1.2"))
    assert plan_from_text(plan.to_text()) == plan
    assert plan.describe() == (
        "ladder 1%x30% 2%x30% 3%x40%, trailing 0.5% from +1.5%, break-even +0.1% after TP2 or at +1.2%"
    )


# --- ladder -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "prices"), [(Side.LONG, ("101", "102", "103")), (Side.SHORT, ("99", "98", "97"))])
def test_a_three_level_ladder_closes_each_share_and_the_last_takes_the_rest(side, prices):
    t = opened(side, make_plan(tp_levels=LADDER), qty="1.001")
    base_sl = t.sl
    seen = []
    for _ in range(3):
        q = level_qty(t, RULES)
        seen.append((t.tp, q))
        t = after_level_filled(replace(t, qty=t.qty - q), base_sl, RULES)
    # 30 % of 1.001 rounds down to 0.300; 30/70 of the 0.701 left rounds down to 0.300; the last level takes 0.401.
    assert seen == [(D(prices[0]), D("0.300")), (D(prices[1]), D("0.300")), (D(prices[2]), D("0.401"))]
    assert t.qty == 0 and t.sl == base_sl


def test_a_level_share_below_the_venues_minimum_closes_the_minimum():
    rules = replace(RULES, min_qty=D("0.01"), step_size=D("0.01"))
    t = opened(Side.LONG, make_plan(tp_levels=[["1", "1"], ["2", "99"]]), qty="0.50")
    assert level_qty(t, rules) == D("0.01")


def test_break_even_after_tp1_moves_the_stop_only_once_level_one_fills():
    plan = make_plan(tp_levels=LADDER, breakeven_after_tp=1, breakeven_offset_pct="0.15")
    t = opened(Side.LONG, plan)
    assert t.sl == D("95.00")
    t = after_level_filled(replace(t, qty=D("0.7")), D("95.00"), RULES)
    assert (t.level, t.tp, t.sl) == (1, D("102.00"), D("100.15"))
    short = opened(Side.SHORT, plan, price="200.03")
    assert short.sl == D("210.03")  # 210.0315 rounded toward the entry
    short = after_level_filled(replace(short, qty=D("0.7")), short.sl, RULES)
    assert short.sl == D("199.72")  # 200.03 x 0.9985 = 199.729955, rounded away from the entry: fees covered


def test_break_even_on_a_gain_moves_the_stop_when_the_mark_reaches_the_trigger_and_not_before():
    t = opened(Side.LONG, make_plan(breakeven_trigger_pct="1", breakeven_offset_pct="0.1"))
    assert stop_gate(t, RULES) == D("101")
    assert moved_stop(t, D("100.99"), RULES) is None
    moved = moved_stop(t, D("101.00"), RULES)
    assert moved is not None and moved.sl == D("100.10") and moved.best_mark == D("101.00")
    assert stop_gate(moved, RULES) is None  # earned: nothing more moves by price
    assert moved_stop(moved, D("105"), RULES) is None


def test_an_extended_tranche_keeps_its_ladder_level_and_re_derives_its_exits():
    plan = make_plan(tp_levels=LADDER, breakeven_after_tp=1)
    t = after_level_filled(replace(opened(Side.LONG, plan), qty=D("0.7")), D("95.00"), RULES)
    grown = extend_tranche(t, qty=D("0.3"), price=D("102"), risk=Risk(tp_pct=D(1), sl_pct=D(5), plan=plan), rules=RULES)
    assert (grown.entry, grown.qty, grown.level) == (D("100.6"), D("1.0"), 1)
    assert (grown.tp, grown.sl) == (D("102.61"), D("100.60"))  # level 2 at +2 %; break-even earned: at the entry


# --- trailing stop ----------------------------------------------------------------------------------------------


def test_a_long_trailing_stop_activates_follows_the_best_mark_by_steps_and_never_loosens():
    t = opened(Side.LONG, make_plan(trailing_activation_pct="1", trailing_callback_pct="0.5"))
    assert t.sl == D("95.00")
    assert moved_stop(t, D("100.99"), RULES) is None  # not active yet
    t1 = moved_stop(t, D("101.00"), RULES)
    assert t1 is not None and (t1.sl, t1.best_mark) == (D("100.50"), D("101.00"))  # 100.495 toward the mark
    assert moved_stop(t1, D("101.05"), RULES) is None  # 100.55 is under the 0.1 % step from 100.50
    t2 = moved_stop(t1, D("101.20"), RULES)
    assert t2 is not None and t2.sl == D("100.70")
    assert moved_stop(t2, D("100.80"), RULES) is None  # a falling mark never loosens it
    assert moved_stop(t2, D("101.20"), RULES) is None


def test_a_short_trailing_stop_mirrors_the_long_one():
    t = opened(Side.SHORT, make_plan(trailing_activation_pct="0", trailing_callback_pct="1", trailing_min_step_pct="0"))
    assert t.sl == D("105.00")
    t1 = moved_stop(t, D("99.50"), RULES)
    assert t1 is not None and (t1.sl, t1.best_mark) == (D("100.49"), D("99.50"))  # 100.495 toward the mark
    assert moved_stop(t1, D("99.60"), RULES) is None
    t2 = moved_stop(t1, D("99.49"), RULES)
    assert t2 is not None and t2.sl == D("100.48")


@PROPS
@given(
    side=st.sampled_from(Side),
    callback=st.decimals("0.1", "5", places=2),
    step=st.decimals("0", "1", places=2),
    activation=st.decimals("0", "3", places=2),
    moves=st.lists(st.integers(-300, 300), min_size=1, max_size=40),
)
def test_the_gate_is_never_late_and_the_stop_never_loosens(side, callback, step, activation, moves):
    plan = make_plan(trailing_activation_pct=activation, trailing_callback_pct=callback, trailing_min_step_pct=step)
    t = opened(side, plan)
    mark = D("100")
    for cents in moves:
        mark = max(mark + D(cents) / 100, D("1"))
        gate = stop_gate(t, RULES)
        moved = moved_stop(t, mark, RULES)
        if moved is None:
            continue
        assert gate is not None and side.sign * (mark - gate) >= 0, "moved below the wake-up gate"
        assert side.sign * (moved.sl - t.sl) > 0
        assert side.sign * (mark - moved.sl) > 0  # the stop stays behind the mark
        t = moved


def test_a_level_tp_covers_its_share_or_once_partly_filled_the_rest_of_it():
    t = opened(Side.LONG, make_plan(tp_levels=LADDER), qty="1.000")  # level 1: 0.300
    assert tp_leg_covers(t, D("0.300"), D(0), RULES)
    assert not tp_leg_covers(t, D("1.000"), D(0), RULES)  # a TP for the whole tranche
    smaller = replace(t, qty=D("0.800"))  # 0.200 of the level filled: its order rests for 0.100
    assert tp_leg_covers(smaller, D("0.300"), D("0.200"), RULES)
    assert not tp_leg_covers(smaller, D("0.300"), D(0), RULES)  # unfilled: it must be the share of 0.800 (0.240)
    assert not tp_leg_covers(smaller, D("1.000"), D("0.200"), RULES)  # what is left covers the whole tranche
