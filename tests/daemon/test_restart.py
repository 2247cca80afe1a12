"""Restarts: the store plus reconciliation bring back the same tranches and orders, never duplicates (the first
two on both store backends: an SQLite file and PostgreSQL)."""

from decimal import Decimal as D

import pytest
import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, new_exchange, running, running_aster, settle
from tests.scenario import assert_protected_and_no_orphans


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Where the daemon keeps its state: an SQLite file, or a fresh store on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "posmon.sqlite"
    return request.getfixturevalue("postgres").new_store_url()


def snapshot(h):
    tranches = [(t.id, t.index, t.entry, t.qty, t.tp, t.sl) for t in h.store.open_tranches()]
    return tranches, sorted((o.client_id, o.order_id) for o in h.exchange.engine.open_orders())


async def test_restart_on_same_store_keeps_tranches_and_orders_without_duplicates(tmp_path, autojump_clock, store):
    settings = make_settings(tmp_path, store=store)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.05", "44550")
        await h.entry("BTCUSDT", Side.LONG, "0.08", "42300")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        before = snapshot(h)
        sent = exchange.orders_sent
        queries = exchange.calls["query_order"]

    async with running(settings, exchange) as h:
        await trio.sleep(3)  # past the reconcile grace period
        await settle()
        assert snapshot(h) == before
        assert exchange.orders_sent == sent  # nothing re-placed
        assert exchange.calls["query_order"] == queries  # resting orders are known from the open-orders list
        assert_protected_and_no_orphans(h)
        # And the restarted daemon still acts: tranche 1's TP runs through.
        h.exchange.set_marks({"BTCUSDT": D("42800")}, trade=False)
        await settle()
        assert [t.index for t in h.store.open_tranches("sim", "BTCUSDT", Side.LONG)] == [0]
        assert_protected_and_no_orphans(h)


async def test_restart_over_the_aster_protocol_keeps_tranches_and_places_nothing_again(tmp_path, autojump_clock, store):
    settings = make_settings(tmp_path, store=store)
    exchange = new_exchange(settings)
    async with running_aster(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.05", "44550")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        before = snapshot(h)
        assert len(before[0]) == 2 and len(before[1]) == 4  # BTC merged into one tranche, ETH one: TP+SL each
        sent = exchange.orders_sent

    async with running_aster(settings, exchange) as h:
        await trio.sleep(3)  # past the reconcile grace period
        await settle()
        assert snapshot(h) == before
        assert exchange.orders_sent == sent  # nothing placed again
        assert_protected_and_no_orphans(h)


async def test_fill_while_daemon_was_down_is_adopted_after_restart(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")

    # Another program adds to the position while posmon is down; the event is gone for good.
    exchange.set_mark("BTCUSDT", D("44550"))
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.05"))

    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        [t0] = h.store.open_tranches("sim", "BTCUSDT", Side.LONG)
        assert (t0.qty, t0.entry, t0.tp, t0.sl) == (D("0.15"), D("44850"), D("45298.5"), D("22425"))
        assert_protected_and_no_orphans(h)


async def test_decision_persisted_but_never_sent_is_sent_once_after_restart(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        # Every placement times out without reaching the exchange: the decision is in the store only.
        exchange.fail_next("place_orders", 1000)
        exchange.fail_next("query_order", 1000)
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        assert h.orders() == []
        assert len(h.store.open_tranches()) == 1

    exchange.faults.clear()
    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        assert_protected_and_no_orphans(h)


async def test_unknown_outcome_after_execution_leaves_exactly_one_tp_and_sl(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    async with running(settings) as h:
        h.exchange.fail_next("place_orders", 1, after_execute=True)  # a 503 answered after the batch executed
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await trio.sleep(5)
        await settle()
        assert len(h.orders()) == 2
        assert h.exchange.orders_sent == 2  # TP and SL sent once: looked up after the 503, not resent
        assert_protected_and_no_orphans(h)
