"""Hedge pairs in the store, on both backends: exact round-trips, written with a decision (its entries too, or
nothing), restored at start-up with each leg's current tranches, a leg's tranche states for a restart."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from posmon.domain.exitplan import NO_PLAN
from posmon.domain.orders import Side
from posmon.domain.pairs import Leg, OnLegExit, PairRules, PairStatus, new_pair
from posmon.domain.tranche import Risk, Tranche
from posmon.store.store import Changes, PendingEntry, Store

NOW = 1_700_000_000.0


@pytest.fixture
def store(location):
    s = Store.open(location, clock=lambda: NOW)
    yield s
    s.close()


def a_pair(pair_id=1, *, a_ids=(11,), b_ids=(12,)):
    rules = PairRules(tp_quote=D("25.5"), sl_pct=D("1.25"), on_leg_exit=OnLegExit.PROTECT, max_leg_imbalance_pct=D("2"))
    return new_pair(
        pair_id,
        Leg("aster", "BTCUSDT", Side.LONG, D("0.150"), D("0.001"), tranche_ids=a_ids),
        Leg("lighter", "BTC", Side.SHORT, D("0.15000"), D("0.00001"), tranche_ids=b_ids),
        rules,
        opened_at=NOW,
        residue=(D("0.0004"), D("0.00000")),
    )


def tranche(tid, venue="aster", symbol="BTCUSDT", side=Side.LONG):
    return Tranche(tid, venue, symbol, side, 0, D("44850.0"), D("0.150"), D("45000"), D("40000"), NOW, None, 0)


def test_a_pair_round_trips_exactly_with_its_rules_legs_residue_and_tranches(store):
    pair = a_pair()
    store.apply(Changes(pairs=[pair]))
    assert store.open_pairs() == [pair]
    assert store.pair(1) == pair
    assert store.pair_of_tranche(12) == 1 and store.pair_of_tranche(99) is None


def test_pair_ids_are_allocated_once_each(store):
    assert [store.allocate_pair_id() for _ in range(3)] == [1, 2, 3]


def test_an_update_keeps_the_pair_and_moves_fills_funding_and_tranches(store):
    store.apply(Changes(pairs=[a_pair()]))
    a, b = a_pair().legs
    a = replace(a, filled_qty=D("0.150"), entry=D("44850.10"), entry_done=True, funding=D("-0.0123"), tranche_ids=(13,))
    b = replace(b, filled_qty=D("0.15000"), entry=D("44870.2"), entry_done=True, exit_reason="SL", tranche_ids=())
    updated = replace(a_pair(), legs=(a, b), status=PairStatus.CLOSING, close_reason="LEG_SL")
    store.apply(Changes(pairs=[updated]))
    assert store.open_pairs() == [updated]
    # A tranche that left its leg no longer names the pair; the new one does.
    assert store.pair_of_tranche(11) is None and store.pair_of_tranche(12) is None
    assert store.pair_of_tranche(13) == 1


def test_a_closed_pair_is_not_restored_but_can_still_be_read(store):
    closed = replace(a_pair(), status=PairStatus.CLOSED, close_reason="PAIR_TP")
    store.apply(Changes(pairs=[closed, a_pair(2, a_ids=(21,), b_ids=(22,))]))
    assert [p.id for p in store.open_pairs()] == [2]
    assert store.pair(1) == closed


def test_a_pair_and_both_its_entries_are_one_write(store):
    risk = Risk(tp_pct=D(1), sl_pct=D(2), plan=NO_PLAN)
    entries = [
        PendingEntry("pm-11-E1", 11, "aster", "BTCUSDT", Side.LONG, D("0.150"), risk),
        PendingEntry("pm-12-E1", 12, "lighter", "BTC", Side.SHORT, D("0.15000"), risk),
    ]
    store.apply(Changes(pairs=[a_pair()], entries_added=entries))
    assert store.pending_entries("aster", "BTCUSDT", Side.LONG) == entries[:1]
    assert store.pending_entries("lighter", "BTC", Side.SHORT) == entries[1:]
    # The position actor that sends an entry writes it again (``add_entry``): kept as it is, even once ended.
    store.apply(Changes(entries_ended=[("pm-12-E1", "FILLED")]))
    store.add_entry(entries[0])
    store.add_entry(entries[1])
    assert store.pending_entries("aster", "BTCUSDT", Side.LONG) == entries[:1]
    assert store.entry_states([11, 12]) == {11: "PENDING", 12: "FILLED"}


def test_a_failing_decision_writes_neither_the_pair_nor_its_entries(store):
    risk = Risk(tp_pct=D(1), sl_pct=D(2), plan=NO_PLAN)
    entry = PendingEntry("pm-21-E1", 21, "aster", "BTCUSDT", Side.LONG, D("0.150"), risk)
    bad = replace(a_pair(2, a_ids=(21,), b_ids=(22,)), rules=None)  # cannot be written: the decision fails whole
    with pytest.raises(AttributeError):
        store.apply(Changes(pairs=[bad], entries_added=[entry]))
    assert store.open_pairs() == [] and store.entry_states([21]) == {}


def test_leg_tranche_states_say_which_leg_exited_while_down(store):
    t1, t2 = tranche(11), tranche(12, "lighter", "BTC", Side.SHORT)
    store.apply(Changes(tranches=[t1, t2]))
    store.apply(Changes(tranches=[replace(t1, exit_qty=D("0.150"))], closed=[(11, "SL", NOW)]))
    states = store.tranche_states([11, 12, 404])
    assert (states[11].status, states[11].close_reason, states[11].exit_qty) == ("closed", "SL", D("0.150"))
    assert (states[12].status, states[12].close_reason) == ("open", None)
    assert 404 not in states


async def test_commit_writes_a_pair_through_the_group_writer(store, nursery):
    await nursery.start(store.run_writer)
    await store.commit([Changes(pairs=[a_pair()])])
    assert store.open_pairs() == [a_pair()]


def test_a_pair_survives_reopening_the_store(location):
    s = Store.open(location, clock=lambda: NOW)
    s.apply(Changes(pairs=[a_pair()]))
    s.close()
    s = Store.open(location, clock=lambda: NOW)
    try:
        assert s.open_pairs() == [a_pair()]
        assert s.allocate_pair_id() == 1
    finally:
        s.close()


def test_entry_states_say_whether_a_legs_entry_ended(store):
    risk = Risk(tp_pct=D(1), sl_pct=D(2), plan=NO_PLAN)
    entries = [
        PendingEntry("pm-11-E1", 11, "aster", "BTCUSDT", Side.LONG, D("0.150"), risk),
        PendingEntry("pm-12-E1", 12, "lighter", "BTC", Side.SHORT, D("0.15000"), risk),
    ]
    store.apply(Changes(pairs=[a_pair()], entries_added=entries))
    store.apply(Changes(entries_ended=[("pm-12-E1", "REJECTED")]))
    assert store.entry_states([11, 12, 13]) == {11: "PENDING", 12: "REJECTED"}
