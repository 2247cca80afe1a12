"""``ClusterNode`` in this process on a real PostgreSQL server (real time, a 1 s lease): a standby takes over a
released lease at once and says so; a renewal that finds its token gone stops the run and stands by again."""

from __future__ import annotations

import pytest
import trio

from posmon.actors.messages import Notice
from posmon.cluster.leases import ClusterNode, HeldLease
from posmon.cluster.settings import ClusterSettings
from posmon.metrics import Metrics
from posmon.notify.kinds import NoticeKind
from posmon.store.postgres import PgConn, PgStore

WAIT = 20.0


@pytest.fixture
def url(postgres):
    url = postgres.new_store_url()
    PgStore.open(url).close()
    return url


def node(url: str, name: str, notices: list[Notice]) -> ClusterNode:
    settings = ClusterSettings(True, name, lease_seconds=1.0, lease_renew_seconds=0.2)
    return ClusterNode(url, settings, Metrics(strict=True), notices=notices.append)


async def test_a_standby_takes_over_a_released_lease_at_once_and_raises_a_takeover_notice(url):
    running: list[tuple[str, int]] = []
    notices: list[Notice] = []
    a, b = node(url, "a", notices), node(url, "b", notices)

    async def run_account(account: str, lease: HeldLease) -> None:
        running.append((lease.instance, lease.token))
        await trio.sleep_forever()

    a_scope = trio.CancelScope()

    async def run_a() -> None:
        with a_scope:
            await a.run(["aster"], run_account)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_a)
        with trio.fail_after(WAIT):
            while running != [("a", 1)]:  # noqa: ASYNC110
                await trio.sleep(0.01)
        nursery.start_soon(b.run, ["aster"], run_account)
        await trio.sleep(0.5)  # bounded: b tries a few times meanwhile, and stands by
        assert running == [("a", 1)] and a.metrics.get("lease_owner", account="aster") == 1
        a_scope.cancel()  # a stops cleanly (SIGTERM): it releases the lease
        with trio.fail_after(0.9):  # well before a's 1 s lease could have run out: a released it
            while len(running) < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert running[1] == ("b", 2)
        [takeover] = notices
        assert takeover.kind == NoticeKind.TAKEOVER and takeover.data == {
            "account": "aster",
            "from": "a",
            "to": "b",
            "token": 2,
        }
        assert b.metrics.get("lease_takeovers", account="aster") == 1
        assert b.metrics.get("lease_owner", account="aster") == 1
        nursery.cancel_scope.cancel()


async def test_a_renewal_that_finds_its_token_gone_stops_the_run_and_stands_by_again(url):
    runs: list[int] = []
    stopped = trio.Event()
    notices: list[Notice] = []
    a = node(url, "a", notices)

    async def run_account(account: str, lease: HeldLease) -> None:
        runs.append(lease.token)
        try:
            await trio.sleep_forever()
        finally:
            if len(runs) == 1:
                stopped.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run, ["aster"], run_account)
        with trio.fail_after(WAIT):
            while not runs:  # noqa: ASYNC110
                await trio.sleep(0.01)
        # Another instance took the account behind a's back (its lease had run out, say): token 2 is b's.
        conn = PgConn(url, "test")
        conn.execute("UPDATE leases SET owner = 'b', token = 2 WHERE account = 'aster'")
        with trio.fail_after(WAIT):
            await stopped.wait()  # the run was cancelled
            while not notices:  # noqa: ASYNC110 - then the node says why
                await trio.sleep(0.01)
        assert [n.kind for n in notices] == [NoticeKind.LEASE_LOST]
        assert a.metrics.get("lease_owner", account="aster") == 0
        conn.execute("UPDATE leases SET expires_at = 1 WHERE account = 'aster'")  # b's lease runs out
        conn.close()
        with trio.fail_after(WAIT):
            while len(runs) < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert runs == [1, 3]  # a owns it again, with a new token
        assert [n.kind for n in notices] == [NoticeKind.LEASE_LOST, NoticeKind.TAKEOVER]
        nursery.cancel_scope.cancel()


async def test_an_account_run_failing_on_the_store_stands_the_instance_by_and_runs_the_account_again(url):
    """Found by ``python -m chaos --cluster --seed 1 --venue lighter``: a PostgreSQL restart while a new owner was
    starting the account ended the whole instance (exit 4, "cannot connect") instead of standing it by."""
    from posmon.store.errors import StoreUnavailable

    runs: list[int] = []
    notices: list[Notice] = []
    a = node(url, "a", notices)

    async def run_account(account: str, lease: HeldLease) -> None:
        runs.append(lease.token)
        if len(runs) == 1:  # the server went away under the account's start-up (raised from its nursery)
            raise ExceptionGroup("account", [StoreUnavailable("store: cannot connect (server restarting)")])
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run, ["aster"], run_account)
        with trio.fail_after(WAIT):
            while len(runs) < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert runs == [1, 2]  # the instance lived on, stood by, and owns the account again with a new token
        assert [n.kind for n in notices] == [NoticeKind.LEASE_LOST, NoticeKind.TAKEOVER]
        assert "store" in notices[0].text
        nursery.cancel_scope.cancel()
