"""What an operator can ask of a running daemon: status, open, close, stop monitoring.

The HTTP API and (through it) the CLI call these; they never reach into actors
themselves. Each request that changes something is handed to the position
actor that owns the (symbol, side) as a message, so the actor stays the only
writer of its tranches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from posmon.domain.orders import Side


class ControlError(Exception):
    """A request the daemon refuses; ``field`` names the offending input, ``status`` the HTTP status to answer."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Open a position at market and protect it: SL ``sl_pct`` from the fill, TP ``reward/risk`` times that."""

    symbol: str
    side: Side
    size_usd: Decimal
    leverage: int
    sl_pct: Decimal
    rr_ratio: tuple[Decimal, Decimal]  # (risk, reward)

    @property
    def tp_pct(self) -> Decimal:
        risk, reward = self.rr_ratio
        return self.sl_pct * reward / risk


@dataclass(frozen=True, slots=True)
class OpenResult:
    symbol: str
    side: Side
    tranche_id: int
    client_id: str
    qty: Decimal
    entry_price: Decimal | None  # None while the entry is not yet filled
    tp: Decimal | None
    sl: Decimal | None
    status: str  # "FILLED", "PENDING"


@dataclass(frozen=True, slots=True)
class TrancheView:
    id: int
    venue: str
    symbol: str
    side: Side
    index: int
    entry: Decimal
    qty: Decimal
    tp: Decimal
    sl: Decimal
    opened_at: float
    max_hold_seconds: int
    timeout_at: float | None
    remaining_seconds: float | None
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    closing: str | None
    exits: str  # "exchange" (resting TP/SL orders) or "emulated" (watched by posmon)


@dataclass(frozen=True, slots=True)
class StreamView:
    name: str  # "price" or "user"
    up: bool
    last_frame_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class StatusReport:
    running: bool
    venue: str
    started_at: float
    streams: list[StreamView]
    tranches: list[TrancheView]
    unmonitored: list[str] = field(default_factory=list)  # symbols the operator stopped monitoring
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloseResult:
    symbol: str
    side: Side
    tranche_ids: list[int]  # tranches whose close was started


@dataclass(frozen=True, slots=True)
class StopResult:
    symbol: str
    tranche_ids: list[int]  # tranches no longer monitored (their posmon orders are cancelled; positions stay open)


class Control(Protocol):
    """The daemon's operator interface (``Daemon.control``); the HTTP API is a thin layer over it."""

    async def status(self) -> StatusReport: ...

    async def open_position(self, request: OpenRequest) -> OpenResult:
        """Places the entry; waits (bounded) for its fill and answers with the tranche and its exits.

        Raises ``ControlError`` for an unknown symbol, a size below the venue's minimum, etc.
        """
        ...

    async def close(self, symbol: str, side: Side | None = None, tranche_id: int | None = None) -> list[CloseResult]:
        """Start closing one tranche, one side, or every tranche of ``symbol`` now (at market / bounded price)."""
        ...

    async def stop_monitoring(self, symbol: str) -> StopResult:
        """Forget ``symbol`` (a symbol, or a Lighter market id) without closing it; it is not re-adopted."""
        ...

    async def resume_monitoring(self, symbol: str) -> None:
        """Undo ``stop_monitoring``: the position is adopted again at the next reconcile."""
        ...
