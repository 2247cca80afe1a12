"""Hedge pairs: sizing on two steps, the entry rule (unwind a lone fill, trim a partial one), leg exits, imbalance,
combined PnL and the pair-level TP/SL."""

from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posmon.domain.instruments import InstrumentError, InstrumentTable
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.pairs import (
    Act,
    Leg,
    LegCommand,
    OnLegExit,
    PairError,
    PairReason,
    PairRules,
    PairStatus,
    add_funding,
    breaches,
    close_pair,
    entry_ended,
    imbalance_pct,
    late_entry,
    leg_exited,
    new_pair,
    pair_exit,
    pair_pnl,
    plan_legs,
    settle_entries,
    size_pair,
)
from posmon.domain.rounding import round_down

ASTER_STEP, LIGHTER_STEP = D("0.001"), D("0.00001")


def pair(rules=None, *, qa=D("0.150"), qb=D("0.15000"), sa=ASTER_STEP, sb=LIGHTER_STEP, ids=((11,), (12,))):
    return new_pair(
        1,
        Leg("aster", "BTCUSDT", Side.LONG, qa, sa, tranche_ids=ids[0]),
        Leg("lighter", "BTC", Side.SHORT, qb, sb, tranche_ids=ids[1]),
        rules,
    )


def opened(rules=None, *, fa=D("0.150"), fb=D("0.15000"), pa=D("100"), pb=D("101")):
    p = entry_ended(pair(rules), 0, fa, pa, 11)
    return settle_entries(entry_ended(p, 1, fb, pb, 12)).pair


# --- construction and sizing ------------------------------------------------------------------------------------


def test_a_pair_needs_two_venues_opposite_sides_and_sane_rules():
    a = Leg("aster", "BTCUSDT", Side.LONG, D(1), ASTER_STEP)
    with pytest.raises(PairError, match="both on aster"):
        new_pair(1, a, a)
    with pytest.raises(PairError, match="opposite sides"):
        new_pair(1, a, replace(a, venue="lighter"))
    with pytest.raises(PairError, match="tp_quote"):
        new_pair(1, a, Leg("lighter", "BTC", Side.SHORT, D(1), LIGHTER_STEP), PairRules(tp_quote=D(0)))


def test_sizing_rounds_down_to_each_step_and_reports_the_residue():
    s = size_pair(D("0.1234567"), ASTER_STEP, LIGHTER_STEP)
    assert s.qty == (D("0.123"), D("0.123"))  # the common quantity is Aster's (the coarser step)
    assert s.common == D("0.123")
    assert s.residue == (D("0.0004567"), D("0.0004567"))
    assert s.tradable


def test_sizing_below_a_step_is_not_tradable_and_a_non_positive_request_is_refused():
    assert not size_pair(D("0.0009"), ASTER_STEP, LIGHTER_STEP).tradable
    with pytest.raises(PairError, match="qty"):
        size_pair(D(0), ASTER_STEP, LIGHTER_STEP)


steps = st.sampled_from([D("1"), D("0.5"), D("0.1"), D("0.03"), D("0.02"), D("0.01"), D("0.001"), D("0.00001")])
quantities = st.decimals(min_value=D("0.00001"), max_value=D("1000"), places=6)


@given(quantities, steps, steps)
def test_rounding_never_hedges_more_than_the_smaller_leg(qty, sa, sb):
    s = size_pair(qty, sa, sb)
    smaller = min(s.qty)
    for leg, step in zip(s.qty, (sa, sb), strict=True):
        assert leg <= qty and leg <= s.common
        assert leg % step == 0  # on the venue's step
        assert leg - smaller < max(sa, sb)  # neither leg exceeds the smaller by a whole coarser step
    assert s.residue == (qty - s.qty[0], qty - s.qty[1])


@given(quantities, quantities, steps, steps)
def test_a_trim_leaves_the_legs_within_one_coarser_step(fa, fb, sa, sb):
    fa, fb = round_down(fa, sa), round_down(fb, sb)
    p = pair(qa=max(fa, sa), qb=max(fb, sb), sa=sa, sb=sb)
    p = entry_ended(entry_ended(p, 0, fa, D(100) if fa else None, 11), 1, fb, D(100) if fb else None, 12)
    settled = settle_entries(p)
    held = [leg.filled_qty for leg in p.legs]
    for cmd in settled.commands:  # what the legs hold once the commands are done
        held[cmd.leg] = held[cmd.leg] - cmd.qty if cmd.act is Act.TRIM else D(0)
    assert abs(held[0] - held[1]) < max(sa, sb)
    assert held == [leg.filled_qty for leg in settled.pair.legs] or settled.pair.status is not PairStatus.OPEN
    if settled.pair.status is PairStatus.OPEN:
        assert all(h > 0 for h in held)
    else:  # broken or never opened: nothing is left held on either venue
        assert held == [D(0), D(0)]


# --- entries ----------------------------------------------------------------------------------------------------


