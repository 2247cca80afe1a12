"""``LighterVenue``: the ``Venue`` protocol over Lighter's REST API and websocket.

A translator like ``AsterVenue``: ``LighterRest`` makes the calls, ``codec`` reads the JSON, ``stream`` owns
the websocket; policy (retries, pacing, resolving unknown outcomes) stays in the gateway. What is Lighter's own:

- exits are emulated (``emulated_exits``): posmon holds TP, SL and the hold time and closes with a reduce-only
  MARKET order whose ``price`` is the worst acceptable price; a MARKET without one is refused, never sent;
- ``sendTx`` answering 200 means *accepted*, not executed: placements come back NEW with nothing filled and
  the account stream (or a query) tells what happened;
- the order gateway is the key's only sender: this object owns the nonce keeper and sends under a lock, so
  nonces reach Lighter in the order they were taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import trio

from posmon.config import ConfigError
from posmon.domain.exits import CloseSlippage
from posmon.domain.orders import OrderRequest, OrderSide, OrderState, OrderStatus, OrderType, PositionState, SymbolRules
from posmon.domain.protection import worst_price
from posmon.exchange.errors import (
    GiveUp,
    NonceExpired,
    OrderNotFound,
    OutcomeUnknown,
    PrecisionRejected,
    RateLimited,
    Rejected,
    VenueError,
)
from posmon.exchange.events import MarkPrice, OrderUpdate, UserEvent
from posmon.exchange.lighter import codec
from posmon.exchange.lighter.client_ids import ClientIds, UnmappableId
from posmon.exchange.lighter.markets import Market, MarketTable, OffGrid, parse_order_book_details
from posmon.exchange.lighter.nonce import NonceKeeper
from posmon.exchange.lighter.rest import LighterRest, SignerLike, parsed
from posmon.exchange.lighter.settings import LighterSettings
from posmon.exchange.lighter.stream import Connector, open_lighter_stream
from posmon.exchange.venue import FrameStream, PlaceResult, RateLimits, VenueTraits

__all__ = ["LIMITS", "LighterVenue"]

log = logging.getLogger(__name__)

# Protocol constants (lighter-sdk SignerClient / lighter-go create_order.go).
CROSS_MARGIN_MODE = 0  # posmon's positions share the account's collateral (UpdateLeverage's MarginMode)
ORDER_TYPE_LIMIT, ORDER_TYPE_MARKET, ORDER_TYPE_STOP_LOSS, ORDER_TYPE_TAKE_PROFIT = 0, 1, 2, 4
TIF_IOC, TIF_GTT = 0, 1
NIL_TRIGGER_PRICE = 0
DEFAULT_28_DAY_ORDER_EXPIRY = -1
DEFAULT_IOC_EXPIRY = 0
MAX_BATCH = 50  # sendTxBatch takes at most 50 transactions

# Lighter's limits are per rolling minute. Standard: 60 requests, unweighted, so every call weighs 1.
# Premium: 24,000 weight; sendTx/sendTxBatch/nextNonce weigh 6, accountInactiveOrders 100, the other reads 300.
# A query may read active then inactive orders; open orders of every market reads the account first and then
# each market with open orders (counted as three); the odd nextNonce after an unknown outcome is not counted.
# Orders are not counted separately by Lighter: orders_per_minute is requests x batch size, never binding.
LIMITS: dict[str, RateLimits] = {
    "standard": RateLimits(
        weight_per_minute=60,
        orders_per_minute=60 * MAX_BATCH,
        place_weight=1,
        batch_place_weight=1,
        cancel_weight=1,
        batch_cancel_weight=1,
        query_weight=2,
        open_orders_weight=4,
        open_orders_symbol_weight=1,
        positions_weight=1,
        balance_weight=1,  # the same account read
        max_batch_place=MAX_BATCH,
        max_batch_cancel=MAX_BATCH,
        mark_prices_weight=1,
    ),
    "premium": RateLimits(
        weight_per_minute=24_000,
        orders_per_minute=24_000 // 6 * MAX_BATCH,
        place_weight=6,
        batch_place_weight=6,
        cancel_weight=6,
        batch_cancel_weight=6,
        query_weight=400,
        open_orders_weight=1200,
        open_orders_symbol_weight=300,
        positions_weight=300,
        balance_weight=300,  # the same account read
        max_batch_place=MAX_BATCH,
        max_batch_cancel=MAX_BATCH,
        mark_prices_weight=300,
    ),
}


@dataclass(frozen=True, slots=True)
class _Signed:
    tx_type: int
    tx_info: str


class LighterVenue:
    """A Lighter account; open it with ``async with LighterVenue.open(settings) as venue``."""

    name = "lighter"

    def __init__(
        self,
        settings: LighterSettings,
        rest: LighterRest,
        *,
        client_id_prefix: str = "pm",
        clock: Callable[[], float] = time.time,
        connect: Connector | None = None,
    ) -> None:
        self.settings = settings
        # Lighter's conditional orders misfire, so posmon holds TP/SL/timeout itself; its positions are one-way.
        self.traits = VenueTraits(
            emulated_exits=True,
            one_way_only=True,
            request_timeout_seconds=settings.request_timeout_seconds,
            close_slippage=CloseSlippage(
                settings.close_slippage_pct, settings.close_slippage_step_pct, settings.close_slippage_max_pct
            ),
        )
        self.rest = rest
        self.limits: RateLimits = LIMITS[settings.tier]
        self.markets = MarketTable.of([])
        self.rules: dict[str, SymbolRules] = {}
        self.ids = ClientIds(client_id_prefix)
        self.nonces = NonceKeeper(rest.next_nonce)
        self._clock = clock
        self._connect = connect
        self._fills = codec.FillTracker()
        self._open: dict[str, OrderState] = {}  # orders known to be live, by client id (what cancel may touch)
        self._send_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"LighterVenue({self.settings!r})"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: LighterSettings,
        *,
        signer: SignerLike | None = None,
        client_id_prefix: str = "pm",
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        connect: Connector | None = None,
        sign_in_thread: bool = True,
    ) -> AsyncIterator[LighterVenue]:
        """Load the markets and fetch the nonce, then yield; the HTTP client closes on exit.

        ``signer`` defaults to lighter-sdk's Go signer for the configured key; ``transport``, ``connect`` and
        ``signer`` replace the network and the native library in tests.
        """
        if not settings.rest_url or not settings.ws_url:
            raise ConfigError(
                "lighter.rest_url: invalid value ''; the embedded simulator must fill in its URLs "
                "before the venue opens (expected http(s):// and ws(s):// base URLs)"
            )
        if settings.account_index is None or (signer is None and not settings.api_private_key):
            raise ConfigError(
                "lighter.account_index / lighter.api_private_key: missing; expected the account's "
                "index and its API key's private key"
            )
        if signer is None:
            signer = await _default_signer(settings)
        async with LighterRest.open(
            settings, signer, transport=transport, clock=clock, sign_in_thread=sign_in_thread
        ) as rest:
            venue = cls(settings, rest, client_id_prefix=client_id_prefix, clock=clock, connect=connect)
            await venue.load_rules()
            await venue.nonces.refresh()
            yield venue

    # --- markets -----------------------------------------------------------------------------------------

    def market_id(self, symbol: str) -> int:
        """Lighter's market index of ``symbol`` (``KeyError`` when not listed)."""
        return self.markets.by_symbol[symbol].market_id

    def symbol_for(self, market: int | str) -> str:
        """The symbol of a market id (an int or its digits) or of a symbol itself (``KeyError`` when unknown)."""
        if isinstance(market, int) or market.isdigit():
            return self.markets.by_id[int(market)].symbol
        return self.markets.by_symbol[market].symbol

    def _market(self, symbol: str, request: str) -> Market:
        market = self.markets.by_symbol.get(symbol)
        if market is None:
            raise Rejected(f"{symbol} is not a Lighter perpetual market", request=request)
        return market

    async def load_rules(self) -> dict[str, SymbolRules]:
        """Rules of the configured symbols (every active market when none are configured)."""
        data = await self.rest.order_book_details()
        table: MarketTable = parsed(parse_order_book_details, data, "GET /api/v1/orderBookDetails")
        for symbol, why in table.skipped.items():
            log.warning("lighter: %s has no usable market details and is left out: %s", symbol, why)
        self.markets = table
        active = {s: m.rules for s, m in table.by_symbol.items() if m.status == "active"}
        if self.settings.symbols:
            missing = [s for s in self.settings.symbols if s not in active]
            if missing:
                log.error("lighter: configured symbols %s are not active markets; not watched", ", ".join(missing))
            active = {s: active[s] for s in self.settings.symbols if s in active}
        self.rules = active
        return dict(active)

    async def sync_time(self) -> None:
        """Lighter signs no timestamps; what drifts is the nonce, so fetch it again.

        Under the send lock: a fetch answered while another send is in flight would hand out that send's
        nonce a second time (a needless 21104 for the next transaction).
        """
        async with self._send_lock:
            await self.nonces.refresh()

    async def position_mode(self) -> bool:
        """Always one-way (False): Lighter keeps one position per market."""
        await trio.lowlevel.checkpoint()
        return False

    # --- account -----------------------------------------------------------------------------------------

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """One UpdateLeverage transaction (initial margin fraction ``10_000 // leverage``, cross margin).

        Accepted (``code: 200``) is all Lighter says at once, as for orders; the transaction executes before any
        later one of this key (nonce order), so an entry sent after it trades at this leverage. A refusal (out of
        the market's range, a margin-mode change with a position held) is ``Rejected``.
        """
        market = self._market(symbol, "set_leverage")
        if leverage < 1:
            raise Rejected(f"leverage {leverage} is not >= 1", request="set_leverage")
        args = {"market_index": market.market_id, "leverage": leverage, "margin_mode": CROSS_MARGIN_MODE}
        request = f"set_leverage {symbol}"
        for attempt in range(2):
            try:
                (answer,) = await self._send([(self.rest.signer.update_leverage, args)], request)
            except NonceExpired as exc:  # refused before execution: one resend with a fresh nonce is safe
                if attempt:
                    raise
                log.warning("lighter: %s refused for its nonce (%s); resending once with a fresh nonce", request, exc)
                continue
            if answer is not None:
                raise answer
            return

    # --- orders ------------------------------------------------------------------------------------------

    async def place_orders(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """One ``sendTx`` (or ``sendTxBatch`` for 2..50); local refusals come back in place, unsent."""
        if not orders:
            return []
        if len(orders) > self.limits.max_batch_place:
            raise Rejected(
                f"at most {self.limits.max_batch_place} orders per batch, got {len(orders)}", request="place_orders"
            )
        results: list[PlaceResult | None] = [None] * len(orders)
        prepared: list[tuple[int, dict[str, Any]]] = []
        for i, order in enumerate(orders):
            try:
                prepared.append((i, self._order_args(order)))
            except Rejected as exc:
                results[i] = exc
        answers = await self._send([(self.rest.signer.create_order, args) for _, args in prepared], "place_orders")
        for (i, _), answer in zip(prepared, answers, strict=True):
            if isinstance(answer, VenueError):
                results[i] = answer
            else:
                state = _accepted(orders[i])
                self._open[state.client_id] = state
                results[i] = state
        return [r for r in results if r is not None]

    def _order_args(self, order: OrderRequest) -> dict[str, Any]:
        """The signer's arguments for one order, or the ``Rejected`` that keeps it from being sent."""
        request = f"place {order.client_id}"
        market = self._market(order.symbol, request)
        try:
            client_index = self.ids.index(order.client_id)
        except UnmappableId as exc:
            raise Rejected(str(exc), request=request) from None
        if not self.ids.is_ours(client_index):
            raise Rejected(
                f"{order.client_id!r} is not a posmon client id; only posmon's orders are placed", request=request
            )
        if order.position_side != "BOTH":
            raise GiveUp(f"position side {order.position_side!r}: Lighter accounts are one-way (BOTH)", request=request)
        if order.qty <= 0:
            raise Rejected(f"quantity {order.qty} is not positive", request=request)
        order_type, tif, expiry, trigger = ORDER_TYPE_LIMIT, TIF_GTT, DEFAULT_28_DAY_ORDER_EXPIRY, None
        match order.type:
            case OrderType.MARKET:
                if order.price is None:
                    raise GiveUp(
                        "a MARKET order needs price = its worst acceptable price; an unbounded order is never sent",
                        request=request,
                    )
                order_type, tif, expiry, price = ORDER_TYPE_MARKET, TIF_IOC, DEFAULT_IOC_EXPIRY, order.price
            case OrderType.LIMIT:
                if order.price is None:
                    raise Rejected("a LIMIT order needs a price", request=request)
                price = order.price
            case OrderType.STOP_MARKET | OrderType.TAKE_PROFIT_MARKET:
                if not self.settings.native_conditional_orders:
                    raise GiveUp(
                        f"{order.type.value}: Lighter's native conditional orders are off "
                        "(lighter.native_conditional_orders = false); posmon holds the exits itself",
                        request=request,
                    )
                if order.stop_price is None:
                    raise Rejected(f"a {order.type.value} order needs a stop price", request=request)
                order_type = ORDER_TYPE_STOP_LOSS if order.type is OrderType.STOP_MARKET else ORDER_TYPE_TAKE_PROFIT
                tif, trigger = TIF_IOC, order.stop_price
                price = order.price or self._worst_price(order.stop_price, order.side, market)
        try:
            return {
                "market_index": market.market_id,
                "client_order_index": client_index,
                "base_amount": market.base_amount(order.qty),
                "price": market.price_units(price),
                "is_ask": order.side is OrderSide.SELL,
                "order_type": order_type,
                "time_in_force": tif,
                "reduce_only": order.reduce_only,
                "trigger_price": market.price_units(trigger) if trigger is not None else NIL_TRIGGER_PRICE,
                "order_expiry": expiry,
            }
        except OffGrid as exc:
            raise PrecisionRejected(str(exc), request=request) from None

    def _worst_price(self, reference: Decimal, side: OrderSide, market: Market) -> Decimal:
        """``close_slippage_pct`` through ``reference``, on the tick, rounded away from the reference."""
        return worst_price(side, reference, self.settings.close_slippage_pct, market.rules.tick_size)

    async def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> list[PlaceResult]:
        """One ``sendTx``/``sendTxBatch`` of cancels; ids not known to be live come back as ``OrderNotFound``, unsent.

        An accepted cancel returns the order as last known (not final): the account stream reports the end.
        """
        if not client_ids:
            return []
        if len(client_ids) > self.limits.max_batch_cancel:
            raise Rejected(
                f"at most {self.limits.max_batch_cancel} cancels per batch, got {len(client_ids)}",
                request="cancel_orders",
            )
        market = self._market(symbol, "cancel_orders")
        results: list[PlaceResult | None] = [None] * len(client_ids)
        prepared: list[tuple[int, OrderState, dict[str, Any]]] = []
        for i, cid in enumerate(client_ids):
            state = self._open.get(cid)
            if state is None or state.symbol != symbol:
                results[i] = OrderNotFound(f"{cid} is not known to be open on {symbol}", request=f"cancel {cid}")
                continue
            index = int(state.order_id) if state.order_id.isdigit() else self.ids.index(cid)
            prepared.append((i, state, {"market_index": market.market_id, "order_index": index}))
        answers = await self._send([(self.rest.signer.cancel_order, args) for _, _, args in prepared], "cancel_orders")
        for (i, state, _), answer in zip(prepared, answers, strict=True):
            results[i] = answer if isinstance(answer, VenueError) else state
        return [r for r in results if r is not None]

    async def _send(
        self, calls: list[tuple[Callable[..., tuple[int, str]], dict[str, Any]]], request: str
    ) -> list[VenueError | None]:
        """Sign ``calls`` with consecutive nonces and send them as one transaction or one batch.

        Per call: None when accepted, or the refusal. Raises ``NonceExpired``, ``OutcomeUnknown`` and
        ``RateLimited`` for the call as a whole (the nonce is re-fetched before the next send).
        """
        if not calls:
            await trio.lowlevel.checkpoint()
            return []
        results: list[VenueError | None] = [None] * len(calls)
        async with self._send_lock:
            signed = await self._sign(calls, results, request)
            if not signed:
                return results
            try:
                if len(signed) == 1:
                    await self.rest.send_tx(signed[0][1].tx_type, signed[0][1].tx_info)
                else:
                    await self.rest.send_tx_batch([s.tx_type for _, s in signed], [s.tx_info for _, s in signed])
            except (NonceExpired, OutcomeUnknown, RateLimited) as exc:
                self.nonces.invalidate(f"{request}: {exc}")
                raise
            except Rejected as exc:
                self.nonces.invalidate(f"{request}: {exc}")  # whether a refused tx used its nonce is not said
                for i, _ in signed:
                    results[i] = exc
        return results

    async def _sign(
        self,
        calls: list[tuple[Callable[..., tuple[int, str]], dict[str, Any]]],
        results: list[VenueError | None],
        request: str,
    ) -> list[tuple[int, _Signed]]:
        """Sign ``calls`` in parallel with consecutive nonces, taken in order before any signing starts.

        A call the signer refuses (bad arguments) gets ``GiveUp`` in ``results`` and would leave a hole in the
        nonces (21105 for the whole batch): then every nonce goes back and the others are signed again with a
        consecutive range. Called under the send lock; if anything else interrupts it (a cancellation) the
        nonces' fate is left to a re-fetch.
        """
        pending = list(range(len(calls)))
        try:
            while pending:
                taken = await self.nonces.take(len(pending))
                answers = await self.rest.sign_many(
                    [(calls[i][0], {**calls[i][1], "nonce": n}) for i, n in zip(pending, taken, strict=True)]
                )
                refused = {i for i, a in zip(pending, answers, strict=True) if isinstance(a, Exception)}
                if not refused:
                    return [(i, _Signed(int(a[0]), str(a[1]))) for i, a in zip(pending, answers, strict=True)]  # type: ignore[index]
                for nonce in reversed(taken):
                    self.nonces.give_back(nonce)
                for i, a in zip(pending, answers, strict=True):
                    if i in refused:
                        results[i] = GiveUp(f"the signer refused: {type(a).__name__}: {a}", request=request)
                pending = [i for i in pending if i not in refused]
            return []
        except BaseException:
            self.nonces.invalidate(f"{request}: signing interrupted")
            raise

    async def query_order(self, symbol: str, client_id: str) -> OrderState:
        """The order by client id: among the market's active orders, then its recent inactive ones.

        Raises ``OrderNotFound`` when Lighter has neither (never seen, or ended too long ago to be listed).
        """
        market = self._market(symbol, f"query {client_id}")
        try:
            index = self.ids.index(client_id)
        except UnmappableId as exc:
            raise OrderNotFound(str(exc), request=f"query {client_id}") from None
        for read, path in (
            (self.rest.active_orders, "accountActiveOrders"),
            (self.rest.inactive_orders, "accountInactiveOrders"),
        ):
            orders = parsed(
                codec.parse_orders, await read(market.market_id), f"GET /api/v1/{path}", self.markets, self.ids
            )
            for o in orders:
                if index in (o.client_order_index, o.order_index):
                    self._note(o.state)
                    return o.state
        self._open.pop(client_id, None)
        raise OrderNotFound(f"no order with client order index {index} on {symbol}", request=f"query {client_id}")

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Live orders of one market, or of every market the account says has some."""
        if symbol is not None:
            market_ids = [self._market(symbol, "open_orders").market_id]
        else:
            data = await self.rest.account()
            market_ids = parsed(codec.open_order_markets, data, "GET /api/v1/account")
        out: list[OrderState] = []
        for market_id in market_ids:
            orders = parsed(
                codec.parse_orders,
                await self.rest.active_orders(market_id),
                "GET /api/v1/accountActiveOrders",
                self.markets,
                self.ids,
            )
            out += [o.state for o in orders if not o.state.status.is_final]
        for state in out:
            self._note(state)
        return out

    async def positions(self, symbol: str | None = None) -> list[PositionState]:
        data = await self.rest.account()
        positions: list[PositionState] = parsed(
            codec.parse_account_positions, data, "GET /api/v1/account", self.markets
        )
        return [p for p in positions if symbol is None or p.symbol == symbol]

    async def balance(self) -> Decimal:
        """The account's collateral (``GET /api/v1/account``, the read ``positions`` makes)."""
        data = await self.rest.account()
        collateral: Decimal = parsed(codec.parse_account_collateral, data, "GET /api/v1/account")
        return collateral

    async def mark_prices(self) -> list[MarkPrice]:
        data = await self.rest.order_book_details()
        marks = parsed(codec.parse_mark_prices, data, "GET /api/v1/orderBookDetails", self.markets, self._clock())
        return self._watched(marks)

    def _note(self, state: OrderState) -> None:
        """Keep the set of live orders (what ``cancel_orders`` may send) in step with what Lighter says."""
        if state.status.is_final:
            self._open.pop(state.client_id, None)
        else:
            self._open[state.client_id] = state

    def _watched(self, marks: list[MarkPrice]) -> list[MarkPrice]:
        if not self.settings.symbols:
            return marks
        wanted = set(self.settings.symbols)
        return [m for m in marks if m.symbol in wanted]

    # --- streams -----------------------------------------------------------------------------------------

    def connect_prices(self, symbols: Sequence[str]) -> AbstractAsyncContextManager[FrameStream]:
        """``market_stats/all``: one subscription for every market (frames are filtered when parsed)."""
        return open_lighter_stream(
            self.settings.stream_url,
            ["market_stats/all"],
            what="lighter price stream",
            handshake_seconds=self.settings.request_timeout_seconds,
            ping_seconds=self.settings.ws_ping_seconds,
            connect=self._connect,
        )

    @asynccontextmanager
    async def connect_user_stream(self) -> AsyncIterator[FrameStream]:
        """``account_all/<account>`` (positions) and ``account_all_orders/<account>`` (orders), with auth."""
        token = await self.rest.auth_token()
        account = self.rest.account_index
        deadline = self.rest.auth_deadline()
        end_at = deadline - 60.0 if deadline is not None else None
        async with open_lighter_stream(
            self.settings.stream_url,
            [f"account_all/{account}", f"account_all_orders/{account}"],
            what="lighter account stream",
            handshake_seconds=self.settings.request_timeout_seconds,
            ping_seconds=self.settings.ws_ping_seconds,
            auth=token,
            end_at=end_at,
            clock=self._clock,
            connect=self._connect,
        ) as frames:
            yield frames

    def parse_price_frame(self, frame: bytes) -> list[MarkPrice]:
        return self._watched(codec.parse_price_frame(frame, self.markets, self._clock()))

    def parse_user_frame(self, frame: bytes) -> list[UserEvent]:
        events = codec.parse_user_frame(frame, self.markets, self.ids, self._fills, self._clock())
        for event in events:
            if isinstance(event, OrderUpdate):
                self._note(_state_of(event))
        return events


def _accepted(order: OrderRequest) -> OrderState:
    """What a placement's ``code: 200`` proves: Lighter took the order; nothing is filled yet."""
    return OrderState(
        client_id=order.client_id,
        order_id="",
        symbol=order.symbol,
        side=order.side,
        position_side="BOTH",
        type=order.type,
        status=OrderStatus.NEW,
        qty=order.qty,
        filled_qty=Decimal(0),
        avg_price=Decimal(0),
        price=order.price,
        stop_price=order.stop_price,
        reduce_only=order.reduce_only,
    )


def _state_of(u: OrderUpdate) -> OrderState:
    return OrderState(
        client_id=u.client_id,
        order_id=u.order_id,
        symbol=u.symbol,
        side=u.side,
        position_side=u.position_side,
        type=u.type,
        status=u.status,
        qty=u.qty,
        filled_qty=u.filled_qty,
        avg_price=u.avg_price,
        reduce_only=u.reduce_only,
    )


async def _default_signer(settings: LighterSettings) -> SignerLike:
    """lighter-sdk's Go signer for the configured key (loading the native library takes a moment)."""
    from posmon.exchange.lighter.signer import LighterSigner  # deferred: only a Lighter run loads the library

    account_index = settings.account_index
    assert account_index is not None, "LighterSettings.validate() requires lighter.account_index"

    def build() -> SignerLike:
        signer: SignerLike = LighterSigner(
            url=settings.rest_url,
            private_key=settings.api_private_key,
            chain_id=settings.chain_id,
            api_key_index=settings.api_key_index,
            account_index=account_index,
        )
        return signer

    try:
        return await trio.to_thread.run_sync(build)
    except Exception as exc:
        raise ConfigError(
            f"lighter.api_private_key: the Lighter signer could not be set up ({type(exc).__name__}: "
            f"{exc}); check the key, lighter.api_key_index and lighter.account_index"
        ) from None
