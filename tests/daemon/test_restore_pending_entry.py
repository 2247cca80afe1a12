"""An operator entry still pending when posmon died, on a key that holds nothing else, is resolved at start-up.

Found by ``python -m chaos --two-venue`` (seed 202): a pair's Lighter entry was decided and written, then the
daemon was killed before it reached the venue; the restart restored actors only for keys with tranches or orders,
so nobody looked the entry up, it stayed PENDING for ever, and its pair stayed ``opening`` with the Aster leg
unhedged.
"""

from __future__ import annotations

from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from posmon.domain.tranche import Risk
from posmon.store.store import PendingEntry, Store
from tests.harness import make_settings, running, settle


async def test_a_pending_entry_on_a_flat_key_is_looked_up_and_ended_at_start_up(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    store = Store.open(settings.daemon.store)
    entry = PendingEntry("pm-5-E1", 5, "sim", "ETHUSDT", Side.LONG, D("0.1"), Risk(tp_pct=D("1"), sl_pct=D("2")))
    store.add_entry(entry)
    assert list(store.restore("sim")) == store.position_keys("sim") == [("ETHUSDT", Side.LONG)]
    store.close()
    async with running(settings) as h:
        await trio.sleep(5)
        await settle()
        assert h.store.pending_entries("sim", "ETHUSDT", Side.LONG) == []  # looked up: it never reached the venue
        assert h.store.entry_states([5]) == {5: "CANCELED"}
