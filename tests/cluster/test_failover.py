"""Active-standby failover with real ``posmon run`` processes on one PostgreSQL store and the Aster simulator
served in this process (``chaos.cluster``): a killed owner is replaced, a paused one is fenced off, a database
restart loses nothing. Short leases (2 s, renewed every 0.5 s); every wait is bounded and waits for a condition.
"""

from __future__ import annotations

import signal
from decimal import Decimal as D

import pytest
import trio

from chaos.cluster import Cluster, read_pg_store
from chaos.invariants import check_history
from chaos.venues import AsterVenue, LighterVenue
from posmon.domain.orders import Side
from posmon.store.postgres import PgStore

LEASE, RENEW = 2.0, 0.5


@pytest.fixture
async def cluster(tmp_path, postgres, nursery):
    venue = AsterVenue(("BTCUSDT",))
    rest_url, ws_url = await venue.serve(nursery)
    url = postgres.new_store_url()
    PgStore.open(url).close()  # migrated before the first instance starts: the test reads the leases at once
    c = Cluster(tmp_path, url, venue, rest_url, ws_url, lease=LEASE, renew=RENEW)
    try:
        yield c
    finally:
        with trio.CancelScope(shield=True):
            await c.stop_all()


def assert_clean(cluster: Cluster) -> None:
    violations = cluster.violations()
    assert not violations, violations
    for name in cluster.instances:
        assert "Traceback" not in cluster.log(name), cluster.log(name)[-3000:]


async def test_a_killed_owner_is_replaced_by_the_standby_and_the_position_is_protected_again(cluster):
    venue = cluster.venue
    cluster.start("a")
    owner, token = await cluster.until_owner()
    assert (owner, token) == ("a", 1)
    cluster.start("b")  # the standby: registers and waits
    venue.entry("BTCUSDT", Side.LONG, D("100"))
    await cluster.until_protected()
    protected_by_a = sorted(o.client_id for o in venue.resting())

    cluster.kill("a")
    # The lease runs out, the standby's next try takes it (how long: ``python -m bench.takeover``, not a test).
    assert await cluster.until_owner(other_than="a") == ("b", 2)
    await cluster.until_protected()
    # b started from the store and reconciled: the same TP and SL rest, none placed again, none doubled.
    assert sorted(o.client_id for o in venue.resting()) == protected_by_a

    venue.entry("BTCUSDT", Side.SHORT, D("100"))  # b protects what comes next
    await cluster.until_protected()
    with trio.fail_after(30):
        while len(venue.resting()) < 4:  # noqa: ASYNC110 - the simulator's account, in this process
            await trio.sleep(0.05)
    assert_clean(cluster)
    assert "took over aster from a (token 1 -> 2)" in cluster.log("b")


async def test_a_paused_owner_writes_nothing_and_sends_nothing_after_the_takeover(cluster):
    venue, exchange = cluster.venue, cluster.venue.exchange
    cluster.start("a")
    await cluster.until_owner()
    cluster.start("b")
    venue.entry("BTCUSDT", Side.LONG, D("100"))
    await cluster.until_protected()

    cluster.signal("a", signal.SIGSTOP)  # a GC pause, a frozen VM: a keeps its sockets and its state
    assert await cluster.until_owner(other_than="a") == ("b", 2)
    await cluster.until_protected()
    cluster.signal("b", signal.SIGSTOP)  # now only a can act: whatever changes is a's doing
    sent, events = exchange.orders_sent, events_in(cluster)
    venue.entry("BTCUSDT", Side.SHORT, D("100"))  # a fill a's stale actors would protect, were they allowed to
    cluster.signal("a", signal.SIGCONT)
    with trio.fail_after(2 * LEASE):  # well within b's lease: a may not legitimately own anything yet
        while "stopping the account" not in cluster.log("a"):  # noqa: ASYNC110
            await trio.sleep(0.02)
    await trio.sleep(0.5)  # bounded: long enough for a stray order or write of a to land
    assert exchange.orders_sent == sent, "a paused owner sent an order after losing its lease"
    assert events_in(cluster) == events, "a paused owner wrote to the store after losing its lease"

    cluster.signal("b", signal.SIGCONT)  # b's own deadline has passed: whoever owns next protects the fill
    await cluster.until_owner()
    with trio.fail_after(60):
        while cluster.violations() or len(venue.resting()) < 4:  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert_clean(cluster)


