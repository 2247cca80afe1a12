"""A store another process keeps locked: the daemon waits for it without spending restart budgets, then catches up.

Issue 11 point 9: with another process holding a write lock for 20 s, actors crashed and the API stalled. Writes
now fail fast as ``StoreBusy``; the supervisor waits for the lock to go (nothing was written, nothing sent), then
restarts the actor, which reloads from the store and reconciles what it missed.
"""

from __future__ import annotations

import sqlite3

import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


async def test_a_twenty_second_lock_held_elsewhere_costs_no_restart_budget_and_loses_nothing(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, daemon={"restart_budget": 1})
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        other = sqlite3.connect(str(settings.daemon.store), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writes and keeps the lock
        try:
            await h.entry("BTCUSDT", Side.LONG, "0.05", "45100")  # a fill the actor cannot persist now
            await trio.sleep(20)
            await settle()
            assert h.daemon.metrics.get("store_busy_waits", actor="position") >= 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        await trio.sleep(10)  # the wait ends, the actor restarts, reloads and reconciles the missed fill
        await settle()
        assert h.daemon.cancel_scope is not None and not h.daemon.cancel_scope.cancel_called
        assert sum(t.qty for t in h.store.open_tranches("sim")) == 0 + sum(p.qty for p in h.exchange.engine.positions())
        assert_protected_and_no_orphans(h)
