"""The store on PostgreSQL (``daemon.store = "postgresql://user@host:port/db"``): the SQLite store's interface,
schema and migrations (``posmon.store.schema``, rendered for PostgreSQL) on a server several instances can share.

What differs from SQLite, and why:

- Two connections, each used by one thread only. The loop's (``db``) serves the synchronous calls actors make
  inline (reads, a tranche id, a write outside a turn): a round trip to a local server, like SQLite's inline
  commit. The writer's serves ``Store.commit``'s group commit in a worker thread (``trio.to_thread``), so the
  trio loop never waits on the network for the transaction that most decisions share.
- A lost connection (the server restarted, the network dropped) is not an error for a commit: the writer
  reconnects and retries with a bounded backoff until the server is back, and the actors wait for their
  commits meanwhile (decide, persist, act: nothing is sent before its decision is written). A commit whose
  acknowledgement was lost may have landed: each of the writer's transactions also writes a marker (a ``meta``
  row per store session), checked before the retry, so a retried group is never written twice (its tranche and
  order writes are keyed upserts anyway; the journal's events and added fees would not be). The outage is
  logged when it starts, every ``_LOG_EVERY`` seconds and when it ends, and shows as ``busy_seconds`` (the
  daemon's ``store_locked_seconds`` gauge).
- A synchronous call that meets a lost connection reconnects once; if the server is still gone it raises
  ``StoreUnavailable`` (a ``StoreBusy``): the actor's supervisor waits (``wait_writable``) for the server and
  restarts the actor from the store, as for a locked SQLite file.
- A tranche id is taken with one ``UPDATE .. RETURNING``, safe when instances share the database.

The lease check of a cluster (issue 17) goes in ``Store.fence``: it runs first inside every write transaction,
on both connections.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from posmon.domain.orders import Side
from posmon.store.errors import StoreError, StoreUnavailable
from posmon.store.location import redacted
from posmon.store.schema import POSTGRES, SCHEMA_VERSION, migrate, schema_problems
from posmon.store.store import _LOG_EVERY, Restored, Store, _Commit, _release

try:
    import psycopg
    from psycopg import conninfo
    from psycopg.pq import TransactionStatus
except ImportError:  # pragma: no cover - psycopg is a dependency; a broken install still gets one line
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# How long connecting may take before the server counts as unreachable (and a synchronous call gives up).
CONNECT_TIMEOUT_SECONDS = 3
# Between two tries of a commit while the server is unreachable: doubling from the first to the last.
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 0.1, 2.0


@functools.lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """The store's SQL (``?`` placeholders, as sqlite3 takes them) in psycopg's spelling (``%s``)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PgConn:
    """One psycopg connection in autocommit mode (transactions are explicit ``BEGIN`` .. ``COMMIT``, as in the
    SQLite store) that takes the store's SQL as written and reconnects between transactions.

    Used by one thread at a time. ``db.conn`` is itself, as ``sqlite_utils.Database.conn`` is for SQLite.
    """

    def __init__(
        self,
        url: str,
        name: str,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        idle_transaction_timeout: float | None = None,
    ) -> None:
        self.url, self.name, self._timeout = url, name, connect_timeout
        self.raw: Any = None
        #: The server ends this session when it sits inside a transaction this long (seconds; None: never), so a
        #: paused process (SIGSTOP, a frozen VM) cannot hold a row lock past it: in a cluster the owner's fence
        #: holds the lease row ``FOR SHARE`` in every write, and a takeover's ``FOR UPDATE`` would wait on a
        #: paused owner forever. Applied on every (re)connection, and before the next statement when changed.
        self.idle_transaction_timeout = idle_transaction_timeout
        self._applied_idle_timeout: float | None = None
        #: Given to every ``StoreUnavailable`` raised here (``PgStore.wait_writable``): the supervisor awaits it.
        self.wait_writable: Callable[[], Awaitable[None]] | None = None
        #: Called with each ``StoreUnavailable`` before it is raised (``PgStore`` notes the outage's start).
        self.on_unavailable: Callable[[StoreUnavailable], None] | None = None
        self._connect()

    def _unavailable(self, what: str, exc: BaseException) -> StoreUnavailable:
        error = StoreUnavailable(f"{self.name}: {what} ({_first_line(exc)})", wait_writable=self.wait_writable)
        if self.on_unavailable is not None:
            self.on_unavailable(error)
        return error

    @property
    def conn(self) -> PgConn:
        return self

    def _connect(self) -> None:
        if self.raw is not None:
            self.raw.close()
        try:
            self.raw = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, round(self._timeout)))
        except psycopg.Error as exc:
            self.raw = None
            raise self._unavailable("cannot connect", exc) from exc
        self._applied_idle_timeout = None  # a new session: the bound is set again before its first statement

    def _apply_idle_timeout(self) -> None:
        seconds = self.idle_transaction_timeout
        millis = 0 if seconds is None else max(1, round(seconds * 1000))
        try:
            self.raw.execute(f"SET idle_in_transaction_session_timeout = {millis}")
        except psycopg.OperationalError:
            return  # the statement that follows meets the lost connection and handles it
        self._applied_idle_timeout = seconds

    def _lost(self) -> bool:
        return self.raw is None or self.raw.closed or self.raw.broken

    @property
    def in_transaction(self) -> bool:
        if self._lost():
            return False
        return self.raw.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    def execute(self, sql: str, parameters: Any = None) -> Any:
        return self._run(lambda raw: raw.execute(_pg_sql(sql), parameters) if parameters else raw.execute(sql))

    def executemany(self, sql: str, rows: Any) -> Any:
        def many(raw: Any) -> Any:
            cur = raw.cursor()
            cur.executemany(_pg_sql(sql), list(rows))
            return cur

        return self._run(many)

    def _run(self, call: Any) -> Any:
        """Outside a transaction a lost connection is replaced and the statement tried once more (a read, or
        ``BEGIN``: the store writes only inside transactions, so nothing was written); inside one, the
        transaction is gone: ``StoreUnavailable``."""
        fresh = False
        if self._lost():
            self._connect()
            fresh = True
        was_idle = not self.in_transaction
        if was_idle and self._applied_idle_timeout != self.idle_transaction_timeout:
            self._apply_idle_timeout()
        try:
            return call(self.raw)
        except psycopg.OperationalError as exc:
            if not self._lost():
                # An operational error the driver did not mark as a broken connection (a server restart in the
                # middle of ``executemany``'s pipeline reads "cannot exit pipeline mode while busy"): the
                # connection's state is unknown, so it is dropped and treated as lost; a write in doubt is then
                # settled by its commit marker like any lost connection.
                assert self.raw is not None
                self.raw.close()
            if was_idle and not fresh:
                self._connect()
                try:
                    return call(self.raw)
                except psycopg.OperationalError as again:
                    if not self._lost():
                        self.raw.close()
                    raise self._unavailable("connection lost", again) from again
            raise self._unavailable("connection lost", exc) from exc

    def table_names(self) -> list[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()


def _check_url(url: str) -> None:
    """A malformed URL is one line naming the key, before any connection is tried."""
    if psycopg is None:
        raise StoreError(f"store {redacted(url)}: PostgreSQL needs the psycopg package (pip install 'psycopg[binary]')")
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(
            f"daemon.store: {redacted(url)!r} is not a valid PostgreSQL URL ({_first_line(exc)})"
        ) from None


class PgStore(Store):
    """``Store`` on a PostgreSQL database (see the module's docstring for what differs from SQLite)."""

    dialect = POSTGRES
    _errors = (psycopg.Error,) if psycopg is not None else ()

    def __init__(self, db: PgConn, writer: PgConn, *, clock: Any = time.time, url: str, threaded: bool = True) -> None:
        super().__init__(db, clock=clock, path=redacted(url))
        self._rconn = db  # ``self.db``, typed as the base class's
        self._url = url
        self._wconn = writer
        db.wait_writable = writer.wait_writable = self.wait_writable
        db.on_unavailable = writer.on_unavailable = self._unreachable
        #: False runs the group commit on the trio thread: for tests that step a virtual clock (a worker
        #: thread is invisible to ``wait_all_tasks_blocked`` and to MockClock's autojump).
        self.threaded = threaded
        self._session = uuid.uuid4().hex[:16]  # this store's commit marker key in ``meta``
        self._doubt = False  # the writer lost its connection during a transaction: check its marker first

    @classmethod
    def open(
        cls,
        path: Any,
        *,
        clock: Any = time.time,
        threaded: bool = True,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        **_: Any,
    ) -> PgStore:
        """Connect, migrate and check the database, or raise one ``StoreError`` line naming it."""
        url = str(path)
        _check_url(url)
        name = f"store {redacted(url)}"
        try:
            db = PgConn(url, name, connect_timeout)
        except StoreUnavailable as exc:
            raise StoreError(f"{exc}: is PostgreSQL running there, and does daemon.store name it?") from None
        try:
            migrate(db, name=name, dialect=POSTGRES)
            if missing := schema_problems(db, POSTGRES):
                raise StoreError(
                    f"{name} is not a posmon store (schema version {SCHEMA_VERSION}, but "
                    f"{'; '.join(missing)}); point daemon.store at posmon's own database"
                )
            writer = PgConn(url, name, connect_timeout)
        except psycopg.Error as exc:
            db.close()
            raise StoreError(f"{name}: cannot open it: {_first_line(exc)}") from None
        except BaseException:
            db.close()
            raise
        return cls(db, writer, clock=clock, url=url, threaded=threaded)

    def close(self) -> None:
        try:
            if not self._wconn._lost():
                self._wconn.execute("DELETE FROM meta WHERE key = ?", [self._marker_key])
        except (StoreError, psycopg.Error):
            pass  # a marker left behind is one small row, never read by another session
        self._wconn.close()
        self.db.close()

    def bound_idle_transactions(self, seconds: float) -> None:
        """Have the server end either connection's session when it sits inside a transaction ``seconds`` long:
        a cluster member paused mid-write must not hold the lease row's lock past its lease (``PgConn``)."""
        self._rconn.idle_transaction_timeout = self._wconn.idle_transaction_timeout = seconds

    # --- writes ------------------------------------------------------------------------------------------

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _failed(self, exc: Exception) -> StoreError:
        return StoreError(f"{self.path}: cannot write: {_first_line(exc)}")

    def allocate_tranche_id(self) -> int:
        """A fresh tranche id in one statement: two instances on one database never get the same."""
        with self._transaction() as conn:
            (value,) = conn.execute(
                "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) "
                "WHERE key = 'next_tranche_id' RETURNING value"
            ).fetchone()
        return int(value) - 1

    async def wait_writable(self) -> None:
        """Return once the server accepts a connection again, probing from a worker thread with a backoff."""
        delay = RETRY_MIN_SECONDS
        while True:
            try:
                await trio.to_thread.run_sync(self._probe_server)
                return
            except StoreUnavailable:
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _unreachable(self, error: StoreUnavailable) -> None:
        """The outage starts (either connection, any thread): ``busy_seconds`` counts it from now, and the first
        line says what waits; the next successful write transaction ends it (``Store._transaction``)."""
        if self.busy_since is None:
            self.busy_since = time.monotonic()
            self._busy_logged_at = 0.0

    def _probe_server(self) -> None:
        PgConn(self._url, self.path, CONNECT_TIMEOUT_SECONDS).close()

    # --- reads off the trio thread ------------------------------------------------------------------------

    async def restore_async(self, venue: str) -> dict[tuple[str, Side], Restored]:
        """``restore`` in a worker thread on a connection of its own: psycopg fetches a result whole, so at
        100,000 tranches the start-up read would hold the event loop (``/health``, the progress line) for it."""
        return await trio.to_thread.run_sync(self._restore_on_own_connection, venue)

    def _restore_on_own_connection(self, venue: str) -> dict[tuple[str, Side], Restored]:
        conn = PgConn(self._url, self.path)
        try:
            steps = self._restore(venue, db=conn)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    return done.value
        finally:
            conn.close()

    # --- group commit: off the trio thread, retried through outages -----------------------------------

    @property
    def _marker_key(self) -> str:
        return f"commit/{self._session}"

    async def _write_group(self, group: list[_Commit]) -> None:
        token = uuid.uuid4().hex[:16]
        now = self._clock()  # on trio's thread: the clock may be trio's
        delay = RETRY_MIN_SECONDS
        while True:
            try:
                if self.threaded:
                    await trio.to_thread.run_sync(self._attempt, group, token, now)
                else:
                    self._attempt(group, token, now)
            except StoreUnavailable as exc:
                _release(group)  # requests settled before the connection was lost (each in its own transaction)
                mono = time.monotonic()
                if self.busy_since is None:
                    self.busy_since = mono
                if mono - self._busy_logged_at >= _LOG_EVERY:
                    self._busy_logged_at = mono
                    log.warning(
                        "%s (unreachable for %.1f s); %d commit(s) wait and are retried until it is back, "
                        "nothing they decide is sent meanwhile",
                        exc,
                        mono - self.busy_since,
                        sum(not r.settled for r in group),
                    )
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            # The first write that lands ends the outage (``Store._transaction`` logs "writable again").
            _release(group)
            return

    def _attempt(self, group: list[_Commit], token: str, now: float) -> None:
        """One try at writing ``group`` on the writer's connection (in its thread)."""
        conn = self._wconn
        if self._doubt:
            # The last try lost its connection, maybe after its COMMIT landed: its marker says which did.
            row = conn.execute("SELECT value FROM meta WHERE key = ?", [self._marker_key]).fetchone()
            self._doubt = False
            landed = None if row is None else row[0]
            if landed == f"{token}/0":
                for r in group:
                    if not r.settled:
                        r.finish(None)
                return
            if landed is not None and landed.startswith(f"{token}/"):
                group[int(landed.rsplit("/", 1)[1]) - 1].finish(None)
        try:
            self._commit_group(group, conn, mark=functools.partial(self._marker, token), now=now)
        except StoreUnavailable:
            self._doubt = True
            raise

    def _marker(self, token: str, index: int) -> Any:
        def write(conn: Any) -> None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [self._marker_key, f"{token}/{index}"],
            )

        return write
