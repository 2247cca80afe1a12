"""Order vocabulary shared by the domain, the actors and every venue adapter.

Plain frozen data only: an adapter translates these to its wire format, the
engine and the actors reason about them. Quantities and prices are Decimal,
already rounded to the symbol's step and tick by whoever built the request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


class Side(enum.StrEnum):
    """A position's direction (hedge-mode positionSide)."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def opening_order_side(self) -> OrderSide:
        return OrderSide.BUY if self is Side.LONG else OrderSide.SELL

    @property
    def closing_order_side(self) -> OrderSide:
        return OrderSide.SELL if self is Side.LONG else OrderSide.BUY

    @property
    def sign(self) -> int:
        """+1 for LONG, -1 for SHORT: PnL = sign * (price - entry)."""
        return 1 if self is Side.LONG else -1


class OrderSide(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"


class WorkingType(enum.StrEnum):
    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


class Purpose(enum.StrEnum):
    """Why posmon placed an order; one letter of it goes into the client order id."""

    ENTRY = "E"
    TP = "T"
    SL = "S"
    CLOSE = "C"


class OrderStatus(enum.StrEnum):
    """Exchange-side order status (Binance vocabulary)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order as posmon wants it on the exchange."""

    client_id: str
    symbol: str
    side: OrderSide
    position_side: str  # "LONG" / "SHORT" in hedge mode, "BOTH" in one-way mode
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    working_type: WorkingType = WorkingType.MARK_PRICE


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the exchange says about one order (answer to a query, an open-orders list, a placement)."""

    client_id: str
    order_id: str
    symbol: str
    side: OrderSide
    position_side: str
    type: OrderType
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class PositionState:
    """One exchange position; qty is unsigned, side says which way."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """A symbol's trading filters, as the venue publishes them."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    min_price: Decimal = Decimal(0)  # the venue's price filter (0: none published)
    max_price: Decimal = Decimal(0)
    # What the symbol is, as the venue's market list says ("" where it says nothing): the base asset traded, the
    # quote it is priced in and the asset it settles (margins) in; ``posmon.domain.instruments`` names it from them.
    base_asset: str = ""
    quote_asset: str = ""
    settle_asset: str = ""
