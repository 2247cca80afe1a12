"""A restart reads the account once for every restored actor, not once per (symbol, side)."""

from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from posmon.sim.venue import SimVenue
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


class CountingVenue(SimVenue):
    def __init__(self, exchange, **kw):
        super().__init__(exchange, **kw)
        self.reads: list[tuple[str, str | None]] = []

    async def positions(self, symbol=None):
        self.reads.append(("positions", symbol))
        return await super().positions(symbol)

    async def open_orders(self, symbol=None):
        self.reads.append(("open_orders", symbol))
        return await super().open_orders(symbol)


async def test_restored_actors_reconcile_from_one_account_snapshot(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, symbols=("BTCUSDT", "ETHUSDT", "XRPUSDT"))
    async with running(settings) as h:
        for symbol, price in (("BTCUSDT", "45000"), ("ETHUSDT", "3000"), ("XRPUSDT", "0.5")):
            await h.entry(symbol, Side.LONG, "1" if symbol != "XRPUSDT" else "100", price)
            await h.entry(symbol, Side.SHORT, "1" if symbol != "XRPUSDT" else "100", price)
        exchange = h.exchange
        orders_before = {o.client_id for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT") for o in h.orders(s)}

    venue = CountingVenue(exchange)
    async with running(settings, exchange, venue=venue) as h:
        await trio.sleep(5)
        await settle()
        assert all(symbol is None for _, symbol in venue.reads), venue.reads  # no per-symbol read at start-up
        assert len(venue.reads) <= 4  # the start-up snapshot and the user stream's discovery
        assert {a.ready.is_set() for a in h.daemon.directory.actors()} == {True}
        assert len(h.daemon.directory.actors()) == 6
        after = {o.client_id for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT") for o in h.orders(s)}
        assert after == orders_before  # same protection, nothing re-placed
        assert_protected_and_no_orphans(h)
        assert D(0) not in {t.qty for t in h.store.open_tranches("sim")}
