"""The daemon's memory: tranches, the orders that protect them, and an append-only journal.

Every decision is written here (one transaction) before the orders it causes
are sent, so after a crash recovery can tell "decided, maybe sent" (PENDING)
from "never decided". Calls are synchronous and short: SQLite in WAL mode with
synchronous=NORMAL commits without an fsync, so writing inline keeps a tick's
decision-to-order path free of thread hops; only checkpoints touch the disk.

Another process holding the write lock must not freeze the event loop: the busy timeout is short
(``BUSY_TIMEOUT_SECONDS``), the synchronous writes then raise ``StoreBusy``, and ``apply_async`` /
``allocate_tranche_id_async`` wait for the lock in short tries that yield to trio. Opening checks what the
daemon is about to trust: the file is writable, not corrupt (``PRAGMA quick_check``), posmon's own schema and
not newer; each failure is one ``StoreError`` line naming the file.

A ``postgresql://`` location opens the same store on PostgreSQL (``posmon.store.postgres.PgStore``: the same SQL,
the group commit in a worker thread, a server outage waited out); ``Store.fence`` is where a cluster's lease
check runs, inside every write transaction of either backend.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import trio
from sqlite_utils import Database

from posmon.domain.exitplan import plan_from_text
from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, Purpose, Side, WorkingType
from posmon.domain.pairs import Pair
from posmon.domain.protection import LocalState, OrderRecord
from posmon.domain.tranche import Risk, Tranche
from posmon.store.errors import StoreBusy, StoreError, StoreUnavailable
from posmon.store.history import History, query_history
from posmon.store.location import is_url
from posmon.store.pairs import (
    TrancheState,
    pair_of_tranche,
    read_entry_states,
    read_pairs,
    read_tranche_states,
    write_pairs,
)
from posmon.store.schema import SCHEMA_VERSION, SQLITE, Connection, migrate, schema_problems

if TYPE_CHECKING:
    from posmon.store.postgres import PgConn

log = logging.getLogger(__name__)

# How long one SQLite call may wait for another process's lock while holding the event loop.
BUSY_TIMEOUT_SECONDS = 0.1
# How long opening waits for a store another process holds locked before giving up (logged once).
OPEN_WAIT_SECONDS = 5.0
# Between two tries of an async write on a locked store; and how often a long wait is logged again.
_RETRY_MIN, _RETRY_MAX, _LOG_EVERY = 0.05, 1.0, 10.0

# Below this much free space the WAL (up to ~4 MB between checkpoints) cannot be trusted to grow.
MIN_FREE_BYTES = 4 << 20

_T = TypeVar("_T")

#: Called first in every write transaction with its connection (``Store.fence``); raising aborts the write.
Fence = Callable[[Connection], None]


def describe(path: str | Path, exc: sqlite3.Error, doing: str) -> StoreError:
    """One line saying what is wrong with the store file and what to do, by SQLite's error code."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return StoreBusy(
            f"store {path} is locked by another process (a write transaction is open; "
            f"could not {doing}): find and end that process, e.g. with fuser or lsof on the file"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return StoreError(
            f"store {path} is read-only ({text}); posmon must write it: make the file and its "
            "directory writable (and the filesystem mounted read-write)"
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StoreError(
            f"store {path}: the disk is full ({text}) while trying to {doing}; free space and start again"
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return StoreError(
            f"store {path} cannot be opened ({text}): check that its directory exists and is "
            "writable (posmon also creates the -wal and -shm files beside it)"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return StoreError(
            f"store {path} is corrupt or not an SQLite database ({text}); restore it from a backup or move it aside"
        )
    if name.startswith("SQLITE_IOERR"):
        return StoreError(f"store {path}: I/O error while trying to {doing} ({text}): a full or failing disk?")
    return StoreError(f"store {path}: cannot {doing}: {text}")


@dataclass(frozen=True, slots=True)
class Event:
    """One journal entry."""

    kind: str
    venue: str
    symbol: str
    side: str
    tranche_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry the operator asked for: its fills become tranche ``tranche_id`` protected at ``risk``."""

    client_id: str
    tranche_id: int
    venue: str
    symbol: str
    side: Side
    qty: Decimal
    risk: Risk


@dataclass(slots=True)
class Restored:
    """What one (symbol, side) actor holds at start-up, read for every key at once (``Store.restore``).

    The same rows its own reads (``open_tranches``, ``active_orders`` of its tranches, ``pending_entries``) give.
    """

    tranches: list[Tranche] = field(default_factory=list)  # open and closing, by id
    orders: list[OrderRecord] = field(default_factory=list)  # not DONE, of any of the key's tranches, by rowid
    entries: list[PendingEntry] = field(default_factory=list)
    stopped: bool = False  # the operator stopped monitoring the symbol


@dataclass(slots=True)
class Changes:
    """Everything one decision writes, committed atomically by ``Store.apply``."""

    tranches: list[Tranche] = field(default_factory=list)
    closed: list[tuple[int, str, float]] = field(default_factory=list)  # (tranche id, reason, time)
    orders: list[OrderRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # Fees the venue reported after their tranche was closed (its exit order's answer came before the stream's
    # trade): (tranche id, fee), added to the closed row.
    late_fees: list[tuple[int, Decimal]] = field(default_factory=list)
    # Operator entries that ended with this decision: (client id, final state), as ``Store.end_entry``.
    entries_ended: list[tuple[str, str]] = field(default_factory=list)
    # Operator entries decided with this decision (a pair's two entries, written with the pair), as ``add_entry``.
    entries_added: list[PendingEntry] = field(default_factory=list)
    # Hedge pairs as the pair coordinator decided them (``posmon.store.pairs``).
    pairs: list[Pair] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.tranches
            or self.closed
            or self.orders
            or self.events
            or self.late_fees
            or self.entries_ended
            or self.entries_added
            or self.pairs
        )


@dataclass(slots=True, eq=False)
class _Commit:
    """Decisions one actor hands the writer, and the outcome it waits for."""

    decisions: list[Changes]
    done: trio.Event = field(default_factory=trio.Event)
    error: Exception | None = None
    settled: bool = False  # the outcome is known (set by the thread that wrote it; ``done`` by trio's)

    def finish(self, error: Exception | None) -> None:
        """Record the outcome (from any thread); ``release`` wakes the caller on trio's thread."""
        self.error = error
        self.settled = True


def _release(group: list[_Commit]) -> None:
    for r in group:
        if r.settled:
            r.done.set()


def _drain(recv: trio.MemoryReceiveChannel[_Commit]) -> list[_Commit]:
    out = []
    while True:
        try:
            out.append(recv.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return out


def _check_location(path: Path) -> None:
    """Problems SQLite would report late or obscurely: a directory in the way, no room for the WAL."""
    if path.is_dir():
        raise StoreError(f"store {path} is a directory; daemon.store must name a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fs = os.statvfs(path.parent)
    except OSError as exc:
        raise StoreError(f"store {path}: cannot create or read its directory ({exc.strerror or exc})") from exc
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        raise StoreError(
            f"store {path}: the disk is full ({free // 1024} KiB free in {path.parent}; posmon needs "
            f"at least {MIN_FREE_BYTES >> 20} MiB for the store's log); free space and start again"
        )


def _prepare(db: Database, path: str | Path, *, memory: bool) -> None:
    """Settings, a write probe, an integrity check, migrations and a schema check: raises on the first problem."""
    conn = db.conn
    if not memory:
        db.enable_wal()
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # A write probe rolled back: a read-only file or filesystem, or another process's write lock, shows here,
    # before the daemon starts, not on the first decision.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    # The header can be intact while pages behind it are not; a few reported problems are enough to refuse.
    problems = [" ".join(str(r[0]).split()) for r in conn.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise StoreError(
            f"store {path} is corrupt (PRAGMA quick_check: {'; '.join(problems)}); restore it from a "
            "backup or move it aside"
        )
    migrate(conn, name=f"store {path}")
    if missing := schema_problems(conn):
        raise StoreError(
            f"store {path} is not a posmon store (schema version {SCHEMA_VERSION}, but "
            f"{'; '.join(missing)}); point daemon.store at posmon's own file"
        )


def _upsert(conn: sqlite3.Connection, table: str, pk: str, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != pk)
    conn.executemany(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT({pk}) DO UPDATE SET {updates}",
        [[r[c] for c in cols] for r in rows],
    )


def _dec(v: str | None) -> Decimal | None:
    return None if v is None else _decimal(v)


@functools.lru_cache(maxsize=1 << 16)
def _decimal(text: str) -> Decimal:
    """One shared (immutable) Decimal per distinct stored value: a tranche's qty, TP and SL reappear in its
    orders, and 0 everywhere, so loading 100,000 tranches keeps a fraction of the objects."""
    return Decimal(text)


class _Decimals(dict[str, Decimal]):
    """Stored numbers -> ``Decimal``, each distinct text converted once (a hit is a plain dict lookup)."""

    def __missing__(self, text: str) -> Decimal:
        d = self[text] = Decimal(text)
        return d


def _tranche_row(t: Tranche) -> dict[str, Any]:
    return {
        "id": t.id,
        "venue": t.venue,
        "symbol": t.symbol,
        "side": t.side.value,
        "idx": t.index,
        "entry": str(t.entry),
        "qty": str(t.qty),
        "tp": str(t.tp),
        "sl": str(t.sl),
        "opened_at": t.opened_at,
        "deadline": t.deadline,
        "seq": t.seq,
        "realized_pnl": str(t.realized_pnl),
        "status": "closing" if t.closing else "open",
        "close_reason": t.closing,
        "exit_qty": str(t.exit_qty),
        "exit_value": str(t.exit_value),
        "exit_price": None if (price := t.exit_price) is None else str(price),
        "fees": str(t.fees),
        "plan": t.plan.to_text(),
        "level": t.level,
        "best_mark": None if t.best_mark is None else str(t.best_mark),
    }


def _tranche(row: dict[str, Any]) -> Tranche:
    return Tranche(
        id=row["id"],
        venue=sys.intern(row["venue"]),
        symbol=sys.intern(row["symbol"]),
        side=_SIDES[row["side"]],
        index=row["idx"],
        entry=_decimal(row["entry"]),
        qty=_decimal(row["qty"]),
        tp=_decimal(row["tp"]),
        sl=_decimal(row["sl"]),
        opened_at=row["opened_at"],
        deadline=row["deadline"],
        seq=row["seq"],
        realized_pnl=_decimal(row["realized_pnl"]),
        closing=row["close_reason"] if row["status"] == "closing" else None,
        exit_qty=_decimal(row["exit_qty"]),
        exit_value=_decimal(row["exit_value"]),
        fees=_decimal(row["fees"]),
        plan=plan_from_text(row["plan"]),
        level=row["level"],
        best_mark=_dec(row["best_mark"]),
    )


def _order_row(venue: str, o: OrderRecord, now: float) -> dict[str, Any]:
    r = o.request
    return {
        "client_id": r.client_id,
        "tranche_id": o.tranche_id,
        "venue": venue,
        "symbol": r.symbol,
        "purpose": o.purpose.value,
        "side": r.side.value,
        "position_side": r.position_side,
        "type": r.type.value,
        "qty": str(r.qty),
        "price": None if r.price is None else str(r.price),
        "stop_price": None if r.stop_price is None else str(r.stop_price),
        "reduce_only": int(r.reduce_only),
        "working_type": r.working_type.value,
        "state": o.state.value,
        "filled_qty": str(o.filled_qty),
        "exchange_id": o.exchange_id,
        "final_status": None if o.final_status is None else o.final_status.value,
        "updated_at": now,
    }


def _by_value(enum: Any) -> dict[str, Any]:
    return {m.value: m for m in enum}


# Enum members by stored value: a dict lookup, several times cheaper than ``Enum(value)``, and loading 100,000
# tranches converts 1.4 million of them.
_SIDES: dict[str, Side] = _by_value(Side)
_ORDER_SIDES: dict[str, OrderSide] = _by_value(OrderSide)
_ORDER_TYPES: dict[str, OrderType] = _by_value(OrderType)
_WORKING_TYPES: dict[str, WorkingType] = _by_value(WorkingType)
_PURPOSES: dict[str, Purpose] = _by_value(Purpose)
_LOCAL_STATES: dict[str, LocalState] = _by_value(LocalState)
_STATUSES: dict[str, OrderStatus] = _by_value(OrderStatus)


def _order(row: dict[str, Any]) -> OrderRecord:
    req = OrderRequest(
        client_id=row["client_id"],
        symbol=sys.intern(row["symbol"]),
        side=_ORDER_SIDES[row["side"]],
        position_side=sys.intern(row["position_side"]),
        type=_ORDER_TYPES[row["type"]],
        qty=_decimal(row["qty"]),
        price=_dec(row["price"]),
        stop_price=_dec(row["stop_price"]),
        reduce_only=bool(row["reduce_only"]),
        working_type=_WORKING_TYPES[row["working_type"]],
    )
    final = row["final_status"]
    return OrderRecord(
        request=req,
        tranche_id=row["tranche_id"],
        purpose=_PURPOSES[row["purpose"]],
        state=_LOCAL_STATES[row["state"]],
        filled_qty=_decimal(row["filled_qty"]),
        exchange_id=row["exchange_id"] or "",
        final_status=None if final is None else _STATUSES[final],
    )


class Store:
    """The store of one daemon: SQLite (one file per account set; never shared by two live daemons), or
    PostgreSQL through the subclass ``posmon.store.postgres.PgStore`` (``Store.open`` picks it for a URL)."""

    def __init__(
        self,
        db: Database | PgConn,
        *,
        clock=time.time,
        path: str | Path = ":memory:",
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self._clock = clock
        self.path = str(path)
        self._busy_ms = round(busy_timeout * 1000)
        if isinstance(db, Database):
            db.conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        #: ``time.monotonic()`` when a write first found the store locked by another process; None while writable.
        self.busy_since: float | None = None
        self._busy_logged_at = 0.0
        self._writer: trio.MemorySendChannel[_Commit] | None = None  # set while ``run_writer`` runs
        self.commits = 0  # write transactions committed (what group commit saves shows here)
        #: The one place a cluster's lease check goes (issue 17): called first inside every write transaction of
        #: this store (decisions, tranche ids, entries, monitoring), on the connection that will commit it, so a
        #: check that raises rolls the write back and the caller sends nothing. None: no check (one instance).
        #: On PostgreSQL the group commit calls it in the writer's worker thread: keep it a plain SQL check
        #: (e.g. ``SELECT .. FROM leases WHERE account = ? AND token = ? FOR SHARE``), no trio calls.
        self.fence: Fence | None = None

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        clock=time.time,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        open_wait: float = OPEN_WAIT_SECONDS,
    ) -> Store:
        """Open (creating or migrating) the store, or raise one ``StoreError`` line naming the file.

        A store another process holds locked is retried for ``open_wait`` seconds (logged once), then
        ``StoreBusy``: the daemon stops with a message instead of hanging on its first write.
        """
        if cls is Store and is_url(str(path)):
            from posmon.store.postgres import PgStore

            return PgStore.open(str(path), clock=clock)
        memory = str(path) == ":memory:"
        if not memory:
            _check_location(Path(path))
        deadline = time.monotonic() + open_wait
        waiting = False
        while True:
            conn: sqlite3.Connection | None = None
            try:
                conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout)
                db = Database(conn)
                _prepare(db, path, memory=memory)
                return cls(db, clock=clock, path=path, busy_timeout=busy_timeout)
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                error = describe(path, exc, "open it")
                if isinstance(error, StoreBusy) and time.monotonic() < deadline:
                    if not waiting:
                        log.warning(
                            "store %s is locked by another process; waiting up to %.0f s for it", path, open_wait
                        )
                        waiting = True
                    time.sleep(_RETRY_MIN)  # nothing else runs yet: the daemon starts only on an open store
                    continue
                raise error from exc
            except BaseException:
                if conn is not None:
                    conn.close()
                raise

    def close(self) -> None:
        self.db.conn.close()

    # --- writes -------------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, conn: Any = None) -> Iterator[Any]:
        """BEGIN IMMEDIATE .. COMMIT, or ROLLBACK on any error: one decision is written whole or not at all.

        Writes inside go through plain ``execute``/``executemany``: sqlite-utils' bulk helpers commit on
        their own, which would split a decision. SQLite errors come out as one-line ``StoreError``s
        (``StoreBusy`` when another process holds the lock beyond the short busy timeout).
        """
        conn = self.db.conn if conn is None else conn
        errors = self._errors
        try:
            self._begin(conn)
        except errors as exc:
            raise self._failed(exc) from exc
        try:
            if self.fence is not None:
                self.fence(conn)
            yield conn
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            self._rollback(conn)
            if isinstance(exc, errors):
                raise self._failed(exc) from exc
            raise
        if self.busy_since is not None:
            log.warning("store %s is writable again after %.1f s", self.path, time.monotonic() - self.busy_since)
            self.busy_since = None

    dialect = SQLITE  # how the schema is spelled on this backend (``posmon.store.schema``)
    # The driver's error class, turned into one-line ``StoreError``s by ``_failed``.
    _errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    @staticmethod
    def _rollback(conn: Any) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _begin(self, conn: Any) -> None:
        """Take the write lock; once the store is known to be locked by another process, only try (no wait),
        so several actors retrying do not each hold the event loop for the busy timeout."""
        if self.busy_since is None:
            conn.execute("BEGIN IMMEDIATE")
            return
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _failed(self, exc: Exception) -> StoreError:
        assert isinstance(exc, sqlite3.Error)
        error = describe(self.path, exc, "write")
        if isinstance(error, StoreBusy):
            error.wait_writable = self.wait_writable
            now = time.monotonic()
            if self.busy_since is None:
                self.busy_since = now
            if now - self._busy_logged_at >= _LOG_EVERY:
                self._busy_logged_at = now
                log.warning("%s (locked for %.1f s)", error, now - self.busy_since)
        return error

    @property
    def busy_seconds(self) -> float:
        """How long writes have found the store locked by another process (0 while writable): for health."""
        return 0.0 if self.busy_since is None else time.monotonic() - self.busy_since

    async def _until_written(self, write: Callable[[], _T]) -> _T:
        """Run one synchronous write, retrying while another process holds the lock; trio runs in between."""
        delay = _RETRY_MIN
        while True:
            try:
                return write()
            except StoreBusy:
                await trio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _probe(self) -> None:
        with self._transaction():
            pass

    async def wait_writable(self) -> None:
        """Return once another process no longer holds the write lock, yielding to trio while it does."""
        await self._until_written(self._probe)

    def allocate_tranche_id(self) -> int:
        """A fresh tranche id, committed at once so no two decisions ever share one."""
        with self._transaction() as conn:
            (value,) = conn.execute("SELECT value FROM meta WHERE key = 'next_tranche_id'").fetchone()
            conn.execute("UPDATE meta SET value = ? WHERE key = 'next_tranche_id'", [str(int(value) + 1)])
        return int(value)

    async def allocate_tranche_id_async(self) -> int:
        """``allocate_tranche_id`` that waits (yielding to trio) while another process holds the store locked."""
        return await self._until_written(self.allocate_tranche_id)

    async def apply_async(self, changes: Changes) -> None:
        """``apply`` that waits (yielding to trio) while another process holds the store locked.

        The decision is still written before the caller goes on to send its orders; only the wait moves off
        the event loop. Other errors (disk full, read-only) raise at once, as from ``apply``.
        """
        await self._until_written(functools.partial(self.apply, changes))

    def apply(self, changes: Changes) -> None:
        """Write one decision atomically (``StoreBusy`` after ``BUSY_TIMEOUT_SECONDS`` on a locked store)."""
        self.apply_many([changes])

    def apply_many(self, decisions: Sequence[Changes]) -> None:
        """Write several decisions, in order, in one transaction: all of them or none.

        One commit costs about as much as the writes it holds when they are few; a frame that triggers eight
        exits pays for one instead of eight before the first of them may act.
        """
        self._apply_many(self.db.conn, decisions)

    def _apply_many(
        self,
        conn: Any,
        decisions: Sequence[Changes],
        commit_mark: Callable[[Any], None] | None = None,
        now: float | None = None,
    ) -> None:
        """``apply_many`` on ``conn``; ``commit_mark`` writes the transaction's marker (``PgStore``'s in-doubt
        check); ``now``: the time to record, read on trio's thread when this runs in another."""
        decisions = [c for c in decisions if c]
        if not decisions:
            return
        now = self._clock() if now is None else now
        with self._transaction(conn) as conn:
            for changes in decisions:
                self._write(conn, changes, now)
            if commit_mark is not None:
                commit_mark(conn)

    def _write(self, conn: Any, changes: Changes, now: float) -> None:
        if changes.tranches:
            _upsert(conn, "tranches", "id", [_tranche_row(t) for t in changes.tranches])
        if changes.closed:
            conn.executemany(
                "UPDATE tranches SET status = 'closed', close_reason = ?, closed_at = ? WHERE id = ?",
                [(reason, at, tid) for tid, reason, at in changes.closed],
            )
        for tid, fee in changes.late_fees:
            row = conn.execute("SELECT fees FROM tranches WHERE id = ?", [tid]).fetchone()
            if row is not None:  # Decimal sums in Python: SQLite's arithmetic on text is binary floating point
                conn.execute("UPDATE tranches SET fees = ? WHERE id = ?", [str(Decimal(row[0]) + fee), tid])
        if changes.orders:
            venue = {t.id: t.venue for t in changes.tranches}
            rows = [
                _order_row(venue.get(o.tranche_id) or self._venue_of(conn, o.tranche_id), o, now)
                for o in changes.orders
            ]
            _upsert(conn, "orders", "client_id", rows)
        if changes.entries_added:
            self._insert_entries(conn, changes.entries_added, now)
        if changes.pairs:
            write_pairs(conn, changes.pairs, now)
        if changes.entries_ended:
            conn.executemany(
                "UPDATE entries SET state = ? WHERE client_id = ?", [(st, cid) for cid, st in changes.entries_ended]
            )
        if changes.events:
            conn.executemany(
                "INSERT INTO events (ts, venue, symbol, side, tranche_id, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (now, e.venue, e.symbol, e.side, e.tranche_id, e.kind, orjson.dumps(e.data, default=str).decode())
                    for e in changes.events
                ],
            )

    # --- group commit ---------------------------------------------------------------------------------------

    async def run_writer(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The store's one writer: decisions handed to ``commit`` in the same scheduling round share a transaction.

        Each actor still awaits its own decision's commit before it sends what the decision causes (decide,
        persist, act); the actors only stop paying one commit each. Requests left when the writer stops are
        written inline, so no waiting actor hangs and no decision handed over is dropped.
        """
        send, recv = trio.open_memory_channel[_Commit](math.inf)
        self._writer = send
        group: list[_Commit] = []
        task_status.started()
        try:
            while True:
                group = [await recv.receive()]
                # Actors woken by the same frame hand theirs over in this round: let them all in first.
                await trio.lowlevel.checkpoint()
                group += _drain(recv)
                await self._write_group(group)
                group = []
        finally:
            if self._writer is send:
                self._writer = None
            for c in [*group, *_drain(recv)]:
                if not c.settled:
                    try:
                        self._commit_group([c])
                    except StoreUnavailable as exc:  # stopping while the server is gone: the actor stops too
                        c.finish(exc)
                _release([c])
            send.close()
            recv.close()

    async def commit(self, decisions: Sequence[Changes]) -> None:
        """Write ``decisions`` in one transaction, shared with other actors' when the writer runs; raises as
        ``apply`` does (``StoreBusy`` on a locked store) once this caller's own decisions failed."""
        writer = self._writer
        if writer is None:
            self.apply_many(decisions)
            return
        request = _Commit(list(decisions))
        try:
            writer.send_nowait(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.apply_many(decisions)
            return
        await request.done.wait()
        if request.error is not None:
            raise request.error

    async def _write_group(self, group: list[_Commit]) -> None:
        """Commit one group: inline for SQLite (a commit without fsync costs less than a thread hop)."""
        self._commit_group(group)
        _release(group)

    def _commit_group(
        self,
        group: list[_Commit],
        conn: Any = None,
        mark: Callable[[int], Callable[[Any], None] | None] | None = None,
        now: float | None = None,
    ) -> None:
        """One transaction for the whole group; if that fails for another reason than a lock, each on its own
        (one faulty decision fails its own actor, as ``apply`` would, never the others or the writer).

        ``conn``: the connection to write on (the loop's by default); ``mark(i)``: the marker writer of the
        group's transaction (0) and of each request's own (i >= 1), for ``PgStore``'s retry after a lost
        acknowledgement. ``StoreUnavailable`` (the server is gone) propagates to that retry: nothing finishes.
        """

        def write(decisions: Sequence[Changes], index: int) -> None:
            if conn is None:
                self.apply_many(decisions)  # the loop's connection, through the public seam
            else:
                self._apply_many(conn, decisions, mark and mark(index), now)

        live = [r for r in group if not r.settled]
        try:
            write([c for r in live for c in r.decisions], 0)
        except StoreUnavailable:
            raise
        except StoreBusy as exc:
            for r in live:
                r.finish(exc)
            return
        except Exception:
            for i, r in enumerate(group, 1):
                if r.settled:  # finished in an attempt before the connection was lost
                    continue
                try:
                    write(r.decisions, i)
                except StoreUnavailable:
                    raise
                except Exception as one:
                    r.finish(one)
                else:
                    r.finish(None)
            return
        for r in live:
            r.finish(None)

    def _venue_of(self, conn: Any, tranche_id: int) -> str:
        row = conn.execute("SELECT venue FROM tranches WHERE id = ?", [tranche_id]).fetchone()
        if row is None:
            raise StoreError(f"order for unknown tranche {tranche_id}")
        return row[0]

    # --- reads --------------------------------------------------------------------------------------------

    def open_tranches(
        self, venue: str | None = None, symbol: str | None = None, side: Side | None = None
    ) -> list[Tranche]:
        # IN, not !=, so SQLite searches the (status, venue, symbol, side) index instead of scanning every row.
        where, args = ["status IN ('open', 'closing')"], []
        for col, val in (("venue", venue), ("symbol", symbol), ("side", side and side.value)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        rows = self._dicts(f"SELECT * FROM tranches WHERE {' AND '.join(where)} ORDER BY id", args)
        return [_tranche(r) for r in rows]

    def active_orders(self, tranche_ids: Sequence[int]) -> list[OrderRecord]:
        if not tranche_ids:
            return []
        marks = ",".join("?" * len(tranche_ids))
        rows = self._dicts(
            f"SELECT * FROM orders WHERE state != 'DONE' AND tranche_id IN ({marks}) ORDER BY rowid", list(tranche_ids)
        )
        return [_order(r) for r in rows]

    def tranches_with_active_orders(self, venue: str, symbol: str, side: Side) -> list[int]:
        """Closed tranches of one key whose orders are not all done yet (e.g. merged away mid-replacement).

        Starts from the tranches index so that loading thousands of actors does not scan every order each time.
        """
        rows = self.db.execute(
            "SELECT DISTINCT t.id FROM tranches t JOIN orders o ON o.tranche_id = t.id "
            "WHERE t.status = 'closed' AND t.venue = ? AND t.symbol = ? AND t.side = ? AND o.state != 'DONE'",
            [venue, symbol, side.value],
        ).fetchall()
        return [r[0] for r in rows]

    def restore(self, venue: str) -> dict[tuple[str, Side], Restored]:
        """Every key an actor must be restored for (``position_keys``), with its state, in three queries.

        Per-actor reads were one indexed query each, 2,000 of them at start-up; reading everything at once and
        grouping it here is a fraction of that. Keys come sorted as ``position_keys`` sorts them.
        """
        steps = self._restore(venue)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    async def restore_async(self, venue: str) -> dict[tuple[str, Side], Restored]:
        """``restore``, yielding to other tasks every few thousand rows: at 100,000 tranches it takes seconds,
        during which the operator API (``/health``) and the start-up's progress line must still answer."""
        steps = self._restore(venue)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            await trio.lowlevel.checkpoint()

    def _restore(
        self, venue: str, every: int = 5_000, db: Any = None
    ) -> Generator[None, None, dict[tuple[str, Side], Restored]]:
        """``restore``'s work, pausing (``yield``) every ``every`` rows; nothing is written meanwhile at start-up.

        The lean path of 300,000 rows at 100,000 tranches: named columns read as tuples (no dict per row), each
        distinct stored number made a ``Decimal`` once (a tranche's qty, TP and SL reappear in its orders, 0
        everywhere; the cache lives for this read only), objects built from positional arguments.
        """
        db = self.db if db is None else db  # PostgreSQL reads on a connection of the worker thread's own
        out: dict[tuple[str, Side], Restored] = {}
        dec = _Decimals()
        sides, intern = _SIDES, sys.intern
        venue = intern(venue)
        cur = db.execute(
            "SELECT id, symbol, side, idx, entry, qty, tp, sl, opened_at, deadline, seq, realized_pnl, status, "
            "close_reason, exit_qty, exit_value, fees, plan, level, best_mark FROM tranches "
            "WHERE status IN ('open', 'closing') "
            "AND venue = ? ORDER BY id",
            [venue],
        )
        for i, row in enumerate(cur, 1):
            (
                tid,
                sym,
                sd,
                idx,
                entry,
                qty,
                tp,
                sl,
                opened,
                deadline,
                seq,
                pnl,
                status,
                why,
                xq,
                xv,
                fees,
                plan,
                lv,
                best,
            ) = row
            side = sides[sd]
            t = Tranche(
                tid,
                venue,
                intern(sym),
                side,
                idx,
                dec[entry],
                dec[qty],
                dec[tp],
                dec[sl],
                opened,
                deadline,
                seq,
                dec[pnl],
                why if status == "closing" else None,
                dec[xq],
                dec[xv],
                dec[fees],
                plan_from_text(plan),
                lv,
                None if best is None else dec[best],
            )
            key = (t.symbol, side)
            (out.get(key) or out.setdefault(key, Restored())).tranches.append(t)
            if i % every == 0:
                yield
        # Active orders of any tranche of the venue, closed ones too (e.g. merged away mid-replacement): the
        # tranche's key owns them. ``state IN`` lets SQLite use the state index rather than scan every order.
        cur = db.execute(
            "SELECT o.client_id, o.tranche_id, o.symbol, o.purpose, o.side, o.position_side, o.type, o.qty, "
            "o.price, o.stop_price, o.reduce_only, o.working_type, o.state, o.filled_qty, o.exchange_id, "
            "o.final_status, t.symbol, t.side FROM orders o JOIN tranches t ON t.id = o.tranche_id "
            "WHERE o.state IN ('PENDING', 'LIVE', 'CANCELING') AND t.venue = ? ORDER BY o.rowid",
            [venue],
        )
        osides, types, working, purposes, states, statuses = (
            _ORDER_SIDES,
            _ORDER_TYPES,
            _WORKING_TYPES,
            _PURPOSES,
            _LOCAL_STATES,
            _STATUSES,
        )
        keys: dict[tuple[str, str], Restored] = {}  # by the tranche's stored (symbol, side): no Side per row
        for i, row in enumerate(cur, 1):
            cid, tid, sym, purpose, sd, pos, typ, qty, price, stop, ro, wt, state, filled, xid, final, ks, kd = row
            req = OrderRequest(
                cid,
                intern(sym),
                osides[sd],
                intern(pos),
                types[typ],
                dec[qty],
                None if price is None else dec[price],
                None if stop is None else dec[stop],
                bool(ro),
                working[wt],
            )
            rec = OrderRecord(
                req,
                tid,
                purposes[purpose],
                states[state],
                dec[filled],
                xid or "",
                None if final is None else statuses[final],
            )
            into = keys.get((ks, kd))
            if into is None:
                key = (intern(ks), sides[kd])
                into = keys[ks, kd] = out.get(key) or out.setdefault(key, Restored())
            into.orders.append(rec)
            if i % every == 0:
                yield
        for key, entries in self._pending_entries(venue, db=db).items():
            # A key with only an entry still out (killed before it reached the venue) gets its actor too: it
            # looks the entry up and ends it (a pair waits on it).
            out.setdefault(key, Restored()).entries = entries
        stopped = {r[0] for r in db.execute("SELECT symbol FROM unmonitored WHERE venue = ?", [venue])}
        for (symbol, _side), r in out.items():
            r.stopped = symbol in stopped
        return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1].value)))

    def order(self, client_id: str) -> OrderRecord | None:
        rows = self._dicts("SELECT * FROM orders WHERE client_id = ?", [client_id])
        return _order(rows[0]) if rows else None

    def position_keys(self, venue: str) -> list[tuple[str, Side]]:
        """Every (symbol, side) an actor must be restored for: open tranches, closed tranches whose orders are not
        all done (a sibling cancel persisted as CANCELING on a side that went flat must still go out), and
        operator entries not yet ended.

        Both halves start from the (status, venue, ...) index: closed tranches are joined to their orders only
        through ``orders(tranche_id)``, never by scanning the whole order table.
        """
        rows = self.db.execute(
            "SELECT symbol, side FROM tranches WHERE status IN ('open', 'closing') AND venue = ? "
            "UNION "
            "SELECT t.symbol, t.side FROM tranches t WHERE t.status = 'closed' AND t.venue = ? AND EXISTS "
            "(SELECT 1 FROM orders o WHERE o.tranche_id = t.id AND o.state != 'DONE') "
            "UNION "
            "SELECT symbol, side FROM entries WHERE state = 'PENDING' AND venue = ? "
            "ORDER BY 1, 2",
            [venue, venue, venue],
        ).fetchall()
        return [(s, Side(side)) for s, side in rows]

    def tranche_side(self, tranche_id: int) -> Side | None:
        row = self.db.execute("SELECT side FROM tranches WHERE id = ?", [tranche_id]).fetchone()
        return None if row is None else Side(row[0])

    def closed_tranches(self, venue: str | None = None) -> list[dict[str, Any]]:
        where, args = "status = 'closed'", []
        if venue is not None:
            where += " AND venue = ?"
            args.append(venue)
        return self._dicts(f"SELECT * FROM tranches WHERE {where} ORDER BY closed_at", args)

    # --- operator entries and unmonitored symbols ---------------------------------------------------------

    def add_entry(self, entry: PendingEntry) -> None:
        with self._transaction() as conn:
            self._insert_entries(conn, [entry], self._clock())

    @staticmethod
    def _insert_entries(conn: Any, entries: Sequence[PendingEntry], now: float) -> None:
        """Insert entries; one already written is kept as it is (a pair's entries are written with the pair
        before they are sent, and the position actor that sends one writes it again)."""
        conn.executemany(
            "INSERT INTO entries (client_id, tranche_id, venue, symbol, side, qty, tp_pct, sl_pct, "
            "max_hold_seconds, plan, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?) "
            "ON CONFLICT(client_id) DO NOTHING",
            [
                (
                    entry.client_id,
                    entry.tranche_id,
                    entry.venue,
                    entry.symbol,
                    entry.side.value,
                    str(entry.qty),
                    str(entry.risk.tp_pct),
                    str(entry.risk.sl_pct),
                    entry.risk.max_hold_seconds,
                    entry.risk.plan.to_text(),
                    now,
                )
                for entry in entries
            ],
        )

    # --- hedge pairs (``posmon.store.pairs``; written through ``Changes.pairs``) ----------------------------

    def allocate_pair_id(self) -> int:
        """A fresh pair id, committed at once (as ``allocate_tranche_id``)."""
        with self._transaction() as conn:
            (value,) = conn.execute("SELECT value FROM meta WHERE key = 'next_pair_id'").fetchone()
            conn.execute("UPDATE meta SET value = ? WHERE key = 'next_pair_id'", [str(int(value) + 1)])
        return int(value)

    async def allocate_pair_id_async(self) -> int:
        return await self._until_written(self.allocate_pair_id)

    def open_pairs(self) -> list[Pair]:
        """Every pair not closed, by id, with its legs' current tranches: the pair coordinator's start-up read."""
        return read_pairs(self.db)

    def pair(self, pair_id: int) -> Pair | None:
        found = read_pairs(self.db, active_only=False, pair_id=pair_id)
        return found[0] if found else None

    def pair_of_tranche(self, tranche_id: int) -> int | None:
        """The pair whose leg holds ``tranche_id`` now (None: not a leg)."""
        return pair_of_tranche(self.db, tranche_id)

    def tranche_states(self, tranche_ids: Sequence[int]) -> dict[int, TrancheState]:
        """Status, close reason and quantities of these tranches (a leg's exit while the coordinator was down)."""
        return read_tranche_states(self.db, tranche_ids)

    def entry_states(self, tranche_ids: Sequence[int]) -> dict[int, str]:
        """The state of each tranche's operator entry (``PENDING`` until it ended), for an opening pair's legs."""
        return read_entry_states(self.db, tranche_ids)

    def end_entry(self, client_id: str, state: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE entries SET state = ? WHERE client_id = ?", [state, client_id])

    def pending_entries(self, venue: str, symbol: str, side: Side) -> list[PendingEntry]:
        return self._pending_entries(venue, symbol, side).get((symbol, side), [])

    def _pending_entries(
        self, venue: str, symbol: str | None = None, side: Side | None = None, db: Any = None
    ) -> dict[tuple[str, Side], list[PendingEntry]]:
        """Operator entries not yet ended, per key (one key, or every key of the venue)."""
        db = self.db if db is None else db
        where, args = "state = 'PENDING' AND venue = ?", [venue]
        if symbol is not None and side is not None:
            where += " AND symbol = ? AND side = ?"
            args += [symbol, side.value]
        rows = db.execute(
            "SELECT client_id, tranche_id, symbol, side, qty, tp_pct, sl_pct, max_hold_seconds, plan FROM entries "
            f"WHERE {where} ORDER BY rowid",
            args,
        ).fetchall()
        out: dict[tuple[str, Side], list[PendingEntry]] = {}
        for cid, tid, sym, sd, qty, tp, sl, hold, plan in rows:
            key = (sym, Side(sd))
            out.setdefault(key, []).append(
                PendingEntry(
                    cid,
                    tid,
                    venue,
                    sym,
                    key[1],
                    Decimal(qty),
                    Risk(tp_pct=Decimal(tp), sl_pct=Decimal(sl), max_hold_seconds=hold, plan=plan_from_text(plan)),
                )
            )
        return out

    def set_monitored(self, venue: str, symbol: str, monitored: bool) -> None:
        with self._transaction() as conn:
            if monitored:
                conn.execute("DELETE FROM unmonitored WHERE venue = ? AND symbol = ?", [venue, symbol])
            else:
                conn.execute(
                    "INSERT INTO unmonitored (venue, symbol, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [venue, symbol, self._clock()],
                )

    def unmonitored(self, venue: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT symbol FROM unmonitored WHERE venue = ?", [venue])}

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        where = "WHERE kind = ? " if kind else ""
        rows = self._dicts(f"SELECT * FROM events {where}ORDER BY id", [kind] if kind else [])
        return [{**r, "data": orjson.loads(r["data"])} for r in rows]

    def _dicts(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows as dicts by column name (the driver's own ``rowid`` column left out: not part of the schema)."""
        cur = self.db.execute(sql, args)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        if "rowid" in names:
            for r in rows:
                del r["rowid"]
        return rows

    def history(
        self,
        *,
        since: float | None = None,
        symbol: str | None = None,
        venue: str | None = None,
        limit: int | None = None,
    ) -> History:
        """Closed tranches as a trade history (``posmon.store.history.query_history``)."""
        return query_history(self.db.conn, since=since, symbol=symbol, venue=venue, limit=limit)
