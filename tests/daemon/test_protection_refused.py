"""A protection order the venue refuses (issue 11 point 3): told once, then protection_failure_action applies.

Before, a refused TP was re-sent every ``retry_seconds`` forever (a TP beyond the venue's maximum price was
refused every ~5 s); now ``alert`` retries after a doubling pause and ``close`` closes the tranche at once.
"""

from __future__ import annotations

import pytest
import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, running_aster, settle


async def refused_tp(h) -> None:
    """Another program opens a LONG so close to the venue's maximum price (1,000,000) that a 1 % TP is refused."""
    await h.entry("BTCUSDT", Side.LONG, "0.01", "995000")


async def test_a_refused_tp_is_told_once_and_retried_after_doubling_pauses(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=10.0)
    async with running_aster(settings) as h:
        await refused_tp(h)
        await trio.sleep(120)
        await settle()
        refusals = h.metrics.get("orders_rejected", venue="aster", purpose="T")
        # 5 + 10 + 20 + 40 s pauses: at most 5 tries in two minutes (every 5 s would have been 24).
        assert 2 <= refusals <= 5
        [t] = h.store.open_tranches("aster")
        assert t.qty > 0
        assert [o.type.value for o in h.orders()] == ["STOP_MARKET"]  # the SL still protects it
        assert len(h.store.events("order_error")) == refusals
        assert h.metrics.get("notices", kind="protection_failed") == 1  # the operator is told once


@pytest.mark.parametrize("action", ["close"])
async def test_a_refused_tp_with_protection_failure_action_close_closes_the_tranche(tmp_path, autojump_clock, action):
    settings = make_settings(tmp_path, daemon={"protection_failure_action": action}, tp_pct=1.0, sl_pct=10.0)
    async with running_aster(settings) as h:
        await refused_tp(h)
        await trio.sleep(5)
        await settle()
        assert h.store.open_tranches("aster") == []
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert h.metrics.get("orders_rejected", venue="aster", purpose="T") == 1
