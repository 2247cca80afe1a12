"""The lease SQL on a real PostgreSQL server: acquire when free, one owner at a time, the token grows on every
takeover, a renewal by a deposed owner fails, and the fence rolls back a deposed owner's write."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest
import trio

from posmon.cluster import leases
from posmon.cluster.leases import HeldLease, LeaseLost
from posmon.domain.orders import Side
from posmon.domain.tranche import Tranche
from posmon.store.postgres import PgConn, PgStore
from posmon.store.store import Changes


@pytest.fixture
def url(postgres):
    url = postgres.new_store_url()
    PgStore.open(url).close()  # migrated: the cluster's tables exist
    return url


@pytest.fixture
def conn(url):
    c = PgConn(url, "test")
    yield c
    c.close()


def expire(conn: PgConn, account: str) -> None:
    conn.execute("UPDATE leases SET expires_at = 1 WHERE account = ?", [account])


def test_the_first_instance_takes_a_free_account_with_token_1_and_the_second_waits(conn):
    got = leases.try_acquire(conn, "aster", "a", 10)
    assert got is not None and (got.token, got.previous_owner) == (1, None)
    assert leases.try_acquire(conn, "aster", "b", 10) is None  # held: b stands by
    assert leases.try_acquire(conn, "lighter", "b", 10).token == 1  # another account is free


def test_an_expired_lease_is_taken_over_with_the_next_token_and_the_old_owner_can_no_longer_renew(conn):
    leases.try_acquire(conn, "aster", "a", 10)
    assert leases.renew(conn, "aster", "a", 1, 10)
    expire(conn, "aster")
    got = leases.try_acquire(conn, "aster", "b", 10)
    assert (got.token, got.previous_owner, got.previous_token) == (2, "a", 1)
    assert not leases.renew(conn, "aster", "a", 1, 10)  # deposed: its run stops
    assert leases.renew(conn, "aster", "b", 2, 10)
    expire(conn, "aster")
    assert leases.try_acquire(conn, "aster", "a", 10).token == 3  # every takeover, even back, grows the token


def test_a_released_lease_is_free_at_once(conn):
    leases.try_acquire(conn, "aster", "a", 10)
    leases.release(conn, "aster", "a", 1)
    assert leases.try_acquire(conn, "aster", "b", 10).token == 2


def test_expiry_is_on_the_servers_clock(conn):
    leases.try_acquire(conn, "aster", "a", 10)
    (left,) = conn.execute(f"SELECT expires_at - {leases.NOW} FROM leases WHERE account = 'aster'").fetchone()
    assert 9 < left <= 10


def tranche(tid: int, account: str = "aster") -> Tranche:
    return Tranche(tid, account, "BTCUSDT", Side.LONG, 0, D("45000"), D("0.1"), D("45450"), D("44100"), time.time())


async def test_the_fence_rolls_back_a_deposed_owners_write_and_stops_its_run(url, conn):
    store = PgStore.open(url, threaded=False)
    try:
        leases.try_acquire(conn, "aster", "a", 10)
        with trio.CancelScope() as scope:
            held = HeldLease("aster", "a", 1, trio.current_time() + 10, scope)
            store.fence = held.fence
            await store.commit([Changes(tranches=[tranche(1)])])  # the owner writes
            expire(conn, "aster")
            leases.try_acquire(conn, "aster", "b", 10)  # b takes over: token 2
            with pytest.raises(LeaseLost, match="lease of aster lost"):
                await store.commit([Changes(tranches=[tranche(2)])])
            with pytest.raises(LeaseLost):
                store.allocate_tranche_id()
            await trio.sleep_forever()  # the fence cancelled the run
        assert scope.cancelled_caught and held.lost_reason is not None
        assert [t.id for t in store.open_tranches()] == [1]  # tranche 2 was rolled back
    finally:
        store.close()


async def test_the_gate_holds_a_venue_call_past_the_renewal_deadline_and_cancels_the_run(autojump_clock):
    sent = []
    with trio.CancelScope() as scope:
        held = HeldLease("aster", "a", 1, trio.current_time() + 7.5, scope)
        await held.gate()
        sent.append("before the deadline")
        await trio.sleep(8)
        await held.gate()
        sent.append("after the deadline")  # never reached
    assert scope.cancelled_caught and sent == ["before the deadline"]
    assert "renewal deadline" in held.lost_reason


def test_an_owner_paused_inside_a_write_does_not_hold_up_the_takeover(url, conn):
    """A SIGSTOP can land between a write's fence (the lease row ``FOR SHARE``) and its COMMIT: the server ends the
    paused session after ``idle_transaction_bound`` so the standby's ``FOR UPDATE`` takes the expired lease instead
    of waiting on the paused owner for as long as it stays paused (seen in a loaded CI run: no takeover in 60 s)."""
    lease = 2.0
    owner = PgConn(url, "owner", idle_transaction_timeout=leases.idle_transaction_bound(lease))
    try:
        assert leases.try_acquire(owner, "aster", "a", lease).token == 1
        owner.execute("BEGIN")
        leases.check_fence(owner, "aster", "a", 1)  # ... and then the process is paused: no COMMIT comes
        started = time.monotonic()
        while (got := _try_acquire_within(url, "b", lease)) is None:
            # A liveness bound: without the session bound the paused owner's lock is held for as long as it is
            # paused, and no attempt ever gets the row.
            assert time.monotonic() - started < 30, "the paused owner's lock held up the takeover"
            time.sleep(0.1)
        assert got.token == 2 and got.previous_owner == "a"
    finally:
        owner.close()


def _try_acquire_within(url: str, instance: str, lease: float) -> leases.Acquired | None:
    """One takeover attempt on a fresh connection that gives up waiting for a row lock after a second."""
    c = PgConn(url, instance)
    try:
        c.execute("SET lock_timeout = 1000")
        try:
            return leases.try_acquire(c, "aster", instance, lease)
        except Exception as exc:  # the lock wait timed out: the row is still held
            if "lock timeout" not in str(exc):
                raise
            return None
    finally:
        c.close()


# --- sharding: at most a fair share each, and a gone owner's accounts go to anyone ---------------------------


def test_four_accounts_over_two_live_instances_at_most_two_each(conn):
    leases.register(conn, "a")
    leases.register(conn, "b")
    names = ["acc1", "acc2", "acc3", "acc4"]
    taken_by_a = [n for n in names if leases.try_acquire(conn, n, "a", 10, accounts=4) is not None]
    assert taken_by_a == ["acc1", "acc2"]  # ceil(4 / 2) = 2: the rest wait for b
    taken_by_b = [n for n in names if leases.try_acquire(conn, n, "b", 10, accounts=4) is not None]
    assert taken_by_b == ["acc3", "acc4"]
    assert leases.census(conn, "a", 10) == (2, ["acc1", "acc2"])


def test_alone_an_instance_takes_every_account(conn):
    leases.register(conn, "a")
    assert all(leases.try_acquire(conn, f"acc{i}", "a", 10, accounts=4) for i in range(4))


def test_an_expired_lease_of_a_gone_owner_is_taken_even_beyond_the_share_but_a_live_owner_s_only_with_room(conn):
    leases.register(conn, "a")
    leases.register(conn, "b")
    for n in ("acc1", "acc2"):
        assert leases.try_acquire(conn, n, "a", 10, accounts=4)
    for n in ("acc3", "acc4"):
        assert leases.try_acquire(conn, n, "b", 10, accounts=4)
    expire(conn, "acc3")  # b missed its renewal but still heartbeats: a is full, so it waits
    assert leases.try_acquire(conn, "acc3", "a", 10, accounts=4) is None
    conn.execute("UPDATE instances SET last_seen = 1 WHERE id = 'b'")  # b is gone
    got = leases.try_acquire(conn, "acc3", "a", 10, accounts=4)
    assert got is not None and (got.token, got.previous_owner) == (2, "b")


def test_fair_share_is_the_ceiling_and_at_least_one():
    assert [leases.fair_share(4, n) for n in (1, 2, 3, 4, 5)] == [4, 2, 2, 1, 1]
    assert leases.fair_share(0, 0) == 1


async def test_two_accounts_on_one_store_a_lost_lease_fails_only_its_own_account_s_writes(url, conn):
    """Each held account writes through a store connection of its own, fenced by its own lease (``cluster.run``):
    the deposed account's write rolls back and stops its run, the other account's commits go on."""
    one, two = PgStore.open(url, threaded=False), PgStore.open(url, threaded=False)
    try:
        leases.try_acquire(conn, "one", "a", 10, accounts=2)
        leases.try_acquire(conn, "two", "a", 10, accounts=2)
        with trio.CancelScope() as scope_two:
            two.fence = HeldLease("two", "a", 1, trio.current_time() + 10, scope_two).fence
            with trio.CancelScope() as scope_one:
                one.fence = HeldLease("one", "a", 1, trio.current_time() + 10, scope_one).fence
                expire(conn, "one")
                leases.try_acquire(conn, "one", "b", 10, accounts=2)  # b takes "one" over
                with pytest.raises(LeaseLost, match="lease of one lost"):
                    await one.commit([Changes(tranches=[tranche(1, "one")])])
                await two.commit([Changes(tranches=[tranche(2, "two")])])  # "two" is still a's: written
                await trio.sleep_forever()  # the lost lease cancels its own account's run
            assert scope_one.cancelled_caught and not scope_two.cancel_called
        assert [(t.id, t.venue) for t in two.open_tranches()] == [(2, "two")]
    finally:
        one.close()
        two.close()
