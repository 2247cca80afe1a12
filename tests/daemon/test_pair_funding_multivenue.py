"""Funding on a hedge pair across Aster's and Lighter's protocol simulators in one daemon: at a funding time each
leg books its ``qty x mark x rate`` (the long pays a positive rate, the short receives it) from the rate and time
its venue's mark stream announced, status shows it per leg with its source, the combined PnL counts it, and a
restarted daemon seeing the same funding time again counts nothing twice."""

from __future__ import annotations

from contextlib import AsyncExitStack
from decimal import Decimal as D

import trio

from posmon.domain.pairs import FUNDING_SOURCE
from tests.daemon.test_multivenue import daemon_on, simulators, two_venue_settings
from tests.daemon.test_pairs_multivenue import PAIR, api_of
from tests.harness import settle

INTERVAL_MS = 60_000  # both simulators fund every minute here: the first funding time is at 60 s
ASTER_RATE, LIGHTER_RATE = "0.00010000", D("0.00002")


async def _tick(exchanges, until: float, aster: str, lighter: str) -> None:
    """Marks every 10 s up to ``until`` (a venue's stream is never quiet for long)."""
    aster_x, lighter_x = exchanges
    while True:
        aster_x.set_mark("BTCUSDT", D(aster))
        lighter_x.set_mark("BTC", D(lighter))
        await settle()
        if trio.current_time() >= until:
            return
        await trio.sleep(10)


async def test_one_funding_time_books_each_legs_funding_once_from_its_venues_rate(tmp_path, autojump_clock):
    settings = two_venue_settings(tmp_path)
    async with AsyncExitStack() as stack:
        aster_venue, lighter_venue, aster_x, lighter_x, lighter_sim, aster_sim = await stack.enter_async_context(
            simulators(settings)
        )
        aster_sim.funding_rate, aster_sim.funding_interval_ms = ASTER_RATE, INTERVAL_MS
        lighter_sim.funding_rate, lighter_sim.funding_interval_ms = LIGHTER_RATE, INTERVAL_MS
        venues, exchanges = [aster_venue, lighter_venue], (aster_x, lighter_x)
        async with daemon_on(settings, venues) as (daemon, store, _):
            await _tick(exchanges, 0, "45000", "45000")
            async with api_of(daemon) as api:
                assert (await api.post("/api/pairs", json=PAIR)).status_code == 200  # Aster LONG, Lighter SHORT
            await _tick(exchanges, 50, "45010", "45010")  # both announce the funding time at 60 s and their rate
            [view] = (await daemon.control.status()).pairs
            assert [leg.funding for leg in view.legs] == [0, 0]

            await trio.sleep(60 - trio.current_time() + 1)
            await _tick(exchanges, 0, "45020", "45030")  # the first marks after the funding time book it
            [view] = (await daemon.control.status()).pairs
            aster, lighter = view.legs
            assert aster.funding == -D("0.01") * D(45020) * D(ASTER_RATE)  # the long pays the positive rate
            assert lighter.funding == D("0.01") * D(45030) * LIGHTER_RATE  # the short receives it
            assert aster.funding_source == lighter.funding_source == FUNDING_SOURCE
            assert aster.pnl == D("0.01") * (D(45020) - aster.entry) + aster.funding
            assert view.pnl == aster.pnl + lighter.pnl
            booked = [aster.funding, lighter.funding]
            await _tick(exchanges, 100, "45040", "45040")  # more marks before the next funding time: nothing
            assert [leg.funding for leg in store.open_pairs()[0].legs] == booked

        # A restart: its fresh watch sees the next funding time (120 s) pass once, and never the one at 60 s again.
        async with daemon_on(settings, venues) as (daemon, store, _):
            await _tick(exchanges, 0, "45040", "45040")
            assert [leg.funding for leg in store.open_pairs()[0].legs] == booked
            await trio.sleep(121 - trio.current_time())
            await _tick(exchanges, 140, "45050", "45050")  # the first marks after 120 s book it, the next ones not
            aster_leg, lighter_leg = store.open_pairs()[0].legs
            assert aster_leg.funding == booked[0] - D("0.01") * D(45050) * D(ASTER_RATE)
            assert lighter_leg.funding == booked[1] + D("0.01") * D(45050) * LIGHTER_RATE
            assert (aster_leg.funded_at, lighter_leg.funded_at) == (120, 120)
