"""What a venue's streams tell the daemon, already parsed into typed messages.

Each adapter turns its wire frames into these; the actors never see a venue's
JSON. A frame that cannot be parsed raises ``MalformedMessage`` so the reader
can count it and skip it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from posmon.domain.orders import OrderSide, OrderStatus, OrderType, PositionState
from posmon.domain.tranche import ExitReason

FORCED_KINDS = (ExitReason.LIQUIDATION, ExitReason.ADL)  # the values of ``OrderUpdate.forced``


class MalformedMessage(ValueError):
    """A stream frame that is not what the venue's protocol says; counted and skipped."""


@dataclass(frozen=True, slots=True)
class MarkPrice:
    symbol: str
    price: Decimal
    time: float  # venue event time, epoch seconds
    # The funding rate in force for the next funding time (a fraction: 0.0001 = 0.01%) and that time (epoch
    # seconds), where the venue's price frame carries them (Aster's ``r``/``T``, Lighter's ``current_funding_rate``/
    # ``funding_timestamp``); None otherwise. Defaulted so every existing constructor keeps working.
    funding_rate: Decimal | None = None
    next_funding_time: float | None = None


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order changed on the exchange (Binance ORDER_TRADE_UPDATE semantics).

    ``exec_type`` is NEW / TRADE / CANCELED / EXPIRED / CALCULATED; on TRADE,
    ``last_qty`` at ``last_price`` is the fill this update reports.
    """

    symbol: str
    client_id: str
    order_id: str
    side: OrderSide
    position_side: str
    type: OrderType
    status: OrderStatus
    exec_type: str
    qty: Decimal
    filled_qty: Decimal
    last_qty: Decimal
    last_price: Decimal
    avg_price: Decimal
    reduce_only: bool
    realized_pnl: Decimal
    time: float
    # The venue closed (part of) the position by force: "LIQUIDATION" or "ADL" (auto-deleveraging); None for an
    # ordinary order. Last and defaulted so every existing constructor keeps working.
    forced: str | None = None
    # The fee the venue charged for this update's fill (Aster's ``n``) in ``commission_asset`` (``N``); 0 and ""
    # when the venue's stream does not report one (Lighter's order updates, the in-process simulator).
    commission: Decimal = Decimal(0)
    commission_asset: str = ""

    @property
    def is_fill(self) -> bool:
        # CALCULATED is a liquidation or ADL fill: it moves the position like any trade.
        return self.exec_type in ("TRADE", "CALCULATED") and self.last_qty > 0


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """The account's position in a symbol/side after a change (ACCOUNT_UPDATE)."""

    position: PositionState
    time: float


UserEvent = OrderUpdate | PositionUpdate
