"""The store when things go wrong: another process's lock, a full disk, a foreign or corrupt file; and the
restore keys of a side that went flat with a cancel still unfinished."""

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest
import trio

from posmon.domain.orders import OrderStatus, Side, WorkingType
from posmon.domain.protection import LocalState, OrderRecord, protection_orders
from posmon.domain.tranche import Tranche
from posmon.store.errors import StoreBusy, StoreError
from posmon.store.schema import SCHEMA_VERSION
from posmon.store.store import Changes, Store

NOW = 1_700_000_000.0

# Holds a write transaction on the file until its stdin closes: another process, as an operator's sqlite3 shell
# or a backup tool would.
_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        release(holder)


def release(holder: subprocess.Popen[str]) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def tranche(id: int, *, symbol: str = "BTCUSDT", side: Side = Side.LONG) -> Tranche:
    return Tranche(
        id=id,
        venue="sim",
        symbol=symbol,
        side=side,
        index=0,
        entry=D("44850.00"),
        qty=D("0.150"),
        tp=D("45450.0"),
        sl=D("22500.0"),
        opened_at=1234.5,
        deadline=None,
        seq=0,
    )


def protected(t: Tranche) -> tuple[Tranche, OrderRecord, OrderRecord]:
    return protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=True)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "posmon.sqlite"


def make_store(path: Path) -> None:
    Store.open(path).close()


# --- 10.6: a flat side with an unfinished sibling cancel is restored ---------------------------------------------


def test_position_keys_include_a_flat_side_whose_sibling_cancel_is_unfinished(path):
    """TP filled, the SL persisted as CANCELING, killed before the DELETE went out: after a restart an actor
    must exist for that key, or the SL stays resting on a flat position."""
    store = Store.open(path, clock=lambda: NOW)
    t, tp, sl = protected(tranche(store.allocate_tranche_id()))
    store.apply(Changes(tranches=[t], orders=[tp, sl]))
    filled = replace(tp, state=LocalState.DONE, final_status=OrderStatus.FILLED, filled_qty=t.qty)
    store.apply(Changes(closed=[(t.id, "TP", NOW)], orders=[filled, replace(sl, state=LocalState.CANCELING)]))
    # a flat key whose orders are all done is not restored
    done, dtp, dsl = protected(tranche(store.allocate_tranche_id(), symbol="ETHUSDT", side=Side.SHORT))
    store.apply(Changes(tranches=[done], orders=[dtp, dsl]))
    store.apply(Changes(closed=[(done.id, "SL", NOW)], orders=[replace(o, state=LocalState.DONE) for o in (dtp, dsl)]))
    store.close()

    store = Store.open(path)
    try:
        assert store.open_tranches("sim") == []
        assert store.position_keys("sim") == [("BTCUSDT", Side.LONG)]
        assert store.tranches_with_active_orders("sim", "BTCUSDT", Side.LONG) == [t.id]
        assert store.position_keys("other-venue") == []
    finally:
        store.close()


def test_position_keys_list_a_key_once_with_open_and_unfinished_closed_tranches(path):
    store = Store.open(path, clock=lambda: NOW)
    try:
        old, tp, sl = protected(tranche(store.allocate_tranche_id()))
        store.apply(Changes(tranches=[old], orders=[tp, sl]))
        store.apply(Changes(closed=[(old.id, "merged", NOW)], orders=[replace(sl, state=LocalState.CANCELING)]))
        new, *_ = protected(tranche(store.allocate_tranche_id()))
        store.apply(Changes(tranches=[new]))
        assert store.position_keys("sim") == [("BTCUSDT", Side.LONG)]
    finally:
        store.close()


# --- 11.9: another process's write lock ---------------------------------------------------------------------------


def test_a_write_on_a_store_locked_by_another_process_raises_store_busy_naming_the_file(path):
    """Today a write waits 5 s holding the event loop, then raises a bare OperationalError."""
    make_store(path)
    store = Store.open(path, clock=lambda: NOW)
    try:
        with locked_by_another_process(path):
            with pytest.raises(StoreBusy, match=f"store {path} is locked by another process"):
                store.apply(Changes(tranches=[tranche(1)]))
            assert store.busy_since is not None and store.busy_seconds >= 0
        assert store.open_tranches() == []  # nothing of that decision was written
        store.apply(Changes(tranches=[tranche(1)]))  # and the store works again once released
        assert [t.id for t in store.open_tranches()] == [1] and store.busy_since is None
    finally:
        store.close()


def lock_met(store: Store) -> trio.Event:
    """Set when a write of ``store`` first finds the lock held by another process."""
    met = trio.Event()
    failed = store._failed

    def noting(exc: sqlite3.Error) -> StoreError:
        error = failed(exc)
        if isinstance(error, StoreBusy):
            met.set()
        return error

    store._failed = noting  # type: ignore[method-assign]
    return met


