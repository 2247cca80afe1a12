"""Schema and migrations: each migration is applied once, in order, inside one transaction.

``PRAGMA user_version`` holds the schema version so a newer posmon can upgrade
an older store in place and an older posmon refuses a store it does not know.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from decimal import Decimal

import orjson
from sqlite_utils import Database

from posmon.domain.tranche import exit_vwap
from posmon.store.errors import StoreError


def _v1(db: Database) -> None:
    db.table("tranches").create(
        {
            "id": int,
            "venue": str,
            "symbol": str,
            "side": str,
            "idx": int,
            "entry": str,
            "qty": str,
            "tp": str,
            "sl": str,
            "opened_at": float,
            "deadline": float,
            "seq": int,
            "realized_pnl": str,
            "status": str,
            "close_reason": str,
            "closed_at": float,
        },
        pk="id",
        not_null={"venue", "symbol", "side", "entry", "qty", "tp", "sl", "status"},
    )
    db.table("tranches").create_index(["status", "venue", "symbol", "side"])
    db.table("orders").create(
        {
            "client_id": str,
            "tranche_id": int,
            "venue": str,
            "symbol": str,
            "purpose": str,
            "side": str,
            "position_side": str,
            "type": str,
            "qty": str,
            "price": str,
            "stop_price": str,
            "reduce_only": int,
            "working_type": str,
            "state": str,
            "filled_qty": str,
            "exchange_id": str,
            "final_status": str,
            "updated_at": float,
        },
        pk="client_id",
        foreign_keys=[("tranche_id", "tranches", "id")],
    )
    db.table("orders").create_index(["tranche_id"])
    db.table("orders").create_index(["state"])
    db.table("events").create(
        {"id": int, "ts": float, "venue": str, "symbol": str, "side": str, "tranche_id": int, "kind": str, "data": str},
        pk="id",
    )
    db.table("events").create_index(["kind"])
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("meta").insert({"key": "next_tranche_id", "value": "1"})


def _v2(db: Database) -> None:
    # Operator-opened entries: the risk their tranche gets once the entry fills (decided before it is sent).
    db.table("entries").create(
        {
            "client_id": str,
            "tranche_id": int,
            "venue": str,
            "symbol": str,
            "side": str,
            "qty": str,
            "tp_pct": str,
            "sl_pct": str,
            "max_hold_seconds": int,
            "state": str,
            "created_at": float,
        },
        pk="client_id",
    )
    db.table("entries").create_index(["state", "venue", "symbol", "side"])
    # Symbols the operator stopped monitoring: never re-adopted until resumed.
    db.table("unmonitored").create({"venue": str, "symbol": str, "since": float}, pk=("venue", "symbol"))


def _v3(db: Database) -> None:
    """History: a closed tranche keeps what its exits did (closed quantity, their volume-weighted price, fees).

    Plain ALTER TABLE on the connection (sqlite-utils' helpers commit on their own, splitting the migration).
    Tranches closed before this version get their exit quantity and price back from the journal's ``fill``
    events (posmon's own exit fills); fees were never recorded then, so theirs stay 0.
    """
    conn = db.conn
    for column in ("exit_qty", "exit_value", "fees"):
        conn.execute(f"ALTER TABLE tranches ADD COLUMN {column} TEXT NOT NULL DEFAULT '0'")
    conn.execute("ALTER TABLE tranches ADD COLUMN exit_price TEXT")
    conn.execute("CREATE INDEX idx_tranches_status_closed_at ON tranches (status, closed_at)")
    exits: dict[int, tuple[Decimal, Decimal]] = {}
    rows = conn.execute(
        "SELECT e.tranche_id, e.data FROM events e JOIN tranches t ON t.id = e.tranche_id "
        "WHERE e.kind = 'fill' AND t.status = 'closed' ORDER BY e.id"
    )
    for tranche_id, data in rows:
        fill = orjson.loads(data)
        try:
            qty, price = Decimal(str(fill["qty"])), Decimal(str(fill["price"]))
        except (KeyError, ArithmeticError):
            continue  # a journal entry this version cannot read: that tranche's exit stays unknown
        q, v = exits.get(tranche_id, (Decimal(0), Decimal(0)))
        exits[tranche_id] = (q + qty, v + qty * price)
    conn.executemany(
        "UPDATE tranches SET exit_qty = ?, exit_value = ?, exit_price = ? WHERE id = ?",
        [(str(q), str(v), _text(exit_vwap(q, v)), tid) for tid, (q, v) in exits.items()],
    )


def _v4(db: Database) -> None:
    """Exit plans (``domain.exitplan``): a tranche's plan (JSON, NULL: one TP, one SL), its ladder level and best
    mark; an operator entry's plan, for the tranche its fill makes."""
    conn = db.conn
    conn.execute("ALTER TABLE tranches ADD COLUMN plan TEXT")
    conn.execute("ALTER TABLE tranches ADD COLUMN level INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE tranches ADD COLUMN best_mark TEXT")
    conn.execute("ALTER TABLE entries ADD COLUMN plan TEXT")


def _text(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


MIGRATIONS: tuple[Callable[[Database], None], ...] = (_v1, _v2, _v3, _v4)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: Database, *, name: str = "store") -> None:
    """Bring the store to ``SCHEMA_VERSION``; refuses a newer store and a foreign database at version 0."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{name}: schema version {current} is newer than this posmon supports ({SCHEMA_VERSION}); "
            "run the posmon that wrote it, or upgrade posmon"
        )
    if current == 0:
        # Version 0 is an empty file: a database that already holds tables belongs to another application, and
        # posmon must not write its own tables into it.
        foreign = _table_columns(db.conn)
        if foreign:
            raise StoreError(
                f"{name}: not a posmon store (no posmon schema version, but it holds tables "
                f"{', '.join(sorted(foreign))}); point daemon.store at posmon's own file"
            )
    for version in range(current, SCHEMA_VERSION):
        # DDL is transactional in SQLite: a migration that fails half-way leaves the previous version intact.
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](db)
            db.conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            if db.conn.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")


def _table_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    names = [
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    return {n: {r[1] for r in conn.execute(f"PRAGMA table_info({_quoted(n)})")} for n in names}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.cache
def expected_columns() -> dict[str, frozenset[str]]:
    """The tables and columns the migrations create (built once, in memory), to check an opened store against."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(Database(conn))
        return {t: frozenset(cols) for t, cols in _table_columns(conn).items()}
    finally:
        conn.close()


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """What a store at ``SCHEMA_VERSION`` lacks: a file of another application can carry the same user_version."""
    have = _table_columns(conn)
    expected = expected_columns()
    problems = []
    if absent := sorted(set(expected) - set(have)):
        problems.append(f"it lacks table(s) {', '.join(absent)}")
    for table, cols in sorted(expected.items()):
        if table in have and (missing := sorted(cols - have[table])):
            problems.append(f"table {table} lacks column(s) {', '.join(missing)}")
    return problems
