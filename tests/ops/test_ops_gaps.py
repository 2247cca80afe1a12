"""The pure gap finder and repair planner: each kind of gap from hand-made books, both position modes,
and the emulated-exits rule (Lighter), where posmon itself watches TP/SL/hold time and no leg may rest."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal as D

import pytest

from posmon.domain.exitplan import level_qty, make_plan
from posmon.domain.orders import (
    OrderSide,
    OrderState,
    OrderStatus,
    OrderType,
    PositionState,
    Purpose,
    Side,
    SymbolRules,
    WorkingType,
)
from posmon.domain.protection import LocalState, OrderRecord, protection_orders
from posmon.domain.tranche import Risk, Tranche
from posmon.ops.gaps import Account, Book, GapKind, find_gaps
from posmon.ops.plan import PlanContext, plan_repairs

RULES = {"BTCUSDT": SymbolRules("BTCUSDT", D("0.1"), D("0.001"))}
RISK = Risk(tp_pct=D(1), sl_pct=D(50))


def tranche(tid: int = 1, qty: str = "0.1", side: Side = Side.LONG, **kw) -> Tranche:
    base = dict(
        id=tid,
        venue="aster",
        symbol="BTCUSDT",
        side=side,
        index=tid - 1,
        entry=D("45000"),
        qty=D(qty),
        tp=D("45450") if side is Side.LONG else D("44550"),
        sl=D("22500") if side is Side.LONG else D("67500"),
        opened_at=0.0,
    )
    return Tranche(**(base | kw))


def legs(t: Tranche, *, hedge: bool = True, state: LocalState = LocalState.LIVE) -> tuple[Tranche, list[OrderRecord]]:
    t, tp, sl = protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=hedge)
    return t, [OrderRecord(o.request, o.tranche_id, o.purpose, state) for o in (tp, sl)]


def on_exchange(rec: OrderRecord, **kw) -> OrderState:
    r = rec.request
    base = dict(
        client_id=r.client_id,
        order_id="1",
        symbol=r.symbol,
        side=r.side,
        position_side=r.position_side,
        type=r.type,
        status=OrderStatus.NEW,
        qty=r.qty,
        filled_qty=D(0),
        avg_price=D(0),
        price=r.price,
        stop_price=r.stop_price,
        reduce_only=r.reduce_only,
    )
    return OrderState(**(base | kw))


def pos(qty: str = "0.1", side: Side = Side.LONG, entry: str = "45000") -> PositionState:
    return PositionState("BTCUSDT", side, D(qty), D(entry))


def gaps(tranches, records, positions, orders, **kw):
    return find_gaps(
        Book(tranches, records),
        Account(positions, orders),
        prefix="pm",
        hedge_mode=kw.pop("hedge_mode", True),
        rules=RULES,
        **kw,
    )


def protected(hedge: bool = True, side: Side = Side.LONG):
    t, recs = legs(tranche(side=side), hedge=hedge)
    return t, recs, [on_exchange(r) for r in recs]


@pytest.mark.parametrize("hedge", [True, False])
@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_a_protected_tranche_has_no_gaps_in_either_position_mode(hedge, side):
    t, recs, orders = protected(hedge, side)
    assert gaps([t], recs, [pos(side=side)], orders, hedge_mode=hedge) == []


def test_position_without_tranches_is_unknown_with_its_uncovered_qty():
    (g,) = gaps([], [], [pos("0.25")], [])
    assert (g.kind, g.qty, g.side) == (GapKind.UNKNOWN_POSITION, D("0.25"), Side.LONG)


@pytest.mark.parametrize(
    ("held", "kind", "qty"), [("0.15", GapKind.UNDER_COVERED, "0.05"), ("0.04", GapKind.OVER_COVERED, "0.06")]
)
def test_tranches_not_adding_up_to_the_position(held, kind, qty):
    t, recs, orders = protected()
    (g,) = gaps([t], recs, [pos(held)], orders)
    assert (g.kind, g.qty, g.expected, g.actual) == (kind, D(qty), D(held), D("0.1"))


def test_tranche_with_no_position():
    t, recs, orders = protected()
    (g,) = gaps([t], recs, [], orders)
    assert (g.kind, g.tranche_id) == (GapKind.NO_POSITION, t.id)


def test_one_way_position_on_the_other_side_is_unknown_and_the_tranche_has_none():
    t, recs, orders = protected(hedge=False)
    found = gaps([t], recs, [pos(side=Side.SHORT)], orders, hedge_mode=False)
    assert {(g.kind, g.side) for g in found} == {
        (GapKind.NO_POSITION, Side.LONG),
        (GapKind.UNKNOWN_POSITION, Side.SHORT),
    }


def test_missing_legs():
    t, recs, orders = protected()
    assert [g.kind for g in gaps([t], recs, [pos()], orders[:1])] == [GapKind.MISSING_SL]
    assert [g.kind for g in gaps([t], recs, [pos()], orders[1:])] == [GapKind.MISSING_TP]


def test_wrong_size_counts_what_is_left_after_partial_fills():
    t, recs, orders = protected()
    partly = on_exchange(recs[1], filled_qty=D("0.04"))
    (g,) = gaps([t], recs, [pos()], [orders[0], partly])
    assert (g.kind, g.purpose, g.expected, g.actual) == (GapKind.WRONG_SIZE, Purpose.SL, D("0.1"), D("0.06"))


def test_wrong_price_and_a_safe_direction_reround_is_not_one():
    t, recs, orders = protected()
    (g,) = gaps([t], recs, [pos()], [orders[0], on_exchange(recs[1], stop_price=D("20000"))])
    assert (g.kind, g.expected, g.actual) == (GapKind.WRONG_PRICE, D("22500"), D("20000"))
    coarse = {"BTCUSDT": SymbolRules("BTCUSDT", D("1000"), D("0.001"))}
    t2 = tranche(sl=D("22450"))
    t2, recs2 = legs(t2)
    ok = [on_exchange(recs2[0]), on_exchange(recs2[1], stop_price=D("23000"))]  # a SELL stop re-rounds up
    assert find_gaps(Book([t2], recs2), Account([pos()], ok), prefix="pm", hedge_mode=True, rules=coarse) == []


def test_orphans_unknown_tranche_not_in_store_cancel_pending_and_superseded():
    t, recs, orders = protected()
    t2, newer = legs(t)  # a second pair decided later (seq 2); the first pair still rests
    stray = on_exchange(recs[0], client_id="pm-99-T1")
    cancelling = OrderRecord(recs[1].request, t.id, Purpose.SL, LocalState.CANCELING)
    found = gaps([t2], [recs[0], cancelling, *newer], [pos()], [*orders, *(on_exchange(r) for r in newer), stray])
    why = {g.client_id: g.detail for g in found if g.kind is GapKind.ORPHAN_ORDER}
    assert set(why) == {"pm-99-T1", "pm-1-T1", "pm-1-S1"}
    assert "superseded by pm-1-T2" in why["pm-1-T1"] and "cancel was decided" in why["pm-1-S1"]
    assert [g.kind for g in found if g.kind is not GapKind.ORPHAN_ORDER] == []


def test_an_order_the_store_does_not_hold_is_an_orphan_even_for_an_open_tranche():
    t, recs, orders = protected()
    found = gaps([t], recs[:1], [pos()], orders)  # the daemon cancels such a stop and places its own
    assert [(g.kind, g.client_id) for g in found] == [(GapKind.MISSING_SL, None), (GapKind.ORPHAN_ORDER, "pm-1-S1")]
    found = gaps([t], recs[:1], [pos()], orders[:1])
    assert [g.kind for g in found] == [GapKind.MISSING_SL]


def test_entry_orders_and_foreign_orders_are_never_orphans():
    t, recs, orders = protected()
    entry = on_exchange(recs[0], client_id="pm-7-E1", side=OrderSide.BUY, type=OrderType.LIMIT)
    foreign = on_exchange(recs[0], client_id="web_123")
    assert gaps([t], recs, [pos()], [*orders, entry, foreign]) == []


def test_a_closing_tranche_is_reported_stuck_not_unprotected():
    t, _, _ = protected()
    closing = tranche(seq=t.seq, closing="TP")
    (g,) = gaps([closing], [], [pos()], [])
    assert g.kind is GapKind.CLOSING_STUCK


# --- emulated exits (Lighter) ---------------------------------------------------------------------------------


def test_emulated_exits_need_no_legs_but_set_exits_and_deadline():
    t = tranche(deadline=3600.0)
    assert gaps([t], [], [pos()], [], emulated_exits=True, max_hold_of=lambda s: 3600) == []
    (g,) = gaps([tranche()], [], [pos()], [], emulated_exits=True, max_hold_of=lambda s: 3600)
    assert g.kind is GapKind.EXITS_UNSET and "no deadline" in g.detail
    (g,) = gaps([tranche(tp=D(0), sl=D("46000"))], [], [pos()], [], emulated_exits=True)
    assert g.kind is GapKind.EXITS_UNSET and "TP 0" in g.detail and "SL 46000" in g.detail


def test_emulated_exits_resting_tp_sl_are_stale_legs():
    t, recs, orders = protected()
    found = gaps([t], recs, [pos()], orders, emulated_exits=True)
    assert [g.kind for g in found] == [GapKind.STALE_LEG, GapKind.STALE_LEG]


def _ctx(**kw) -> PlanContext:
    ids = itertools.count(10)
    base = dict(
        venue="aster",
        prefix="pm",
        hedge_mode=True,
        rules=RULES,
        risk_of=lambda s: RISK,
        working_type_of=lambda s: WorkingType.MARK_PRICE,
        now=100.0,
        new_id=ids.__next__,
    )
    return PlanContext(**(base | kw))


def test_emulated_plan_adopts_without_legs_sets_exits_and_cancels_stale_legs():
    t, recs, orders = protected()
    bare = tranche(tid=2, tp=D(0), side=Side.SHORT)
    book = Book([t, bare], recs)
    account = Account([pos("0.3"), pos("0.1", Side.SHORT)], orders)
    risk = Risk(tp_pct=D(1), sl_pct=D(50), max_hold_seconds=60)
    found = find_gaps(
        book, account, prefix="pm", hedge_mode=True, emulated_exits=True, rules=RULES, max_hold_of=lambda s: 60
    )
    plan = plan_repairs(found, book, account, _ctx(emulated_exits=True, risk_of=lambda s: risk))
    assert plan.place == []
    assert sorted(c.client_id for c in plan.cancels) == ["pm-1-S1", "pm-1-T1"]
    written = {x.id: x for x in plan.changes.tranches}
    assert (written[2].tp, written[2].deadline) == (D("44550"), 60.0)
    assert any(s.action in ("adopt", "extend") for s in plan.steps)


def test_plan_places_before_cancelling_and_never_reuses_a_client_id():
    t, recs, orders = protected()
    wrong = on_exchange(recs[1], qty=D("0.05"))
    book, account = Book([t], recs), Account([pos()], [orders[0], wrong])
    plan = plan_repairs(
        find_gaps(book, account, prefix="pm", hedge_mode=True, rules=RULES),
        book,
        account,
        _ctx(taken=lambda cid: cid == "pm-1-S2"),
    )
    (group,) = plan.place
    assert [o.client_id for o in group] == ["pm-1-S3"]
    (cancel,) = plan.cancels
    assert (cancel.client_id, cancel.after) == ("pm-1-S1", ("pm-1-S3",))
    assert plan.changes.tranches[0].seq == 3


def test_a_symbol_the_operator_stopped_monitoring_is_not_a_gap():
    book = Book([], [], frozenset({"BTCUSDT"}))
    assert find_gaps(book, Account([pos()], []), prefix="pm", hedge_mode=True) == []


# --- exit plans (issue 15): a ladder's TP covers its level's share; a stop the plan moved is not a bad exit ---------

LADDER = make_plan(tp_levels=[[1, 30], [2, 30], [3, 40]])


def ladder_legs(t: Tranche) -> tuple[Tranche, list[OrderRecord], list[OrderState]]:
    """Legs as the daemon places them for a ladder tranche: the TP for the current level's share."""
    rules = RULES[t.symbol]
    t, tp, sl = protection_orders(
        t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=True, tp_qty=level_qty(t, rules)
    )
    recs = [OrderRecord(o.request, o.tranche_id, o.purpose, LocalState.LIVE) for o in (tp, sl)]
    return t, recs, [on_exchange(r) for r in recs]


