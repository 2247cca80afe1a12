"""``SimVenue``: the ``Venue`` protocol on top of a ``SimExchange``.

The daemon runs against it exactly as against a real adapter: every REST-like
call yields to trio (optionally with latency), streams deliver wire bytes, and
the parsers are the same decoders a real Binance-shaped adapter would need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

import trio

from posmon.domain.exits import CloseSlippage
from posmon.domain.orders import OrderRequest, OrderState, PositionState, SymbolRules
from posmon.exchange.aster import codec
from posmon.exchange.errors import Rejected
from posmon.exchange.events import MarkPrice, UserEvent
from posmon.exchange.venue import FrameStream, PlaceResult, RateLimits, StreamClosed, VenueTraits
from posmon.sim.exchange import SimExchange
from posmon.sim.validation import BAD_BATCH_SIZE

DEFAULT_LIMITS = RateLimits(weight_per_minute=2400, orders_per_minute=1200)


class ChannelFrameStream:
    """A ``FrameStream`` over a memory channel: the channel ending is the connection closing."""

    def __init__(self, channel: trio.MemoryReceiveChannel[bytes]) -> None:
        self._channel = channel

    async def receive(self) -> bytes:
        try:
            return await self._channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise StreamClosed("simulated stream closed") from exc


class SimVenue:
    """A ``Venue`` backed by an in-process ``SimExchange``."""

    def __init__(
        self,
        exchange: SimExchange,
        *,
        limits: RateLimits | None = None,
        name: str = "sim",
        latency: float = 0.0,
        emulated_exits: bool = False,
        close_slippage: tuple[Decimal, Decimal, Decimal] | None = None,
    ) -> None:
        """``emulated_exits``: behave like Lighter (posmon holds TP/SL itself, closes with bounded market
        orders; the exchange should then be built with ``bounded_market=True``)."""
        self.exchange = exchange
        self.traits = VenueTraits(
            emulated_exits=emulated_exits,
            close_slippage=CloseSlippage(*close_slippage) if close_slippage else CloseSlippage(),
        )
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.name = name
        self.latency = latency

    async def _io(self) -> None:
        """Behave like a network round trip: always a checkpoint, a sleep when latency is set."""
        if self.latency > 0:
            await trio.sleep(self.latency)
        else:
            await trio.lowlevel.checkpoint()

    async def sync_time(self) -> None:
        """The simulator shares our clock: nothing to re-sync."""
        await self._io()

    async def load_rules(self) -> dict[str, SymbolRules]:
        await self._io()
        return self.exchange.load_rules()

    def symbol_for(self, given: str) -> str:
        """The simulator names markets by their symbols: ``given`` itself when listed."""
        if given not in self.exchange.engine.rules:  # not load_rules(): a lookup is no venue call to count or fault
            raise KeyError(given)
        return given

    async def position_mode(self) -> bool:
        await self._io()
        return self.exchange.hedge_mode

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Like Aster's ``POST /fapi/v1/leverage``: 1 to the symbol's maximum, else ``Rejected`` (-4028)."""
        await self._io()
        self.exchange.set_leverage(symbol, leverage)

    async def place_orders(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """Raises ``Rejected`` (-4082) for a batch bigger than the venue's limit, like the real endpoint."""
        await self._io()
        if len(orders) > self.limits.max_batch_place:
            raise Rejected(
                f"Invalid number of batch place orders: {len(orders)} > {self.limits.max_batch_place}.",
                code=BAD_BATCH_SIZE,
                request="place_orders",
            )
        return self.exchange.place_orders(orders)

    async def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> list[PlaceResult]:
        await self._io()
        if len(client_ids) > self.limits.max_batch_cancel:
            raise Rejected(
                f"Invalid number of batch cancel orders: {len(client_ids)} > {self.limits.max_batch_cancel}.",
                code=BAD_BATCH_SIZE,
                request="cancel_orders",
            )
        return self.exchange.cancel_orders(symbol, client_ids)

    async def query_order(self, symbol: str, client_id: str) -> OrderState:
        await self._io()
        return self.exchange.query_order(symbol, client_id)

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        await self._io()
        return self.exchange.open_orders(symbol)

    async def positions(self, symbol: str | None = None) -> list[PositionState]:
        await self._io()
        return [p for p in self.exchange.positions() if symbol is None or p.symbol == symbol]

    async def mark_prices(self) -> list[MarkPrice]:
        await self._io()
        return self.exchange.mark_prices()

    async def balance(self) -> Decimal:
        """Like Aster's ``GET /fapi/v3/balance``: the wallet balance."""
        await self._io()
        return self.exchange.balance()

    @asynccontextmanager
    async def connect_prices(self, symbols: Sequence[str]) -> AsyncIterator[FrameStream]:
        """All symbols' marks, like ``!markPrice@arr@1s``; the caller keeps the ones it wants."""
        await self._io()
        channel = self.exchange.open_price_stream()
        try:
            yield ChannelFrameStream(channel)
        finally:
            channel.close()

    @asynccontextmanager
    async def connect_user_stream(self) -> AsyncIterator[FrameStream]:
        await self._io()
        channel = self.exchange.open_user_stream()
        try:
            yield ChannelFrameStream(channel)
        finally:
            channel.close()

    def parse_price_frame(self, frame: bytes) -> list[MarkPrice]:
        return codec.parse_price_frame(frame)

    def parse_user_frame(self, frame: bytes) -> list[UserEvent]:
        return codec.parse_user_frame(frame)
