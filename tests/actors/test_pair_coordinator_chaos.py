"""Regressions the two-venue chaos campaign found in the pair coordinator (``python -m chaos --two-venue``)."""

from __future__ import annotations

from decimal import Decimal as D

import trio

from posmon.actors.pairs import LegExited
from posmon.domain.pairs import Leg, PairStatus, new_pair
from posmon.store.store import Changes
from tests.actors.test_pair_coordinator import ASTER, LIGHTER, FakeLegs, entries_for, started, store, tranche

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
