"""Funding of pair legs estimated from the venues' funding rate: a router's ``LegMarkSlot`` sees every mark, notices
a funding time passing, and the coordinator books each leg's ``qty x mark x rate`` (sign by side) once per funding
time, persisted with the pair: a restart that sees the same funding time again counts nothing twice."""

from __future__ import annotations

import math
from decimal import Decimal as D

import trio
import trio.testing

from posmon.actors.messages import Notice
from posmon.actors.pairs import LegMarkSlot, PairCoordinator
from posmon.domain.pairs import FUNDING_SOURCE
from posmon.exchange.events import MarkPrice
from tests.actors.test_pair_coordinator import FakeLegs, open_pair, stored

T = 1_700_006_400.0  # a funding time


async def _coordinator(nursery, store):
    notices, _ = trio.open_memory_channel[Notice](math.inf)
    coordinator, inbox = PairCoordinator.create(FakeLegs(), store, notices, trio.current_time)
    await nursery.start(coordinator.run)
    return coordinator, inbox


def _marks(slots, before: str, after: str, aster_rate="0.0001", lighter_rate="-0.00005"):
    """Both venues announce funding at ``T``, then a mark after it (Aster's next time 8 h on, Lighter's 1 h)."""
    slots["aster"].put(MarkPrice("BTCUSDT", D(before), T - 1, D(aster_rate), T), 0.0)
    slots["lighter"].put(MarkPrice("BTC", D(before), T - 1, D(lighter_rate), T), 0.0)
    slots["aster"].put(MarkPrice("BTCUSDT", D(after), T + 1, D("0.0003"), T + 28800), 0.0)
    slots["lighter"].put(MarkPrice("BTC", D(after), T + 1, D("0.0003"), T + 3600), 0.0)


async def test_each_leg_gets_qty_x_mark_x_rate_once_and_a_restart_counts_it_not_again(tmp_path, autojump_clock):
    from posmon.store.store import Store

    store = Store.open(tmp_path / "posmon.sqlite", clock=lambda: T)
    try:
        stored(store, open_pair())  # Aster LONG 0.150, Lighter SHORT 0.15000, both at 100
        async with trio.open_nursery() as nursery:
            coordinator, inbox = await _coordinator(nursery, store)
            slots = {v: LegMarkSlot(v, inbox) for v in ("aster", "lighter")}
            _marks(slots, "100", "102")
            await trio.testing.wait_all_tasks_blocked()
            (view,) = coordinator.views()
            # Aster: the long pays 0.150 x 102 x 0.0001; Lighter: the short pays at a negative rate 0.15 x 102 x 0.00005
            assert [leg.funding for leg in view.legs] == [D("-0.0015300"), D("-0.00076500000")]
            assert all(leg.funding_source == FUNDING_SOURCE for leg in view.legs)
            # the combined PnL counts it: long +2 x 0.15, short -2 x 0.15, less both fundings
            assert view.pnl == D("-0.0015300") + D("-0.00076500000")
            _marks(slots, "102", "103")  # the same funding time shown again: nothing more
            await trio.testing.wait_all_tasks_blocked()
            assert [leg.funding for leg in store.open_pairs()[0].legs] == [D("-0.0015300"), D("-0.00076500000")]
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:  # a restart: new slots, the same funding time passing again
            coordinator, inbox = await _coordinator(nursery, store)
            slots = {v: LegMarkSlot(v, inbox) for v in ("aster", "lighter")}
            _marks(slots, "103", "104")
            await trio.testing.wait_all_tasks_blocked()
            (pair,) = store.open_pairs()
            assert [leg.funding for leg in pair.legs] == [D("-0.0015300"), D("-0.00076500000")]
            assert [leg.funded_at for leg in pair.legs] == [T, T]
            nursery.cancel_scope.cancel()
    finally:
        store.close()