def test_a_ladder_tp_for_its_levels_share_is_clean_and_one_for_the_whole_tranche_is_a_wrong_size():
    t, recs, orders = ladder_legs(tranche(plan=LADDER))
    assert orders[0].qty == D("0.03")  # 30 % of 0.1
    assert gaps([t], recs, [pos()], orders) == []

    _, plain, _ = protected()  # a TP for all of it, as before the plan
    (g,) = gaps([t], recs, [pos()], [on_exchange(plain[0]), orders[1]])
    assert (g.kind, g.purpose, g.expected, g.actual) == (GapKind.WRONG_SIZE, Purpose.TP, D("0.03"), D("0.1"))
    assert "level 1 of 3" in g.detail and "closes 0.03 of 0.1" in g.detail


def test_a_missing_ladder_level_is_a_gap_for_its_share_and_a_level_at_the_wrong_price_too():
    # Level 1 filled: 0.07 left, level 2 (2 %, 30 of the 70 left) rests next at 45900.
    t = tranche(qty="0.07", plan=LADDER, level=1, tp=D("45900"))
    t, recs, orders = ladder_legs(t)
    assert (orders[0].qty, orders[0].price) == (D("0.03"), D("45900"))
    assert gaps([t], recs, [pos("0.07")], orders) == []

    (g,) = gaps([t], recs, [pos("0.07")], orders[1:])
    assert (g.kind, g.qty) == (GapKind.MISSING_TP, D("0.03")) and "level 2 of 3" in g.detail
    (g,) = gaps([t], recs, [pos("0.07")], [on_exchange(recs[0], price=D("45450")), orders[1]])
    assert (g.kind, g.expected, g.actual) == (GapKind.WRONG_PRICE, D("45900"), D("45450"))


