"""Regressions the two-venue chaos campaign found in the pair coordinator (``python -m chaos --two-venue``)."""

from __future__ import annotations

from decimal import Decimal as D

import trio

from posmon.actors.messages import Notice
from posmon.actors.pairs import LegExited, leg_exit_from_notice
from posmon.domain.pairs import Leg, PairRules, PairStatus, new_pair
from posmon.store.store import Changes
from tests.actors.test_pair_coordinator import (
    ASTER,
    LIGHTER,
    FakeLegs,
    drained,
    entries_for,
    open_pair,
    started,
    store,
    stored,
    tranche,
)

__all__ = ["store"]  # the fixture


async def test_a_restored_pair_whose_filled_leg_exits_before_the_other_entry_ends_closes_once_it_ends(
    store, nursery, autojump_clock
):
    """Seed 103: killed while opening; after the restart Lighter's leg (filled) was closed outside posmon while
    Aster's entry was still unresolved, so the pair went closing; Aster's entry then ended unfilled. The entry's
    end was only polled for opening pairs, so the pair stayed closing for ever with both legs flat."""
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    _, pending = entries_for(pair)
    store.apply(Changes(pairs=[pair], entries_added=list(pending)))
    store.apply(Changes(tranches=[tranche(12, LIGHTER)], entries_ended=[("pm-12-E1", "FILLED")]))
    legs = FakeLegs()
    coordinator, inbox, _ = await started(nursery, store, legs)
    await trio.sleep(coordinator.entry_poll_seconds + 0.1)
    assert store.pair(1).status is PairStatus.OPENING  # Aster's entry has not ended
    inbox.send_nowait(LegExited(*LIGHTER, 12, "EXTERNAL"))
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.CLOSING
    store.apply(Changes(entries_ended=[("pm-11-E1", "CANCELED")]))  # no tranche: it filled nothing
    await trio.sleep(coordinator.entry_poll_seconds + 0.1)
    assert store.pair(1).status is PairStatus.CLOSED


async def test_a_restored_closing_pair_whose_late_entry_filled_closes_that_leg(store, nursery, autojump_clock):
    """The same with Aster's entry filling after all: what it filled is closed (nothing left as a lone leg)."""
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    _, pending = entries_for(pair)
    store.apply(Changes(pairs=[pair], entries_added=list(pending)))
    store.apply(Changes(tranches=[tranche(12, LIGHTER)], entries_ended=[("pm-12-E1", "FILLED")]))
    legs = FakeLegs()
    coordinator, inbox, _ = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*LIGHTER, 12, "EXTERNAL"))
    await trio.testing.wait_all_tasks_blocked()
    legs.taken(ASTER)  # the close sent when Lighter's leg exited (a no-op there: no tranche yet)
    store.apply(Changes(tranches=[tranche(11, ASTER)], entries_ended=[("pm-11-E1", "FILLED")]))
    await trio.sleep(coordinator.entry_poll_seconds + 0.1)
    from posmon.actors.messages import CloseTranches

    assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
    assert store.pair(1).legs[0].filled_qty == D("0.150") and store.pair(1).status is PairStatus.CLOSING


async def test_a_restored_closing_pair_whose_late_entry_filled_and_closed_since_is_closed(
    store, nursery, autojump_clock
):
    """And when the late fill's tranche has closed too by the time the store is read, the pair is closed."""
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    _, pending = entries_for(pair)
    store.apply(Changes(pairs=[pair], entries_added=list(pending)))
    store.apply(Changes(tranches=[tranche(12, LIGHTER)], entries_ended=[("pm-12-E1", "FILLED")]))
    legs = FakeLegs()
    coordinator, inbox, _ = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*LIGHTER, 12, "EXTERNAL"))
    await trio.testing.wait_all_tasks_blocked()
    store.apply(
        Changes(
            tranches=[tranche(11, ASTER)],
            entries_ended=[("pm-11-E1", "FILLED")],
            closed=[(11, "SL", 1_700_000_001.0)],
        )
    )
    await trio.sleep(coordinator.entry_poll_seconds + 0.1)
    assert store.pair(1).status is PairStatus.CLOSED


def partial_exit(key: tuple, tid: int, qty: str, left: str, reason: str = "TP") -> Notice:
    venue, symbol, side = key
    text = f"tranche {tid}: {qty} closed by {reason}, {left} held"
    return Notice(
        "partial_exit",
        venue,
        symbol,
        side.value,
        text,
        data={"tranche_id": tid, "reason": reason, "qty": qty, "left": left},
    )


async def test_a_ladder_level_of_a_leg_tranche_grown_by_adoption_leaves_the_pair_whole(store, nursery, autojump_clock):
    """Seed 302: the Lighter leg's tranche (the pair's 0.015 after trims) grew to 0.0855 by an external fill
    adopted into it; its first ladder level closed 0.0256 and the coordinator took all of it from the leg, found
    the leg flat and closed the pair, leaving 0.0599 on a leg of a closed pair. The tranche still holds more than
    the leg: the pair lost nothing."""
    stored(store, open_pair(PairRules(max_leg_imbalance_pct=D(1), auto_rebalance=True)))
    legs = FakeLegs()
    _, inbox, notices = await started(nursery, store, legs)
    exited = leg_exit_from_notice(partial_exit(LIGHTER, 12, "0.05000", "0.20000"))  # it held 0.25 with growth
    assert exited is not None
    inbox.send_nowait(exited)
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.OPEN and store.pair(1).legs[1].filled_qty == D("0.15000")
    assert legs.taken(ASTER) == [] and drained(notices) == []


async def test_a_ladder_level_taking_a_grown_tranche_below_its_leg_lowers_the_leg_to_what_it_holds(
    store, nursery, autojump_clock
):
    from posmon.actors.pairs import TrimTranche

    stored(store, open_pair(PairRules(max_leg_imbalance_pct=D(1), auto_rebalance=True)))
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    exited = leg_exit_from_notice(partial_exit(LIGHTER, 12, "0.08000", "0.12000"))  # it held 0.20 with growth
    assert exited is not None
    inbox.send_nowait(exited)
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.OPEN and store.pair(1).legs[1].filled_qty == D("0.12000")
    assert legs.taken(ASTER) == [TrimTranche(11, D("0.030"), "PAIR")]


async def test_both_legs_of_a_restored_opening_pair_exiting_before_their_entries_are_heard_close_it(
    store, nursery, autojump_clock
):
    """Seed 300: killed while opening; after the restart both entries filled (restored actors: no reply reaches the
    coordinator), then the Lighter leg was closed outside posmon and the Aster leg closed by the pair before the
    poll read the entries. A leg whose tranche exited has had its entry end, but the pair still waited on both
    entries and stayed closing with both legs flat."""
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    _, pending = entries_for(pair)
    store.apply(Changes(pairs=[pair], entries_added=list(pending)))
    legs = FakeLegs()
    coordinator, inbox, notices = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*LIGHTER, 12, "EXTERNAL"))
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.CLOSING
    inbox.send_nowait(LegExited(*ASTER, 11, "PAIR"))
    await trio.testing.wait_all_tasks_blocked()
    await trio.sleep(coordinator.entry_poll_seconds + 0.1)
    assert store.pair(1).status is PairStatus.CLOSED
    assert "pair_closed" in [n.kind for n in drained(notices)]
