"""The exchange's truth at all times: changes no order update describes are seen, confirmed and protected.

A live account changes under the daemon through liquidations, auto-deleveraging, a close from the venue's web
page or a frame lost in a reconnect window. Position frames are evidence (confirmed by a read, then adopted or
shrunk); a periodic whole-account read catches what no frame told; the venue's forced closes end tranches with
their own reason.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio

from posmon.actors.messages import Notice
from posmon.domain.orders import Side
from tests.harness import drain, make_settings, new_exchange, running, running_aster, running_lighter, settle
from tests.scenario import assert_protected_and_no_orphans


def tranches(h, symbol="BTCUSDT", side=Side.LONG):
    return sorted(h.store.open_tranches(None, symbol, side), key=lambda t: t.index)


def closed(h, venue="sim", symbol="BTCUSDT"):
    return {
        r["idx"]: (r["close_reason"], D(r["realized_pnl"]))
        for r in h.store.closed_tranches(venue)
        if r["symbol"] == symbol
    }


async def protected_within(h, seconds: float, step: float = 0.05) -> float:
    """Advance the (mock) clock until every position is covered exactly; the time it took."""
    start = trio.current_time()
    while True:
        await settle()
        try:
            assert_protected_and_no_orphans(h)
            return trio.current_time() - start
        except AssertionError:
            if trio.current_time() - start > seconds:
                raise
        await trio.sleep(step)


# --- position frames are evidence ------------------------------------------------------------------------


async def test_position_that_appears_with_only_a_frame_is_adopted_and_protected(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        h.exchange.set_mark("ETHUSDT", D("3000"))
        h.exchange.silent_position("ETHUSDT", Side.SHORT, D("2"))
        took = await protected_within(h, 10)
        [t] = tranches(h, "ETHUSDT", Side.SHORT)
        assert (t.qty, t.entry) == (D("2"), D("3000"))
        # One grace for an order update to explain it, then one confirming read: not a reconnect, not a restart.
        assert took <= 1.5


async def test_position_that_grows_with_only_a_frame_is_adopted_without_a_restart(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0.15"))
        await protected_within(h, 10)
        assert sum(t.qty for t in tranches(h)) == D("0.15")


async def test_position_that_shrinks_with_only_a_frame_resizes_the_exits_and_books_the_pnl(tmp_path, autojump_clock):
    send, notices = trio.open_memory_channel[Notice](100)
    async with running(make_settings(tmp_path), notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        drain(notices)
        h.exchange.set_mark("BTCUSDT", D("44000"))
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0.04"))  # liquidation-like
        await protected_within(h, 10)
        [t] = tranches(h)
        assert t.qty == D("0.04")
        assert t.realized_pnl == D("0.06") * (D("44000") - D("45000"))
        assert {(o.type.value, o.qty) for o in h.orders()} == {("LIMIT", D("0.04")), ("STOP_MARKET", D("0.04"))}
        # The tranche's partial exit (a hedge pair's leg event), then the operator's notice of the whole reduction.
        assert [n.kind for n in drain(notices)] == ["partial_exit", "position_shrunk"]


async def test_position_that_vanishes_with_only_a_frame_closes_the_tranche_and_its_orders(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.set_mark("BTCUSDT", D("45100"))
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0"))
        await protected_within(h, 10)
        assert tranches(h) == []
        assert closed(h) == {0: ("EXTERNAL", D("0.1") * D("100"))}
        assert h.orders() == []


async def test_a_frame_explained_by_the_order_update_costs_no_read(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        reads = h.exchange.calls["positions"]
        await h.entry("BTCUSDT", Side.LONG, "0.05", "45100")  # an ordinary fill: order update and frame
        await trio.sleep(5)
        await settle()
        assert h.exchange.calls["positions"] == reads
        assert_protected_and_no_orphans(h)


# --- the periodic reconcile ------------------------------------------------------------------------------


async def test_change_with_no_frame_at_all_is_caught_by_the_periodic_reconcile(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0.3"), frame=False)
        await trio.sleep(30)
        await settle()
        assert sum(t.qty for t in tranches(h)) == D("0.1")  # nothing told the daemon yet
        # reconcile_interval_seconds = 60, then the two-observation grace (2 s).
        took = await protected_within(h, 40)
        assert 30 + took <= 60 + 2 + 1
        assert sum(t.qty for t in tranches(h)) == D("0.3")


async def test_periodic_reconcile_with_nothing_to_do_sends_nothing_and_writes_nothing(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        await trio.sleep(1)
        await settle()
        sent, cancels, writes = h.exchange.orders_sent, h.exchange.calls["cancel_orders"], h.store.db.conn.total_changes
        sweeps = h.daemon.reconciler.sweeps
        await trio.sleep(185)  # three sweeps
        await settle()
        assert h.daemon.reconciler.sweeps == sweeps + 3
        assert (h.exchange.orders_sent, h.exchange.calls["cancel_orders"]) == (sent, cancels)
        assert h.store.db.conn.total_changes == writes


async def test_reconcile_interval_zero_turns_the_sweep_off(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, daemon={"reconcile_interval_seconds": 0})) as h:
        sweeps = h.daemon.reconciler.sweeps
        await trio.sleep(300)
        await settle()
        assert h.daemon.reconciler.sweeps == sweeps


# --- liquidation and ADL --------------------------------------------------------------------------------


@pytest.mark.parametrize(("adl", "reason"), [(False, "LIQUIDATION"), (True, "ADL")])
async def test_forced_close_ends_the_tranche_with_its_reason_and_a_notice(tmp_path, autojump_clock, adl, reason):
    send, notices = trio.open_memory_channel[Notice](100)
    async with running(make_settings(tmp_path), notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        drain(notices)
        h.exchange.set_mark("BTCUSDT", D("30000"))
        h.exchange.liquidate("BTCUSDT", Side.LONG, adl=adl)
        await settle()
        assert closed(h) == {0: (reason, D("0.1") * (D("30000") - D("45000")))}
        assert h.orders() == []
        human = [n for n in drain(notices) if n.needs_human]
        assert [(n.kind, n.data["reason"]) for n in human] == [("exit", reason)]
        assert h.metrics.get("forced_exits", venue="sim", kind=reason) == 1


# --- over the real protocols -------------------------------------------------------------------------------


async def test_aster_account_update_alone_is_adopted_grown_and_shrunk(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path)) as h:
        h.exchange.set_mark("BTCUSDT", D("45000"))
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0.1"))
        assert await protected_within(h, 10) <= 2
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0.15"))
        assert await protected_within(h, 10) <= 2
        assert sum(t.qty for t in tranches(h)) == D("0.15")
        h.exchange.silent_position("BTCUSDT", Side.LONG, D("0.04"))
        assert await protected_within(h, 10) <= 2
        assert sum(t.qty for t in tranches(h)) == D("0.04")


async def test_lighter_account_frame_alone_is_adopted_and_its_exits_held(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)
    async with running_lighter(settings) as h:
        h.exchange.set_mark("BTC", D("45000"))
        h.exchange.silent_position("BTC", Side.LONG, D("0.1"))
        for _ in range(40):
            await trio.sleep(0.1)
            await settle()
            if h.store.open_tranches("lighter"):
                break
        [t] = h.store.open_tranches("lighter")
        assert (t.symbol, t.side, t.qty) == ("BTC", Side.LONG, D("0.1"))
        # Its emulated TP is held: a mark through it closes the position.
        await h.mark("BTC", "45500")
        await trio.sleep(1)
        await settle()
        assert h.store.open_tranches("lighter") == []
        assert h.exchange.engine.position("BTC", Side.LONG) is None


async def test_restored_daemon_sees_a_position_change_made_while_it_was_down(tmp_path, autojump_clock):
    """A sanity check that the start-up path and the frame path agree (no double adoption)."""
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
    exchange.set_mark("BTCUSDT", D("44000"))
    exchange.silent_position("BTCUSDT", Side.LONG, D("0.25"), frame=False)
    async with running(settings, exchange) as h:
        await protected_within(h, 10)
        assert sum(t.qty for t in tranches(h)) == D("0.25")


async def test_both_legs_of_a_tranche_filling_while_down_are_detected_and_the_rest_reprotected(
    tmp_path, autojump_clock
):
    """Inherent to venues without native OCO: while the daemon was down a tranche's SL and then its TP filled;
    the second leg closed another tranche's quantity. The restart says so (a notice that needs a human) and
    leaves the book agreeing with the position."""
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=10.0, instant_tp_enabled=False)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # tranche 0: TP 45450, SL 40500
        await h.entry("BTCUSDT", Side.LONG, "0.05", "42700")  # down 5 %: tranche 1
        assert len(tranches(h)) == 2
    exchange.set_mark("BTCUSDT", D("40000"))  # tranche 0's SL closes its 0.1
    exchange.set_mark("BTCUSDT", D("45500"))  # its TP then closes tranche 1's 0.05
    assert exchange.engine.position("BTCUSDT", Side.LONG) is None
    send, notices = trio.open_memory_channel[Notice](100)
    async with running(settings, exchange, notices=send) as h:
        await protected_within(h, 10)
        assert tranches(h) == [] and h.orders() == []
        assert "double_exit" in [n.kind for n in drain(notices) if n.needs_human]
