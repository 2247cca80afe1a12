"""The one interface every venue adapter implements.

The actors only ever talk to a ``Venue``: the order gateway makes the REST
calls, the price router and the user stream read the frame streams and hand
each frame to the venue's parser. An adapter is a thin protocol translator;
policy (retries, pacing, idempotency) lives in the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from posmon.domain.exits import CloseSlippage
from posmon.domain.orders import OrderRequest, OrderState, PositionState, SymbolRules
from posmon.exchange.errors import VenueError
from posmon.exchange.events import MarkPrice, UserEvent


class StreamClosed(Exception):
    """The venue closed a frame stream (or the connection dropped); reconnect."""


class FrameStream(Protocol):
    """A connected websocket-like stream of raw frames."""

    async def receive(self) -> bytes:
        """The next frame; raises ``StreamClosed`` when the stream ends."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A venue's published trading limits and the weight of each call the gateway makes."""

    weight_per_minute: int
    orders_per_minute: int
    place_weight: int = 1
    batch_place_weight: int = 5
    cancel_weight: int = 1
    batch_cancel_weight: int = 1
    query_weight: int = 1
    open_orders_weight: int = 40  # without a symbol
    open_orders_symbol_weight: int = 1
    positions_weight: int = 5
    max_batch_place: int = 5
    max_batch_cancel: int = 10
    mark_prices_weight: int = 1  # one REST read of every mark (the price router's fallback while its stream is stale)
    balance_weight: int = 5  # one read of the account's balance (the risk limits' max_risk_per_position_pct)


@dataclass(frozen=True, slots=True)
class VenueTraits:
    """What a venue can be trusted with, declared by its adapter so callers never guess."""

    emulated_exits: bool = False  # conditional orders misfire there: posmon holds TP, SL and the hold time itself
    one_way_only: bool = False  # the venue has no hedge mode (Lighter): positions are one-way whatever is configured
    close_slippage: CloseSlippage = field(default_factory=CloseSlippage)  # bounds of a close at market
    request_timeout_seconds: float = 10.0  # one REST call's budget (start-up allows three per try)
    auth: str | None = None  # which credential scheme is configured, to name the right settings when rejected

    def hedge_mode(self, configured: bool) -> bool:
        """The position mode positions are kept in: the configured one, unless the venue has only one-way."""
        return configured and not self.one_way_only


PlaceResult = OrderState | VenueError


class Venue(Protocol):
    """A trading account on one exchange."""

    name: str
    limits: RateLimits
    traits: VenueTraits

    async def load_rules(self) -> dict[str, SymbolRules]: ...

    def symbol_for(self, given: str) -> str:
        """The listed symbol ``given`` names (a symbol, or a venue's own market id); ``KeyError`` when none."""
        ...

    async def position_mode(self) -> bool:
        """True when the account is in hedge mode (compared with ``daemon.hedge_mode`` before trading)."""
        ...

    async def sync_time(self) -> None:
        """Re-measure the venue clock offset used for signed timestamps (after a ``ClockSkew``)."""
        ...

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set ``symbol``'s leverage on the account (one venue call), before an entry that relies on it.

        Raises ``Rejected`` when the venue refuses it (out of its range for the symbol, or not allowed with the
        position held), ``OutcomeUnknown`` when no answer says whether it took effect, ``RateLimited``.
        """
        ...

    async def place_orders(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """One REST call (batch when more than one); a result per order, in order.

        Raises ``OutcomeUnknown`` / ``RateLimited`` for the call as a whole.
        """
        ...

    async def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> list[PlaceResult]:
        """One REST call; per order either its final state or ``OrderNotFound``."""
        ...

    async def query_order(self, symbol: str, client_id: str) -> OrderState:
        """Raises ``OrderNotFound`` when the venue never saw that client order id."""
        ...

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]: ...

    async def positions(self, symbol: str | None = None) -> list[PositionState]:
        """Every non-zero position of the account (of one symbol when given)."""
        ...

    async def mark_prices(self) -> list[MarkPrice]:
        """REST snapshot of mark prices, used while the price stream is down."""
        ...

    async def balance(self) -> Decimal:
        """The account's balance in the quote currency (one REST call), which ``max_risk_per_position_pct`` is a
        share of: Aster's USDT wallet balance, Lighter's collateral. Raises like any read (``OutcomeUnknown``,
        ``RateLimited``, ...)."""
        ...

    def connect_prices(self, symbols: Sequence[str]) -> AbstractAsyncContextManager[FrameStream]: ...

    def connect_user_stream(self) -> AbstractAsyncContextManager[FrameStream]: ...

    def parse_price_frame(self, frame: bytes) -> list[MarkPrice]:
        """Raises ``MalformedMessage``; an empty list for frames that carry no price (acks, pings)."""
        ...

    def parse_user_frame(self, frame: bytes) -> list[UserEvent]:
        """Raises ``MalformedMessage``; an empty list for frames with nothing for posmon."""
        ...