def test_a_ladder_level_partly_filled_rests_for_the_rest_of_its_share_and_is_no_gap():
    """The daemon keeps a level's TP resting for what is left of its share once part of it filled (chaos seeds
    100 and 506 flagged it when verify and the campaign recomputed the share of the smaller tranche)."""
    t, recs, orders = ladder_legs(tranche(plan=LADDER))  # level 1: 0.03 of 0.1
    t = replace(t, qty=D("0.08"))  # 0.02 of the level filled; 0.01 of it rests on
    partly = replace(orders[0], filled_qty=D("0.02"), status=OrderStatus.PARTIALLY_FILLED)
    assert gaps([t], recs, [pos("0.08")], [partly, replace(orders[1], qty=D("0.08"))]) == []
    # Still a gap: a TP left for the whole tranche.
    (g,) = gaps([t], recs, [pos("0.08")], [replace(partly, qty=D("0.1")), replace(orders[1], qty=D("0.08"))])
    assert (g.kind, g.purpose) == (GapKind.WRONG_SIZE, Purpose.TP)


def test_the_last_ladder_level_takes_the_rest():
    t, recs, orders = ladder_legs(tranche(qty="0.04", plan=LADDER, level=2, tp=D("46350")))
    assert orders[0].qty == D("0.04")
    assert gaps([t], recs, [pos("0.04")], orders) == []