def test_nothing_is_decided_until_both_entries_ended():
    p = entry_ended(pair(), 0, D("0.150"), D(100), 11)
    assert settle_entries(p).pair.status is PairStatus.OPENING and not settle_entries(p).commands


def test_both_entries_filled_open_the_pair():
    p = opened()
    assert p.status is PairStatus.OPEN
    assert [leg.filled_qty for leg in p.legs] == [D("0.150"), D("0.15000")]
    assert p.legs[0].entry == D(100)


def test_one_entry_rejected_unwinds_the_filled_leg_in_full():
    p = entry_ended(entry_ended(pair(), 0, D(0), None, 11), 1, D("0.15000"), D(101), 12)
    s = settle_entries(p)
    assert s.pair.status is PairStatus.BROKEN and s.pair.close_reason == PairReason.ENTRY_REJECTED
    assert s.commands == (LegCommand(1, Act.CLOSE, PairReason.ENTRY_REJECTED),)


def test_both_entries_rejected_close_the_pair_with_nothing_to_send():
    p = entry_ended(entry_ended(pair(), 0, D(0), None, 11), 1, D(0), None, 12)
    s = settle_entries(p)
    assert (s.pair.status, s.pair.close_reason, s.commands) == (PairStatus.CLOSED, PairReason.ENTRY_FAILED, ())


def test_a_partial_fill_trims_the_other_leg_to_the_same_base_quantity_on_its_step():
    # Lighter filled 0.12345 of 0.15: Aster (step 0.001) keeps 0.123 and trims 0.027; the partial leg is left as
    # it filled, its 0.00045 beyond Aster's grid (under one Aster step) reported as the unhedged difference.
    s = settle_entries(entry_ended(entry_ended(pair(), 0, D("0.150"), D(100), 11), 1, D("0.12345"), D(101), 12))
    assert s.pair.status is PairStatus.OPEN
    assert s.commands == (LegCommand(0, Act.TRIM, "TRIM", D("0.027")),)
    assert [leg.filled_qty for leg in s.pair.legs] == [D("0.123"), D("0.12345")]
    assert s.pair.residue == (D("0.027"), D("0.02655"))
    assert s.pair.legs[1].filled_qty - s.pair.legs[0].filled_qty < ASTER_STEP


def test_a_partial_fill_below_the_other_venues_step_unwinds_both():
    s = settle_entries(entry_ended(entry_ended(pair(), 0, D("0.150"), D(100), 11), 1, D("0.0005"), D(101), 12))
    assert s.pair.status is PairStatus.BROKEN
    assert {c.leg for c in s.commands} == {0, 1} and all(c.act is Act.CLOSE for c in s.commands)


# --- leg exits --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["TP", "SL", "TIMEOUT", "LIQUIDATION", "MANUAL", "EXTERNAL"])
@pytest.mark.parametrize("leg", [0, 1])
def test_a_leg_exit_closes_the_other_leg(reason, leg):
    d = leg_exited(opened(), (11, 12)[leg], reason, None)
    assert d.pair.status is PairStatus.CLOSING and d.pair.close_reason == f"LEG_{reason}"
    assert d.commands == (LegCommand(1 - leg, Act.CLOSE, f"LEG_{reason}"),)
    assert d.pair.legs[leg].flat and d.pair.legs[leg].exit_reason == reason
    # The other leg's own exit then closes the pair, and sends nothing more.
    done = leg_exited(d.pair, (11, 12)[1 - leg], "CLOSE", None)
    assert (done.pair.status, done.commands) == (PairStatus.CLOSED, ())


def test_protect_option_gives_the_other_leg_a_stop_instead():
    d = leg_exited(opened(PairRules(on_leg_exit=OnLegExit.PROTECT)), 11, "SL", None)
    assert d.commands == (LegCommand(1, Act.PROTECT, "LEG_SL"),)


def test_an_exit_of_a_tranche_not_in_the_pair_changes_nothing():
    p = opened()
    assert leg_exited(p, 99, "SL", None).pair == p


def test_a_partial_leg_exit_keeps_the_pair_and_alarms_past_the_imbalance_limit():
    p = opened(PairRules(max_leg_imbalance_pct=D(5)))
    p = p.with_leg(0, replace(p.legs[0], tranche_ids=(11, 13)))
    d = leg_exited(p, 13, "TP", D("0.015"))  # 10 % of the Aster leg
    assert d.pair.status is PairStatus.OPEN and d.pair.legs[0].filled_qty == D("0.135")
    assert imbalance_pct(d.pair) == D(10) and breaches(d.pair)
    assert d.imbalance_alarm and d.commands == ()


def test_auto_rebalance_trims_the_larger_leg_to_the_smaller():
    p = opened(PairRules(max_leg_imbalance_pct=D(5), auto_rebalance=True))
    p = p.with_leg(0, replace(p.legs[0], tranche_ids=(11, 13)))
    d = leg_exited(p, 13, "TP", D("0.015"))
    assert d.commands == (LegCommand(1, Act.TRIM, "REBALANCE", D("0.01500")),)
    assert d.pair.legs[1].filled_qty == D("0.13500") and not breaches(d.pair)