async def test_apply_async_waits_for_the_lock_while_other_tasks_run(path, caplog, autojump_clock):
    make_store(path)
    store = Store.open(path, clock=lambda: NOW)
    caplog.set_level(logging.WARNING, logger="posmon.store.store")
    met = lock_met(store)
    written, ticked = trio.Event(), trio.Event()

    async def decide() -> None:
        await store.apply_async(Changes(tranches=[tranche(7)]))
        written.set()

    async def ticker() -> None:  # another actor's work: it must keep running while the write waits
        await met.wait()
        for _ in range(5):
            await trio.sleep(0.01)
        ticked.set()

    try:
        with locked_by_another_process(path) as holder:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(decide)
                nursery.start_soon(ticker)
                await ticked.wait()
                assert not written.is_set() and store.open_tranches() == []
                release(holder)
                await written.wait()
        assert [t.id for t in store.open_tranches()] == [7]
        assert any(f"store {path} is locked by another process" in r.getMessage() for r in caplog.records)
        assert any("writable again" in r.getMessage() for r in caplog.records)
    finally:
        store.close()


async def test_allocate_tranche_id_async_waits_for_the_lock(path, autojump_clock):
    make_store(path)
    store = Store.open(path)
    met = lock_met(store)
    ids: list[int] = []

    async def allocate() -> None:
        ids.append(await store.allocate_tranche_id_async())

    try:
        with locked_by_another_process(path) as holder:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(allocate)
                await met.wait()
                assert ids == []
                release(holder)
        assert ids == [1] and store.allocate_tranche_id() == 2
    finally:
        store.close()


def test_opening_a_store_locked_by_another_process_says_so_after_a_bounded_wait(path, caplog):
    make_store(path)
    caplog.set_level(logging.WARNING, logger="posmon.store.store")
    with locked_by_another_process(path), pytest.raises(StoreBusy, match=f"store {path} is locked by another"):
        Store.open(path, open_wait=0.3)
    assert any("waiting up to" in r.getMessage() for r in caplog.records)


# --- full disk, foreign and corrupt files ------------------------------------------------------------------------


def test_a_full_disk_refuses_the_decision_whole_with_a_clear_error(path):
    store = Store.open(path, clock=lambda: NOW)
    try:
        store.apply(Changes(tranches=[tranche(1)]))
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: as a full disk
        big = [replace(tranche(i), symbol=f"S{i:05d}" * 20) for i in range(2, 400)]
        with pytest.raises(StoreError, match="disk is full"):
            store.apply(Changes(tranches=big))
        assert [t.id for t in store.open_tranches()] == [1]
        store.db.execute("PRAGMA max_page_count = 1073741823")
        store.apply(Changes(tranches=big[:1]))
        assert len(store.open_tranches()) == 2
    finally:
        store.close()


def test_no_store_is_created_on_a_disk_without_room_for_its_log(path, monkeypatch):
    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(os, "statvfs", lambda _: Full())
    with pytest.raises(StoreError, match=r"the disk is full \(40 KiB free"):
        Store.open(path)
    assert not path.exists()


def test_a_foreign_sqlite_file_with_posmons_user_version_is_refused_untouched(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.commit()
    conn.close()
    with pytest.raises(
        StoreError, match=r"is not a posmon store .* lacks table\(s\) entries, events, instances, leases, meta, orders"
    ):
        Store.open(path)
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert tables == {"users"}


def test_a_foreign_file_missing_a_column_is_refused(path):
    make_store(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE orders DROP COLUMN final_status")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"table orders lacks column\(s\) final_status"):
        Store.open(path)


def test_another_applications_database_at_version_0_gets_no_posmon_tables(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"not a posmon store .* holds tables users"):
        Store.open(path)
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["users"]
    finally:
        conn.close()


def corrupt_pages_behind_the_header(path: Path) -> None:
    """A store with a few hundred events, then pages 6-8 overwritten: the header still reads as SQLite."""
    store = Store.open(path)
    store.db.conn.executemany(
        "INSERT INTO events (ts, venue, symbol, side, kind, data) VALUES (1, 'sim', 'S', 'LONG', 'k', ?)",
        [("x" * 500,)] * 300,
    )
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    with open(path, "r+b") as f:
        f.seek(4096 * 5)
        f.write(bytes(range(256)) * 48)
    with open(path, "rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"


def test_pages_corrupted_behind_an_intact_header_are_refused_at_open(path):
    """Today the store opens (user_version reads fine) and the damage shows only when an actor reads it."""
    corrupt_pages_behind_the_header(path)
    with pytest.raises(StoreError, match=r"is corrupt \(PRAGMA quick_check: .*Page"):
        Store.open(path)


def test_a_store_error_message_is_one_line(path):
    corrupt_pages_behind_the_header(path)
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert "\n" not in str(info.value)


async def test_store_busy_carries_a_wait_until_the_store_is_writable_again(path, autojump_clock):
    """What a supervisor awaits before restarting an actor that met another process's lock."""
    make_store(path)
    store = Store.open(path)
    try:
        with locked_by_another_process(path) as holder:
            with pytest.raises(StoreBusy) as busy:
                store.allocate_tranche_id()
            assert busy.value.wait_writable is not None
            async with trio.open_nursery() as nursery:
                done = trio.Event()

                async def wait() -> None:
                    await busy.value.wait_writable()
                    done.set()

                nursery.start_soon(wait)
                await trio.sleep(5)  # virtual time: the wait keeps trying and yielding
                assert not done.is_set()
                release(holder)
                await done.wait()
        assert store.busy_since is None and store.allocate_tranche_id() == 1
    finally:
        store.close()
