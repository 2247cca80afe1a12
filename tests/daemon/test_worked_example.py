"""The worked example of architecture.md, end to end through the actors and the simulated exchange."""

import dataclasses
from decimal import Decimal as D

from posmon.domain.orders import Side
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


async def test_worked_example_resting_orders_after_each_fill(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=50.0)
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}

        await h.entry("BTCUSDT", Side.LONG, "0.05", "44550")
        assert h.resting() == {("LIMIT", "SELL", "0.15", "45298.5"), ("STOP_MARKET", "SELL", "0.15", "22425")}
        tranche0_orders = {o.client_id for o in h.orders()}

        await h.entry("BTCUSDT", Side.LONG, "0.08", "42300")
        assert h.resting() == {
            ("LIMIT", "SELL", "0.15", "45298.5"),
            ("STOP_MARKET", "SELL", "0.15", "22425"),
            ("LIMIT", "SELL", "0.08", "42723"),
            ("STOP_MARKET", "SELL", "0.08", "21150"),
        }
        # Tranche 0's orders are untouched when tranche 1 opens: same exchange orders, not replacements.
        assert tranche0_orders <= {o.client_id for o in h.orders()}

        tranches = h.store.open_tranches("sim", "BTCUSDT", Side.LONG)
        assert [(t.index, t.entry, t.qty) for t in tranches] == [(0, D("44850"), D("0.15")), (1, D("42300"), D("0.08"))]
        assert_protected_and_no_orphans(h)


async def test_worked_example_in_one_way_mode(tmp_path, autojump_clock):
    """One-way accounts: positionSide BOTH, reduce-only legs, routing by the tranche each client id names."""
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=50.0)
    settings = dataclasses.replace(settings, daemon=dataclasses.replace(settings.daemon, hedge_mode=False))
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.05", "44550")
        await h.entry("BTCUSDT", Side.LONG, "0.08", "42300")
        assert h.resting() == {
            ("LIMIT", "SELL", "0.15", "45298.5"),
            ("STOP_MARKET", "SELL", "0.15", "22425"),
            ("LIMIT", "SELL", "0.08", "42723"),
            ("STOP_MARKET", "SELL", "0.08", "21150"),
        }
        assert all(o.reduce_only and o.position_side == "BOTH" for o in h.orders())
        h.exchange.set_marks({"BTCUSDT": D("42800")}, trade=False)
        await settle()
        assert [t.index for t in h.store.open_tranches()] == [0]
        assert_protected_and_no_orphans(h)
