"""The daemon on a PostgreSQL store whose server restarts while it trades: the decision a fill causes waits for
its commit (nothing sent meanwhile), then lands once and its orders go out once.

Real time and the store's real worker thread (no virtual clock): every wait is a bounded wait for a condition.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, new_exchange, running
from tests.scenario import assert_protected_and_no_orphans

WAIT = 30.0


async def until(condition: Callable[[], bool]) -> None:
    """A bounded wait for what the store's worker thread and the daemon's tasks bring about."""
    with trio.fail_after(WAIT):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_server_restart_holds_the_orders_of_a_decision_until_it_is_written_then_sends_them_once(
    tmp_path, postgres
):
    settings = make_settings(tmp_path, store=postgres.new_store_url())
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        assert h.store.threaded  # commits from the worker thread, as in production
        exchange.set_mark("BTCUSDT", D("45000"))
        exchange.external_entry("BTCUSDT", Side.LONG, D("0.1"))
        first = {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        await until(lambda: h.resting() == first)

        await trio.to_thread.run_sync(postgres.stop)
        sent = exchange.orders_sent
        exchange.set_mark("BTCUSDT", D("44550"))
        exchange.external_entry("BTCUSDT", Side.LONG, D("0.05"))  # merges into tranche 0: TP and SL replaced
        # The actor meets the outage: its turn's commit waits in the writer, or a synchronous read or write raises
        # and its supervisor waits for the server; either way nothing of the decision is sent.
        await until(lambda: h.store.busy_seconds > 0)
        await trio.sleep(0.5)  # bounded: long enough for an order that should not go out to reach the exchange
        assert exchange.orders_sent == sent and h.resting() == first  # nothing of it sent, nothing cancelled

        await trio.to_thread.run_sync(postgres.start)
        merged = {("LIMIT", "SELL", "0.15", "45298.5"), ("STOP_MARKET", "SELL", "0.15", "22425")}
        await until(lambda: h.resting() == merged and h.store.busy_seconds == 0)
        assert exchange.orders_sent == sent + 2  # the new TP and SL, each once
        [t] = h.store.open_tranches()
        assert (t.qty, t.entry) == (D("0.15"), D("44850"))
        assert_protected_and_no_orphans(h)
