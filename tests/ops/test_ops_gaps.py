"""The pure gap finder and repair planner: each kind of gap from hand-made books, both position modes,
and the emulated-exits rule (Lighter), where posmon itself watches TP/SL/hold time and no leg may rest."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

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
