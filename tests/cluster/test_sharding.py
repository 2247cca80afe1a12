"""Accounts shared over instances (issue 17): real ``posmon run`` processes on one PostgreSQL store, each named
account (``[accounts.<name>]``) on a simulator of its own. Four accounts over two instances split two and two, a
killed instance's accounts move to the other and are protected again; with an Aster and a Lighter account, the
owner of each is killed and the standby takes it over. Short leases (2 s, renewed every 0.5 s); every wait is
bounded and waits for a condition.
"""

from __future__ import annotations

from decimal import Decimal as D

import trio

from chaos.invariants import check_history
from posmon.domain.orders import Side
from posmon.store.postgres import PgStore
from tests.helpers.shard_cluster import ShardCluster, aster_and_lighter, read_account, serve_all

LEASE, RENEW = 2.0, 0.5


async def _cluster(tmp_path, postgres, nursery, *accounts: str) -> ShardCluster:
    venues = aster_and_lighter(*accounts)
    urls = await serve_all(venues, nursery)
    url = postgres.new_store_url()
    PgStore.open(url).close()
    return ShardCluster(tmp_path, url, venues, urls, lease=LEASE, renew=RENEW)


def assert_clean(cluster: ShardCluster) -> None:
    violations = cluster.violations()
    assert not violations, violations
    for name in cluster.instances:
        assert "Traceback" not in cluster.log(name), cluster.log(name)[-3000:]


async def _entries(cluster: ShardCluster) -> None:
    """A long on every account (a short too on the hedge-mode Aster ones), adopted and protected."""
    for venue in cluster.venues.values():
        symbol = venue.symbols[0]
        venue.entry(symbol, Side.LONG, D("100"))
        if venue.hedge:
            venue.entry(symbol, Side.SHORT, D("100"))
    with trio.fail_after(90):
        while not all(read_account(cluster.url, n).tranches for n in cluster.venues):  # noqa: ASYNC110
            await trio.sleep(0.05)
    await cluster.until_protected()


async def test_four_accounts_split_two_and_two_and_a_killed_instance_s_move_to_the_other(tmp_path, postgres, nursery):
    cluster = await _cluster(tmp_path, postgres, nursery, "aster_one", "aster_two", "lighter_one", "lighter_two")
    try:
        cluster.start("a")
        cluster.start("b")
        split = await cluster.until_split({"a": 2, "b": 2})
        await _entries(cluster)
        # Two accounts on the same venue, one store: each account's rows carry its own name, none shared.
        for name in cluster.venues:
            assert {t.symbol for t in read_account(cluster.url, name).tranches} == {cluster.venues[name].symbols[0]}
        client_ids = [o.client_id for n in ("aster_one", "aster_two") for o in cluster.venues[n].resting()]
        assert len(client_ids) == len(set(client_ids)) == 8  # TP and SL of a long and a short on each

        moved = split["a"]
        before = await trio.to_thread.run_sync(cluster.owners)
        cluster.kill("a")
        after = await cluster.until_split({"b": 4})  # bounded; how long it takes is bench.takeover's figure
        assert after["b"] == sorted(cluster.venues)
        owners = await trio.to_thread.run_sync(cluster.owners)
        assert all(owners[n][1] == before[n][1] + 1 for n in moved), (before, owners)  # taken over once each
        with trio.fail_after(90):
            while not all(cluster.ready_lines("b", n) for n in moved):  # noqa: ASYNC110 - b runs them now
                await trio.sleep(0.05)
        await cluster.until_protected()
        for n in moved:
            assert f"took over {n} from a" in cluster.log("b")
        assert_clean(cluster)
    finally:
        with trio.CancelScope(shield=True):
            await cluster.stop_all()


async def test_an_aster_and_a_lighter_account_each_taken_over_when_its_owner_is_killed(tmp_path, postgres, nursery):
    cluster = await _cluster(tmp_path, postgres, nursery, "aster_main", "lighter_main")
    lighter = cluster.venues["lighter_main"]
    base = lighter.base_price("BTC")
    mark = [base]

    async def marks() -> None:  # Lighter's mark stream keeps ticking, as a live venue's does
        while True:
            lighter.set_marks({"BTC": mark[0]})
            await trio.sleep(0.25)

    nursery.start_soon(marks)
    try:
        cluster.start("a")
        cluster.start("b")
        split = await cluster.until_split({"a": 1, "b": 1})
        await _entries(cluster)
        for account in ("aster_main", "lighter_main"):
            owner = (await trio.to_thread.run_sync(cluster.owners))[account][0]
            standby = "b" if owner == "a" else "a"
            readies = cluster.ready_lines(standby, account)
            cluster.kill(owner)
            with trio.fail_after(60):  # a liveness bound; the takeover time is bench.takeover's figure
                while (await trio.to_thread.run_sync(cluster.owners)).get(account, ("",))[0] != standby:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            with trio.fail_after(90):
                while cluster.ready_lines(standby, account) == readies:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await cluster.until_protected()
            cluster.start(owner)  # back: the standby, holding two, hands one over to it
            await cluster.until_split({"a": 1, "b": 1})
        assert split  # both instances held one account at the start
        # The Lighter account's exits are posmon's own: its owner now closes the position at its stop, once.
        mark[0] = base * D("0.97")
        with trio.fail_after(60):
            while lighter.positions() or read_account(cluster.url, "lighter_main").tranches:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert not check_history(lighter.fill_log)
        assert_clean(cluster)
    finally:
        with trio.CancelScope(shield=True):
            await cluster.stop_all()
