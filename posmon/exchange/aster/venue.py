"""``AsterVenue``: the ``Venue`` protocol over Aster's real REST API and websockets.

A thin translator: ``AsterRest`` makes the calls, ``codec`` reads the JSON, ``stream`` owns the websockets.
Policy (retries, pacing, resolving unknown outcomes) stays in the gateway; the venue only makes sure every
answer arrives as a typed result or a typed error, in order, one REST call per ``Venue`` call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal

import httpx

from posmon.config import ConfigError
from posmon.domain.orders import OrderRequest, OrderState, PositionState, SymbolRules
from posmon.exchange.aster import codec
from posmon.exchange.aster.rest import AsterRest, UsageGauge
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.stream import Connector, open_mark_price_stream, open_user_data_stream
from posmon.exchange.errors import OrderNotFound, Rejected
from posmon.exchange.events import MarkPrice, UserEvent
from posmon.exchange.venue import FrameStream, PlaceResult, RateLimits, VenueTraits

__all__ = ["BAD_BATCH_SIZE", "AsterVenue"]

log = logging.getLogger(__name__)

BAD_BATCH_SIZE = -4082


class AsterVenue:
    """A trading account on Aster; open it with ``async with AsterVenue.open(settings) as venue``."""

    name = "aster"

    def __init__(self, settings: AsterSettings, rest: AsterRest, *, connect: Connector | None = None) -> None:
        self.settings = settings
        self.traits = VenueTraits(request_timeout_seconds=settings.request_timeout_seconds, auth=settings.auth)
        self.rest = rest
        self.limits: RateLimits = codec.DEFAULT_LIMITS  # replaced by the venue's own on load_rules()
        self.rules: dict[str, SymbolRules] = {}
        self._connect = connect

    def __repr__(self) -> str:
        return f"AsterVenue({self.settings!r})"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: AsterSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        connect: Connector | None = None,
        sign_in_thread: bool = True,
    ) -> AsyncIterator[AsterVenue]:
        """Measure the clock offset and load rules and limits, then yield; the HTTP client closes on exit.

        ``transport`` and ``connect`` replace the network in tests.
        """
        if not settings.ws_url:
            raise ConfigError(
                "aster.ws_url: invalid value ''; the embedded simulator must fill in its websocket "
                "URL before the venue opens (expected a ws:// or wss:// base URL)"
            )
        async with AsterRest.open(settings, transport=transport, clock=clock, sign_in_thread=sign_in_thread) as rest:
            venue = cls(settings, rest, connect=connect)
            await venue.sync_time()
            await venue.load_rules()
            yield venue

    @property
    def usage(self) -> UsageGauge:
        """Used weight / order counts as the venue last reported them (for metrics)."""
        return self.rest.usage

    async def sync_time(self) -> None:
        await self.rest.sync_time()

    def symbol_for(self, given: str) -> str:
        """Aster names markets by their symbols: ``given`` itself when listed."""
        if given not in self.rules:
            raise KeyError(given)
        return given

    async def load_rules(self) -> dict[str, SymbolRules]:
        """Rules of the configured symbols (all listed ones when none are configured); limits from rateLimits."""
        info = await self.rest.exchange_info()
        if not info.limits_published:
            log.warning(
                "aster: exchangeInfo publishes no usable rateLimits; pacing at the documented %d weight / "
                "%d orders per minute",
                info.limits.weight_per_minute,
                info.limits.orders_per_minute,
            )
        self.limits = info.limits
        for symbol, why in info.skipped.items():
            log.warning("aster: %s has no usable trading rules and is left out: %s", symbol, why)
        rules = info.rules
        if self.settings.symbols:
            missing = [s for s in self.settings.symbols if s not in rules]
            if missing:
                log.error(
                    "aster: configured symbols %s are not listed (or have no usable rules); not watched",
                    ", ".join(missing),
                )
            rules = {s: rules[s] for s in self.settings.symbols if s in rules}
        self.rules = rules
        return dict(rules)

    async def place_orders(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """One ``POST order`` for a single order, one ``POST batchOrders`` for 2..5; refusals come back in place."""
        if not orders:
            return []
        if len(orders) > self.limits.max_batch_place:
            raise Rejected(
                f"Invalid number of batch place orders: {len(orders)} > {self.limits.max_batch_place}.",
                code=BAD_BATCH_SIZE,
                request="place_orders",
            )
        if len(orders) == 1:
            try:
                return [await self.rest.new_order(orders[0])]
            except Rejected as exc:
                return [exc]
        return list(await self.rest.batch_orders(orders))

    async def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> list[PlaceResult]:
        """One ``DELETE order`` for one id, one ``DELETE batchOrders`` for 2..10; unknown ids as ``OrderNotFound``."""
        if not client_ids:
            return []
        if len(client_ids) > self.limits.max_batch_cancel:
            raise Rejected(
                f"Invalid number of batch cancel orders: {len(client_ids)} > {self.limits.max_batch_cancel}.",
                code=BAD_BATCH_SIZE,
                request="cancel_orders",
            )
        if len(client_ids) == 1:
            try:
                return [await self.rest.cancel_order(symbol, client_ids[0])]
            except OrderNotFound as exc:
                return [exc]
        return list(await self.rest.cancel_orders(symbol, client_ids))

    async def query_order(self, symbol: str, client_id: str) -> OrderState:
        return await self.rest.query_order(symbol, client_id)

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        return await self.rest.open_orders(symbol)

    async def positions(self, symbol: str | None = None) -> list[PositionState]:
        return await self.rest.position_risk(symbol)

    async def mark_prices(self) -> list[MarkPrice]:
        marks = await self.rest.premium_index()
        if self.settings.symbols:
            wanted = set(self.settings.symbols)
            marks = [m for m in marks if m.symbol in wanted]
        return marks

    async def balance(self) -> Decimal:
        """The USDT wallet balance: ``GET /fapi/v2/balance`` (v3: ``/fapi/v3/balance``)."""
        return await self.rest.balance()

    async def position_mode(self) -> bool:
        """True when the account is in hedge mode (compare with ``daemon.hedge_mode`` before trading)."""
        return await self.rest.position_mode()

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """``POST /fapi/v1/leverage`` (v3: ``/fapi/v3/leverage``); a refusal (-4028 out of range) is ``Rejected``."""
        if symbol not in self.rules:
            raise Rejected(f"{symbol} is not a symbol posmon trades on aster", request="set_leverage")
        await self.rest.change_leverage(symbol, leverage)

    async def set_position_mode(self, hedge: bool) -> None:
        await self.rest.set_position_mode(hedge)

    def connect_prices(self, symbols: Sequence[str]) -> AbstractAsyncContextManager[FrameStream]:
        return open_mark_price_stream(
            self.settings.ws_url,
            self.settings.mark_stream,
            symbols,
            handshake_seconds=self.settings.request_timeout_seconds,
            connect=self._connect,
        )

    def connect_user_stream(self) -> AbstractAsyncContextManager[FrameStream]:
        return open_user_data_stream(
            self.rest,
            self.settings.ws_url,
            keepalive_seconds=self.settings.listen_key_keepalive_seconds,
            handshake_seconds=self.settings.request_timeout_seconds,
            connect=self._connect,
        )

    def parse_price_frame(self, frame: bytes) -> list[MarkPrice]:
        return codec.parse_price_frame(frame)

    def parse_user_frame(self, frame: bytes) -> list[UserEvent]:
        return codec.parse_user_frame(frame)
