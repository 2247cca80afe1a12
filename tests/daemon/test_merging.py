"""Beyond max_tranches_per_symbol_side the least-losing tranches merge; protection follows without a gap."""

from decimal import Decimal as D

from posmon.domain.orders import Side
from tests.harness import make_settings, running
from tests.scenario import assert_protected_and_no_orphans


async def test_fresh_fill_merges_into_the_least_losing_tranche(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, max_tranches_per_symbol_side=2)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.1", "42000")  # -6.7 %: tranche 1
        await h.entry("BTCUSDT", Side.LONG, "0.2", "39000")  # a third tranche is over the limit: joins tranche 1
        tranches = h.store.open_tranches("sim", "BTCUSDT", Side.LONG)
        assert [(t.index, t.qty, t.entry) for t in tranches] == [(0, D("0.1"), D("45000")), (1, D("0.3"), D("40000"))]
        assert_protected_and_no_orphans(h)


async def test_two_older_tranches_merge_and_the_removed_ones_orders_go_after_the_survivor_is_protected(
    tmp_path, autojump_clock
):
    async with running(make_settings(tmp_path, max_tranches_per_symbol_side=3, tp_pct=20.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.01", "40000")  # tranche 1
        await h.entry("BTCUSDT", Side.LONG, "0.01", "41000")  # tranche 2
        await h.entry("BTCUSDT", Side.LONG, "0.01", "42000")  # tranches 1 and 2 lose least: they merge
        tranches = h.store.open_tranches("sim", "BTCUSDT", Side.LONG)
        assert [(t.index, t.qty, t.entry) for t in tranches] == [
            (0, D("1"), D("45000")),
            (1, D("0.02"), D("40500")),
            (3, D("0.01"), D("42000")),
        ]
        assert [r["close_reason"] for r in h.store.closed_tranches("sim")] == ["MERGED"]
        assert_protected_and_no_orphans(h)