def test_protect_places_a_ladder_tp_for_its_levels_share_first_and_never_reuses_an_id():
    t, recs, orders = ladder_legs(tranche(plan=LADDER))
    _, plain, _ = protected()
    wrong = on_exchange(plain[0])  # pm-1-T1 for all 0.1
    book, account = Book([t], [plain[0], recs[1]]), Account([pos()], [wrong, orders[1]])
    found = find_gaps(book, account, prefix="pm", hedge_mode=True, rules=RULES)
    assert [g.kind for g in found] == [GapKind.WRONG_SIZE]
    plan = plan_repairs(found, book, account, _ctx(taken=lambda cid: cid == "pm-1-T2"))
    (group,) = plan.place
    ((tp),) = group
    assert (tp.client_id, tp.request.qty, tp.request.price) == ("pm-1-T3", D("0.03"), D("45450"))
    (cancel,) = plan.cancels
    assert (cancel.client_id, cancel.after) == ("pm-1-T1", ("pm-1-T3",))


def test_protect_renews_a_resized_ladder_tranche_with_the_levels_share():
    t, recs, orders = ladder_legs(tranche(plan=LADDER))
    book, account = Book([t], recs), Account([pos("0.06")], orders)  # 0.04 closed outside posmon
    found = find_gaps(book, account, prefix="pm", hedge_mode=True, rules=RULES)
    plan = plan_repairs(found, book, account, _ctx())
    (group,) = plan.place
    assert {(o.purpose, o.request.qty) for o in group} == {(Purpose.TP, D("0.018")), (Purpose.SL, D("0.06"))}