def test_within_the_limit_there_is_no_alarm():
    p = opened(PairRules(max_leg_imbalance_pct=D(20)))
    p = p.with_leg(0, replace(p.legs[0], tranche_ids=(11, 13)))
    assert not leg_exited(p, 13, "TP", D("0.015")).imbalance_alarm


# --- PnL and pair exits -----------------------------------------------------------------------------------------


def test_combined_pnl_adds_both_legs_and_funding_at_the_marks():
    p = add_funding(opened(), 1, D("-0.25"))
    pnl = pair_pnl(p, {0: D(110), 1: D(108)})
    # long 100 -> 110: +10 x 0.15; short 101 -> 108: -7 x 0.15, less the funding it paid
    assert pnl.legs == (D("1.500"), D("-1.30000"))
    assert pnl.combined == D("0.20000")
    assert pnl.pct == pnl.combined / ((D(100) * D("0.150") + D(101) * D("0.15")) / 2) * 100


def test_pair_tp_and_sl_on_the_combined_pnl_in_quote_and_percent():
    p = opened(PairRules(tp_quote=D("0.1"), sl_pct=D(1)))  # long at 100, short at 101: the spread is the trade
    assert pair_exit(p, {0: D(100), 1: D(101)}) is None
    assert pair_exit(p, {0: D(105), 1: D(105)}) == PairReason.PAIR_TP  # +0.75 - 0.60 = 0.15 quote
    assert pair_exit(p, {0: D(100), 1: D(102)}) is None  # -0.15 of a 15.075 notional: -0.995 %
    assert pair_exit(p, {0: D(100), 1: D(103)}) == PairReason.PAIR_SL  # -0.30: -1.99 %


def test_no_pair_exit_without_both_marks():
    assert pair_exit(opened(PairRules(tp_quote=D("0.01"))), {0: D(200)}) is None


def test_closing_a_pair_closes_every_leg_that_holds_something_once():
    d = close_pair(opened(), PairReason.PAIR_TP)
    assert d.pair.status is PairStatus.CLOSING
    assert d.commands == (LegCommand(0, Act.CLOSE, "PAIR_TP"), LegCommand(1, Act.CLOSE, "PAIR_TP"))
    assert close_pair(d.pair, PairReason.MANUAL).commands == ()


def test_an_entry_that_fills_after_the_other_leg_exited_is_closed_at_once():
    p = entry_ended(pair(), 0, D("0.150"), D(100), 11)
    d = leg_exited(p, 11, "SL", None)  # Aster's leg stopped out before Lighter's entry ended
    assert d.pair.status is PairStatus.CLOSING
    late = late_entry(d.pair, 1, D("0.15000"), D(101), 12)
    assert late.commands == (LegCommand(1, Act.CLOSE, "LEG_SL"),)
    rejected = late_entry(d.pair, 1, D(0), None, 12)  # rejected instead: both legs flat, the pair is closed
    assert (rejected.commands, rejected.pair.status) == ((), PairStatus.CLOSED)


RULES = {
    "aster": {
        "BTCUSDT": SymbolRules("BTCUSDT", D("0.1"), D("0.001"), min_qty=D("0.001"), min_notional=D(5)),
        "ETHUSDT": SymbolRules("ETHUSDT", D("0.01"), D("0.01")),
    },
    "lighter": {"BTC": SymbolRules("BTC", D("0.1"), D("0.00001"), base_asset="BTC", quote_asset="USDC")},
}


def test_a_plan_finds_the_other_venues_symbol_and_sizes_both_legs():
    plan = plan_legs(InstrumentTable.build(RULES), RULES, "aster", "BTCUSDT", Side.LONG, "lighter", D("0.12345"))
    a, b = plan.legs
    assert (a.venue, a.symbol, a.side, a.target_qty, a.step) == ("aster", "BTCUSDT", Side.LONG, D("0.123"), D("0.001"))
    assert (b.venue, b.symbol, b.side, b.target_qty) == ("lighter", "BTC", Side.SHORT, D("0.12300"))
    assert plan.sizing.residue == (D("0.00045"), D("0.00045"))
    # A new pair from the plan (ids allocated by the caller).
    assert new_pair(7, *plan.legs).status is PairStatus.OPENING


def test_a_plan_refuses_what_a_venue_could_not_trade():
    table = InstrumentTable.build(RULES)
    with pytest.raises(PairError, match=r"qty: 0.0005 is 0.000 on aster BTCUSDT"):
        plan_legs(table, RULES, "aster", "BTCUSDT", Side.LONG, "lighter", D("0.0005"))
    with pytest.raises(PairError, match="below aster's minimum 5"):
        plan_legs(table, RULES, "aster", "BTCUSDT", Side.LONG, "lighter", D("0.002"), mark=D(1000))
    with pytest.raises(InstrumentError, match="lighter lists no ETH"):
        plan_legs(table, RULES, "aster", "ETHUSDT", Side.LONG, "lighter", D(1))