def events_in(cluster: Cluster) -> int:
    import psycopg

    with psycopg.connect(cluster.url) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


async def test_a_database_restart_keeps_one_owner_loses_nothing_and_doubles_nothing(cluster, postgres):
    venue = cluster.venue
    cluster.start("a")
    await cluster.until_owner()
    cluster.start("b")
    venue.entry("BTCUSDT", Side.LONG, D("100"))
    await cluster.until_protected()
    await cluster.until_registered("a", "b")  # both past start-up: the outage is met in operation

    await trio.to_thread.run_sync(postgres.stop)
    venue.entry("BTCUSDT", Side.SHORT, D("100"))  # decided during the outage: waits for the store
    await trio.sleep(1.0)  # bounded: the outage
    await trio.to_thread.run_sync(postgres.start)

    owner, _token = await cluster.until_owner()
    assert owner in ("a", "b")
    with trio.fail_after(60):
        while cluster.violations() or len(venue.resting()) < 4:  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert_clean(cluster)
    assert sorted(t.side for t in read_pg_store(cluster.url).tranches) == [Side.LONG, Side.SHORT]
    for name in cluster.instances:  # both instances outlived the outage
        assert cluster.instances[name].alive(), cluster.log(name)[-3000:]


async def test_on_lighter_the_standby_that_took_over_closes_the_position_at_its_stop(tmp_path, postgres, nursery):
    """Lighter's exits are posmon's own: the position is protected again once the new owner watches it, which it
    proves by closing the tranche when the mark crosses the stop (once: no doubled close)."""
    venue = LighterVenue(("BTC",))
    rest_url, ws_url = await venue.serve(nursery)
    url = postgres.new_store_url()
    PgStore.open(url).close()
    cluster = Cluster(tmp_path, url, venue, rest_url, ws_url, lease=LEASE, renew=RENEW)
    base = venue.base_price("BTC")

    async def marks() -> None:  # the mark stream keeps ticking, as a live venue's does
        while True:
            venue.set_marks({"BTC": mark[0]})
            await trio.sleep(0.25)

    mark = [base]
    nursery.start_soon(marks)
    try:
        cluster.start("a")
        await cluster.until_owner()
        cluster.start("b")
        await cluster.until_registered("a", "b")
        venue.entry("BTC", Side.LONG, D("100"))
        with trio.fail_after(60):
            while not read_pg_store(url).tranches:  # noqa: ASYNC110 - a adopted the fill as a tranche
                await trio.sleep(0.05)

        cluster.kill("a")
        assert await cluster.until_owner(other_than="a") == ("b", 2)
        with trio.fail_after(60):
            while "posmon ready" not in cluster.log("b"):  # noqa: ASYNC110
                await trio.sleep(0.05)
        mark[0] = base * D("0.97")  # through the 2 % stop
        with trio.fail_after(60):
            while venue.positions() or read_pg_store(url).tranches:  # noqa: ASYNC110 - b closes it, records it
                await trio.sleep(0.05)
        assert not check_history(venue.fill_log)  # one close, never past zero
        assert "Traceback" not in cluster.log("b")
    finally:
        with trio.CancelScope(shield=True):
            await cluster.stop_all()


async def test_an_instance_started_while_the_database_restarts_waits_for_it_and_owns_the_account(cluster, postgres):
    """Found by ``python -m chaos --cluster --seed 113 --venue lighter``: an instance restarted during a PostgreSQL
    restart exited at once (exit 4, "cannot connect") instead of waiting for the server as it does for the venue."""
    await trio.to_thread.run_sync(postgres.stop)
    try:
        cluster.start("a")
        with trio.fail_after(60):  # a's start-up meets the outage: it waits, or (the bug) exits
            while "waiting for it" not in cluster.log("a") and cluster.instances["a"].alive():  # noqa: ASYNC110
                await trio.sleep(0.05)
        await trio.sleep(0.5)  # bounded: the outage goes on a little while a waits
        assert cluster.instances["a"].alive(), cluster.log("a")[-2000:]
    finally:
        await trio.to_thread.run_sync(postgres.start)
    assert await cluster.until_owner() == ("a", 1)
    cluster.venue.entry("BTCUSDT", Side.LONG, D("100"))
    await cluster.until_protected()
    assert_clean(cluster)
