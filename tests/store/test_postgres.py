"""The PostgreSQL store's own behaviour: a bad URL or an absent server is one line; a server restart between two
commits holds the second until the server is back, then writes it once; a commit whose acknowledgement was lost
is never written twice; the lease check's hook runs inside every write transaction.

Real server, real threads, real time: every wait is a bounded wait for a condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal as D

import pytest
import trio

from posmon.domain.orders import Side
from posmon.domain.tranche import Tranche
from posmon.store.errors import StoreBusy, StoreError, StoreUnavailable
from posmon.store.store import Changes, Event, Store
from tests.helpers.postgres import require_psycopg

WAIT = 30.0  # seconds: generous for a loaded 2-core machine


def tranche(tid: int, symbol: str) -> Tranche:
    return Tranche(tid, "sim", symbol, Side.LONG, 0, D("100"), D("1"), D("101"), D("50"), 0.0)


def opened(tid: int, symbol: str) -> Changes:
    return Changes(
        tranches=[tranche(tid, symbol)], events=[Event("tranche_opened", "sim", symbol, "LONG", tid, {"qty": "1"})]
    )


async def until(condition: Callable[[], bool]) -> None:
    """A bounded wait for what a worker thread sets (no trio event to wait on there)."""
    with trio.fail_after(WAIT):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


@pytest.fixture(autouse=True)
def _driver():
    require_psycopg()


@pytest.fixture
def store(pg_url):
    s = Store.open(pg_url)
    yield s
    s.close()


def test_a_malformed_url_is_one_line_naming_daemon_store():
    with pytest.raises(StoreError, match=r"^daemon.store: .* is not a valid PostgreSQL URL"):
        Store.open("postgresql://posmon@/db?nonsense_option=1")


def test_an_absent_server_is_one_line_and_the_password_is_not_shown(tmp_path):
    url = f"postgresql://posmon:s3cret@/posmon?host={tmp_path}"  # no server listens there
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    line = str(caught.value)
    assert "\n" not in line and "cannot connect" in line and "is PostgreSQL running" in line
    assert "s3cret" not in line and "posmon:***@" in line


def test_a_database_of_another_application_is_refused(postgres, pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match=r"not a posmon store .* invoices"):
        Store.open(pg_url)


def test_tranche_ids_of_two_stores_on_one_database_never_collide(pg_url):
    a, b = Store.open(pg_url), Store.open(pg_url)
    try:
        ids = [s.allocate_tranche_id() for _ in range(5) for s in (a, b)]
    finally:
        a.close()
        b.close()
    assert sorted(ids) == list(range(1, 11))


async def test_a_commit_during_a_server_restart_waits_then_lands_once(postgres, store, nursery):
    await nursery.start(store.run_writer)
    await store.commit([opened(1, "AUSDT")])

    await trio.to_thread.run_sync(postgres.stop)
    landed = trio.Event()

    async def actor() -> None:
        await store.commit([opened(2, "BUSDT")])
        landed.set()

    nursery.start_soon(actor)
    await until(lambda: store.busy_seconds > 0)  # the writer met the outage and retries
    assert not landed.is_set()  # the actor still waits: nothing it decided may be sent yet
    with pytest.raises(StoreBusy):  # a synchronous call fails fast instead (the supervisor waits)
        store.allocate_tranche_id()

    await trio.to_thread.run_sync(postgres.start)
    with trio.fail_after(WAIT):
        await landed.wait()
    assert store.busy_seconds == 0
    assert [t.id for t in store.open_tranches("sim")] == [1, 2]
    events = store.events("tranche_opened")
    assert [e["tranche_id"] for e in events] == [1, 2]  # nothing doubled
    assert abs(events[1]["ts"] - time.time()) < WAIT  # stamped with the store's clock when decided, retries or not
    with trio.fail_after(WAIT):
        await store.wait_writable()


async def test_the_supervisors_wait_returns_once_the_server_is_back(postgres, store):
    await trio.to_thread.run_sync(postgres.stop)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.apply(opened(1, "AUSDT"))
        assert caught.value.wait_writable == store.wait_writable  # what the actors' supervisor awaits
        with trio.move_on_after(0.3) as waited:  # bounded: it must still be waiting while the server is down
            await store.wait_writable()
        assert waited.cancelled_caught
    finally:
        await trio.to_thread.run_sync(postgres.start)
    with trio.fail_after(WAIT):
        await store.wait_writable()
    store.apply(opened(1, "AUSDT"))  # the loop's connection reconnects on its next use
    assert [t.id for t in store.open_tranches()] == [1]


def _lose_ack(store: Store, *, landed: bool) -> list[str]:
    """The writer's next COMMIT reports a lost connection: after committing (``landed``) or instead of it."""
    conn = store._wconn  # type: ignore[attr-defined]
    real = conn.execute
    lost: list[str] = []

    def execute(sql, parameters=None):
        if sql == "COMMIT" and not lost:
            lost.append(sql)
            real("COMMIT" if landed else "ROLLBACK")
            raise StoreUnavailable("connection lost (test: the acknowledgement never came)")
        return real(sql, parameters)

    conn.execute = execute
    return lost