# Break-even after TP1 at entry + 0.1 % (45045), a trailing stop 1 % behind the best mark from +0.5 %.
BE = make_plan(tp_levels=[[1, 50], [2, 50]], breakeven_after_tp=1, breakeven_offset_pct="0.1")
TRAIL = make_plan(trailing_activation_pct="0.5", trailing_callback_pct=1)


@pytest.mark.parametrize(
    ("t", "flagged"),
    [
        (tranche(qty="0.05", plan=BE, level=1, tp=D("45900"), sl=D("45045"), deadline=60.0), False),
        (tranche(plan=TRAIL, best_mark=D("46000"), sl=D("45540"), deadline=60.0), False),
        (tranche(plan=TRAIL, best_mark=D("46000"), sl=D("45500"), deadline=60.0), False),  # a trail that lags
        (tranche(plan=TRAIL, best_mark=D("46000"), sl=D("45600"), deadline=60.0), True),  # tighter than the plan's
        (tranche(plan=TRAIL, sl=D("45045"), deadline=60.0), True),  # never activated
        (tranche(qty="0.1", plan=BE, level=0, sl=D("45045"), deadline=60.0), True),  # not earned yet
        (tranche(sl=D("45045"), deadline=60.0), True),  # a plain tranche
        (tranche(sl=D("45000"), deadline=60.0), True),
    ],
    ids=["break-even", "trailed", "trail-lags", "tighter", "inactive", "unearned", "plain", "plain-at-entry"],
)
def test_an_sl_past_the_entry_is_a_bad_exit_unless_the_plan_moved_it_there(t, flagged):
    found = gaps([t], [], [pos(str(t.qty))], [], emulated_exits=True, max_hold_of=lambda s: 60)
    assert [g.kind for g in found] == ([GapKind.EXITS_UNSET] if flagged else [])
    if flagged:
        assert f"SL {t.sl.normalize():f}" in found[0].detail


def test_a_short_trailed_stop_below_its_entry_is_not_a_bad_exit():
    t = tranche(side=Side.SHORT, plan=TRAIL, best_mark=D("44000"), sl=D("44440"), deadline=60.0)
    assert gaps([t], [], [pos(side=Side.SHORT)], [], emulated_exits=True, max_hold_of=lambda s: 60) == []
    plain = tranche(side=Side.SHORT, sl=D("44440"), deadline=60.0)
    (g,) = gaps([plain], [], [pos(side=Side.SHORT)], [], emulated_exits=True, max_hold_of=lambda s: 60)
    assert g.kind is GapKind.EXITS_UNSET and "SL 44440" in g.detail


def test_protect_keeps_a_break_even_stop_when_it_sets_a_missing_deadline():
    t = tranche(qty="0.05", plan=BE, level=1, tp=D("45900"), sl=D("45045"))
    book, account = Book([t], []), Account([pos("0.05")], [])
    risk = Risk(tp_pct=D(1), sl_pct=D(50), max_hold_seconds=60)
    found = find_gaps(
        book, account, prefix="pm", hedge_mode=True, emulated_exits=True, rules=RULES, max_hold_of=lambda s: 60
    )
    plan = plan_repairs(found, book, account, _ctx(emulated_exits=True, risk_of=lambda s: risk))
    (written,) = plan.changes.tranches
    assert (written.tp, written.sl, written.deadline) == (D("45900"), D("45045"), 60.0)
    plain = tranche(sl=D("45045"))  # a plain tranche's stop past the entry is replaced by the configured one
    book = Book([plain], [])
    found = find_gaps(
        book, account, prefix="pm", hedge_mode=True, emulated_exits=True, rules=RULES, max_hold_of=lambda s: 60
    )
    (written,) = plan_repairs(found, book, account, _ctx(emulated_exits=True, risk_of=lambda s: risk)).changes.tranches
    assert written.sl == D("22500")
