"""Closed tranches as a trade history: the one place that reads them back for ``posmon history``,
``posmon report`` and ``GET /api/history``.

A closed tranche row keeps what its exits did (store schema v3): the quantity closed at a known price, their
volume-weighted price, the realized PnL and the fees the venue reported. A tranche merged into another or
forgotten by ``stop`` closed without an exit: its ``qty`` is 0 and ``exit_price`` None.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posmon.domain.orders import Side
from posmon.store.schema import Connection

_UNIX_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
MAX_LIMIT = 100_000  # more rows than any screen or CSV reader wants; a typo beyond it is refused


@dataclass(frozen=True, slots=True)
class ClosedTranche:
    id: int
    venue: str
    symbol: str
    side: Side
    index: int
    entry: Decimal
    exit_price: Decimal | None  # volume-weighted over the exit fills; None when nothing was closed at a price
    qty: Decimal  # the quantity its exits closed
    exit_reason: str
    realized_pnl: Decimal  # before fees
    fees: Decimal
    opened_at: float
    closed_at: float

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def hold_seconds(self) -> float:
        return max(0.0, self.closed_at - self.opened_at)

    def as_dict(self) -> dict[str, Any]:
        """The API's and the CSV's fields, in their order (Decimals stay Decimals for the serializer)."""
        return {
            "id": self.id,
            "venue": self.venue,
            "symbol": self.symbol,
            "side": self.side.value,
            "index": self.index,
            "entry": self.entry,
            "exit_price": self.exit_price,
            "qty": self.qty,
            "exit_reason": self.exit_reason,
            "realized_pnl": self.realized_pnl,
            "fees": self.fees,
            "net_pnl": self.net_pnl,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "hold_seconds": self.hold_seconds,
        }


# The columns of the CSV and the keys of each API row, in order.
FIELDS = (
    "id",
    "venue",
    "symbol",
    "side",
    "index",
    "entry",
    "exit_price",
    "qty",
    "exit_reason",
    "realized_pnl",
    "fees",
    "net_pnl",
    "opened_at",
    "closed_at",
    "hold_seconds",
)


@dataclass(frozen=True, slots=True)
class History:
    """Closed tranches by ``closed_at`` ascending, and their totals."""

    tranches: list[ClosedTranche]

    @property
    def realized_pnl(self) -> Decimal:
        return sum((t.realized_pnl for t in self.tranches), Decimal(0))

    @property
    def fees(self) -> Decimal:
        return sum((t.fees for t in self.tranches), Decimal(0))

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    def as_dict(self) -> dict[str, Any]:
        """``GET /api/history``'s answer."""
        return {
            "tranches": [t.as_dict() for t in self.tranches],
            "realized_pnl": self.realized_pnl,
            "fees": self.fees,
            "net_pnl": self.net_pnl,
        }


def parse_since(text: str) -> float:
    """Unix seconds (``1700000000``) or an ISO-8601 date or date-time (``2026-12-06``, ``2026-12-06T19:30``,
    with an offset or ``Z``; none means UTC) -> unix seconds. ``ValueError`` says what is expected."""
    text = text.strip()
    if _UNIX_RE.fullmatch(text):
        return float(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is neither unix seconds (e.g. 1700000000) nor an ISO-8601 date or date-time "
            "(e.g. 2026-12-06 or 2026-12-06T19:30:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def parse_limit(text: str) -> int:
    """A row count from 1 to ``MAX_LIMIT``."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"{text[:40]!r}: expected an integer from 1 to {MAX_LIMIT}")
    return int(text)


def query_history(
    conn: Connection,
    *,
    since: float | None = None,
    symbol: str | None = None,
    venue: str | None = None,
    limit: int | None = None,
) -> History:
    """Closed tranches closed at or after ``since`` (unix seconds), of ``symbol``/``venue`` when given;
    ``limit`` keeps the most recent N. Sorted by ``closed_at`` ascending (ties by id)."""
    where: list[str] = ["status = 'closed'"]
    args: list[Any] = []
    if since is not None:
        where.append("closed_at >= ?")
        args.append(since)
    for col, val in (("symbol", symbol), ("venue", venue)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = (
        "SELECT id, venue, symbol, side, idx, entry, exit_price, exit_qty, close_reason, realized_pnl, fees, "
        f"opened_at, closed_at FROM tranches WHERE {' AND '.join(where)} ORDER BY closed_at DESC, id DESC"
    )
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    rows = conn.execute(sql, args).fetchall()
    return History([_closed(r) for r in reversed(rows)])


def _closed(row: tuple[Any, ...]) -> ClosedTranche:
    tid, venue, symbol, side, idx, entry, exit_price, qty, reason, pnl, fees, opened_at, closed_at = row
    return ClosedTranche(
        id=tid,
        venue=venue,
        symbol=symbol,
        side=Side(side),
        index=idx,
        entry=Decimal(entry),
        exit_price=None if exit_price is None else Decimal(exit_price),
        qty=Decimal(qty),
        exit_reason=reason or "",
        realized_pnl=Decimal(pnl or 0),
        fees=Decimal(fees),
        opened_at=float(opened_at),
        closed_at=float(closed_at if closed_at is not None else opened_at),
    )