@pytest.mark.parametrize("landed", [True, False], ids=["commit-landed", "commit-lost"])
async def test_a_commit_with_a_lost_acknowledgement_is_written_exactly_once(store, nursery, landed):
    await nursery.start(store.run_writer)
    lost = _lose_ack(store, landed=landed)
    with trio.fail_after(WAIT):
        await store.commit([opened(1, "AUSDT"), opened(2, "BUSDT")])
    assert lost == ["COMMIT"]
    assert [e["tranche_id"] for e in store.events("tranche_opened")] == [1, 2]
    assert [t.id for t in store.open_tranches()] == [1, 2]


async def test_an_operational_error_the_driver_does_not_mark_as_a_lost_connection_is_retried_once(store, nursery):
    """A server restart in the middle of ``executemany``'s pipeline once read "cannot exit pipeline mode while busy"
    on a connection psycopg had not marked broken: the commit must not fail, and lands once, on a new connection."""
    import psycopg

    await nursery.start(store.run_writer)
    store.apply(opened(1, "AUSDT"))  # the loop's connection; the writer connects on its first commit
    await store.commit([opened(2, "BUSDT")])
    raw = store._wconn.raw  # type: ignore[attr-defined]
    real_cursor = raw.cursor
    raised: list[str] = []

    class Busy:
        def __init__(self) -> None:
            self._cur = real_cursor()

        def executemany(self, *args, **kwargs):
            raised.append("executemany")
            raise psycopg.OperationalError("cannot exit pipeline mode while busy")

        def __getattr__(self, name):
            return getattr(self._cur, name)

    raw.cursor = lambda *a, **k: Busy()  # this connection stays unusable, as one whose server went away
    with trio.fail_after(WAIT):
        await store.commit([opened(3, "CUSDT"), opened(4, "DUSDT")])
    assert raised == ["executemany"]  # then dropped: the retry ran on a fresh connection
    assert [e["tranche_id"] for e in store.events("tranche_opened")] == [1, 2, 3, 4]
    assert [t.id for t in store.open_tranches()] == [1, 2, 3, 4]


async def test_the_fence_runs_inside_every_write_transaction_and_refusing_writes_nothing(store, nursery):
    await nursery.start(store.run_writer)
    seen: list[bool] = []

    def fence(conn) -> None:
        seen.append(conn.in_transaction)
        if len(seen) == 3:
            raise StoreError("lease lost (test)")

    store.fence = fence
    store.apply(opened(1, "AUSDT"))  # the loop's connection
    await store.commit([opened(2, "BUSDT")])  # the writer's, in its thread
    with pytest.raises(StoreError, match="lease lost"):
        store.apply(opened(3, "CUSDT"))
    assert seen == [True, True, True]
    assert [t.id for t in store.open_tranches()] == [1, 2]


def test_both_backends_get_the_same_tables_and_columns_from_the_one_definition(store):
    from posmon.store.schema import POSTGRES, _table_columns, expected_columns

    on_postgres = {t: cols - {"rowid"} for t, cols in _table_columns(store.db, POSTGRES).items()}
    assert on_postgres == {t: set(cols) for t, cols in expected_columns().items()}  # SQLite's, from the same code


async def test_an_actor_meeting_the_outage_waits_for_the_server_without_spending_its_restart_budget(
    postgres, store, nursery
):
    from posmon.actors.supervisor import RestartPolicy, supervise
    from posmon.metrics import Metrics

    starts: list[int] = []
    ids: list[int] = []

    async def actor(task_status=trio.TASK_STATUS_IGNORED) -> None:
        starts.append(1)
        task_status.started()
        ids.append(store.allocate_tranche_id())  # a synchronous write, as an actor's reload or a new tranche

    await trio.to_thread.run_sync(postgres.stop)
    try:
        metrics = Metrics()
        policy = RestartPolicy(budget=0, backoff=0.01)  # any counted restart would stop it
        done = trio.Event()

        async def supervised() -> None:
            await supervise("position:AUSDT", lambda: actor, policy, metrics)
            done.set()

        nursery.start_soon(supervised)
        await until(lambda: len(starts) == 1)
        await trio.sleep(0.3)  # bounded: it waits while the server is down, neither restarting nor giving up
        assert not done.is_set() and len(starts) == 1
    finally:
        await trio.to_thread.run_sync(postgres.start)
    with trio.fail_after(WAIT):
        await done.wait()
    assert len(starts) == 2 and ids == [1]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://posmon:s3cret@db:5432/posmon", "postgresql://posmon:***@db:5432/posmon"),
        ("postgres://u@db/p?sslmode=require&password=s3cret&x=1", "postgres://u@db/p?sslmode=require&password=***&x=1"),
        ("postgresql://posmon@/posmon?host=/run/pg", "postgresql://posmon@/posmon?host=/run/pg"),
    ],
)
def test_a_password_in_the_url_never_reaches_a_line(url, shown):
    from posmon.store.location import redacted

    assert redacted(url) == shown
