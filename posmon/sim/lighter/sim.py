"""``LighterSim``: one Lighter account over a ``SimExchange``, with its nonces, tiers, switches and counters.

Transactions are checked when they arrive (fields, account, api key, nonce order, duplicate client
order indexes) and answered at once; their effect follows on the account: immediately by default,
or after the Standard tier's 200 ms (maker) / 300 ms (taker) on the trio clock, in arrival order.
Every handler and websocket reads state from here; they hold none.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

import orjson
import trio
import trio.lowlevel

from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side
from posmon.exchange.errors import Rejected, VenueError
from posmon.exchange.lighter.signer import (
    CROSS_MARGIN_MODE,
    ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
    ORDER_TIME_IN_FORCE_POST_ONLY,
    ORDER_TYPE_MARKET,
)
from posmon.sim.counters import ServerCounters
from posmon.sim.exchange import SimExchange
from posmon.sim.faults import HttpFault, HttpFaults
from posmon.sim.lighter import errors as e
from posmon.sim.lighter import txs, views
from posmon.sim.lighter.account import ENGINE_PREFIX, Account, Changes
from posmon.sim.lighter.credentials import DEFAULT_ACCOUNT_INDEX, DEFAULT_API_KEY_INDEX, DEFAULT_COLLATERAL
from posmon.sim.lighter.errors import LighterError, fault_error
from posmon.sim.lighter.hub import Hub
from posmon.sim.lighter.limits import UNLIMITED, RateLimiter, Tier
from posmon.sim.lighter.markets import DEFAULT_MARKETS, LighterMarket, by_id
from posmon.sim.lighter.records import OrderRecord
from posmon.sim.serving import ProtocolSim

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger(__name__)

MAX_BATCH = 50
VOLUME_QUOTA = 1_000_000


@dataclass(frozen=True, slots=True)
class WsConfig:
    """Websocket behaviour: the venue pings and drops clients silent for 2 minutes."""

    ping_interval: float | None = 60.0  # seconds between server {"type":"ping"} frames; None: never
    idle_timeout: float = 120.0  # close a connection that sent nothing for this long


@dataclass(slots=True)
class SimCounters(ServerCounters):
    """What tests read: requests, transaction outcomes, HTTP errors, websockets."""

    txs_accepted: int = 0
    txs_rejected: int = 0
    txs_executed: int = 0
    http_429: int = 0
    ws_messages_sent: int = 0


class LighterFaults(HttpFaults):
    """The scripted HTTP faults, and Lighter's own: transactions answering 21104 whatever their nonce."""

    def __init__(self) -> None:
        super().__init__(fault_error)
        self.nonce_errors = 0  # next sendTx/sendTxBatch calls answering 21104 whatever their nonce

    def clear(self) -> None:
        super().clear()
        self.nonce_errors = 0


@dataclass(frozen=True, slots=True)
class _Queued:
    due: float  # trio time
    tx: txs.Tx
    tx_hash: str


class LighterSim(ProtocolSim):
    """One simulated Lighter account; serve it with ``serve_lighter_sim`` (``posmon.sim.serving.serve``)."""

    ws_path = "/stream"
    counters: SimCounters

    def __init__(
        self,
        exchange: SimExchange,
        *,
        markets: Iterable[LighterMarket] = DEFAULT_MARKETS,
        account_index: int = DEFAULT_ACCOUNT_INDEX,
        api_key_indexes: Iterable[int] = (DEFAULT_API_KEY_INDEX,),
        collateral: Decimal = Decimal(DEFAULT_COLLATERAL),
        tier: Tier = UNLIMITED,
        ws: WsConfig | None = None,
        clock: Callable[[], float] | None = None,
        tx_clock: Callable[[], float] | None = time.time,
        first_nonce: int = 0,
    ) -> None:
        """``clock``: server time (default the exchange's); ``tx_clock``: the wall clock the signer stamps
        ``ExpiredAt`` / ``OrderExpiry`` and auth-token deadlines with (None: not checked)."""
        super().__init__(exchange, SimCounters(), clock)
        self.markets = by_id(markets)
        # Published in ``market_stats``: the rate in force for the next funding time, every ``funding_interval_ms``
        # (hourly, as the venue); set freely.
        self.funding_rate = Decimal(0)
        self.funding_interval_ms = views.FUNDING_INTERVAL_MS
        missing = [m.symbol for m in self.markets.values() if m.symbol not in exchange.engine.rules]
        if missing:
            raise ValueError(f"the SimExchange does not list {missing}; build it with sim.lighter.markets.rules_for")
        if exchange.hedge_mode:
            raise ValueError("Lighter is one-way: build the SimExchange with hedge_mode=False")
        self.account_index = account_index
        self.api_key_indexes = frozenset(api_key_indexes)
        self.collateral = collateral
        self.tx_clock = tx_clock
        self.ws = ws if ws is not None else WsConfig()
        self.faults = LighterFaults()
        self.hub = Hub()
        self.account = Account(exchange, self.markets, account_index, self.now_ms)
        self.limiter = RateLimiter(tier)
        self.imf: dict[int, int] = {m.market_id: m.default_imf for m in self.markets.values()}
        self.margin_mode: dict[int, int] = {m.market_id: CROSS_MARGIN_MODE for m in self.markets.values()}
        for m in self.markets.values():
            exchange.engine.set_max_leverage(m.symbol, m.max_leverage)
        self._nonces: dict[int, int] = {k: first_nonce for k in self.api_key_indexes}
        self._slippage: dict[str, Decimal] = {}
        self._queue_send, self._queue_receive = trio.open_memory_channel[_Queued](math.inf)
        self._queued = 0
        self._pending_clients: Counter[tuple[int, int]] = Counter()  # (market, client order index) queued
        self._tx_seq = itertools.count(1)
        self._stats_published: set[str] = set()
        self.account_pushes_stalled = False
        self.push_duplicates = 0

    # ---- clocks -------------------------------------------------------------------------------------------------

    def wall_ms(self) -> int | None:
        return None if self.tx_clock is None else round(self.tx_clock() * 1000)

    @property
    def tier(self) -> Tier:
        return self.limiter.tier

    # ---- control switches (tests, demos) ---------------------------------------------------------------------

    def set_tier(self, tier: Tier) -> None:
        """Switch rate limits and order latency (``limits.STANDARD``, ``PREMIUM``, ``UNLIMITED``)."""
        self.limiter = RateLimiter(tier)

    def set_liquidity(self, symbol: str, max_slippage_pct: Decimal | str | int) -> None:
        """Thin the book: taker orders fill only ``max_slippage_pct`` % through the mark, at that price.

        A MARKET (or IOC limit) order whose worst price does not reach that far is cancelled
        (``canceled-too-much-slippage``) and changes nothing; 0 (the default) fills at the mark.
        """
        if symbol not in {m.symbol for m in self.markets.values()}:
            raise ValueError(f"unknown symbol {symbol!r}")
        pct = Decimal(max_slippage_pct)
        if pct < 0:
            raise ValueError(f"max_slippage_pct must be >= 0, got {pct}")
        self._slippage[symbol] = pct / 100

    def fail_next(self, path: str, status: int = 503, n: int = 1, *, after_execute: bool = False) -> None:
        """The next ``n`` requests of ``path`` answer ``status``; with ``after_execute`` they took effect first."""
        self.faults.add(path, HttpFault("fail", status=status, after_execute=after_execute), n)

    def delay_next(self, path: str, seconds: float, n: int = 1) -> None:
        """The next ``n`` requests of ``path`` wait ``seconds`` (trio clock) before they run and answer."""
        self.faults.add(path, HttpFault("delay", seconds=seconds), n)

    def force_nonce_error(self, n: int = 1) -> None:
        """The next ``n`` sendTx / sendTxBatch requests answer 21104 whatever their nonce (nothing changes)."""
        self.faults.nonce_errors += n

    def external_entry(self, symbol: str, side: Side, size: Decimal) -> OrderRecord:
        """Open or grow a position as another program on the account would (a market order, no client index)."""
        state = self.exchange.external_entry(symbol, side, size)
        self.flush()
        return self.account.by_engine_id[state.client_id]

    def silent_position(self, symbol: str, side: Side, size: Decimal, *, frame: bool = True) -> None:
        """The position becomes ``size`` on ``side`` with no order or trade: only ``account_all``'s position
        says so (``frame``), or nothing at all."""
        for other in (Side.LONG, Side.SHORT):
            if other is not side and self.exchange.engine.position(symbol, other) is not None:
                self.exchange.silent_position(symbol, other, Decimal(0), frame=frame)
        self.exchange.silent_position(symbol, side, size, frame=frame)
        if frame:
            self.flush()
        else:
            self.account.sync()
            self.account.take_changes()  # read, but nobody is told

    def liquidate(self, symbol: str, size: Decimal | None = None, *, adl: bool = False) -> Decimal:
        """The venue closes ``size`` (default all) of the position: a liquidation or deleverage trade."""
        closed = Decimal(0)
        for side in (Side.LONG, Side.SHORT):
            if self.exchange.engine.position(symbol, side) is not None:
                client_id = f"{'adl' if adl else 'liq'}-{next(self._tx_seq)}"
                closed = self.exchange.liquidate(symbol, side, size, adl=adl, client_id=client_id)
        self.flush()
        return closed

    def set_nonce(self, api_key_index: int, nonce: int) -> None:
        """Move a key's next nonce (as if another process had used the key)."""
        self._check_key(self.account_index, api_key_index)
        self._nonces[api_key_index] = nonce

    # ---- nonces ---------------------------------------------------------------------------------------------

    def next_nonce(self, account_index: int, api_key_index: int) -> int:
        self._check_key(account_index, api_key_index)
        return self._nonces[api_key_index]

    def _check_key(self, account_index: int, api_key_index: int) -> None:
        if account_index != self.account_index:
            raise LighterError(e.ACCOUNT_NOT_FOUND, f"account {account_index} not found")
        if api_key_index not in self.api_key_indexes:
            raise LighterError(e.INVALID_API_KEY, f"api key {api_key_index} is not registered on account "
                               f"{account_index}")  # fmt: skip

    # ---- transactions ---------------------------------------------------------------------------------------

    def submit(self, raw: Sequence[tuple[int, str]], *, batch: bool) -> dict[str, Any]:
        """Check, accept and (now or after the tier's delay) execute transactions; the venue's answer body.

        All or nothing: one bad transaction refuses the whole batch and changes nothing.
        """
        try:
            parsed = self._check(raw, batch=batch)
        except LighterError:
            self.counters.txs_rejected += len(raw)
            raise
        hashes: list[str] = []
        due = trio.current_time()
        delay = 0.0
        for tx in parsed:
            self._nonces[tx.header.api_key_index] = tx.header.nonce + 1
            tx_hash = hashlib.sha256(f"{next(self._tx_seq)}:{tx!r}".encode()).hexdigest()
            hashes.append(tx_hash)
            delay = max(delay, self._delay(tx))
            if self._queued or delay > 0:
                self._enqueue(_Queued(due + delay, tx, tx_hash))
            else:
                self._execute(tx, tx_hash)
        self.counters.txs_accepted += len(parsed)
        self.flush()
        message = '{"ratelimit": "didn\'t use volume quota"}'
        predicted = self.now_ms() + round(delay * 1000)
        return {"code": e.OK, "message": message, "tx_hash": hashes if batch else hashes[0],
                "predicted_execution_time_ms": predicted, "volume_quota_remaining": VOLUME_QUOTA}  # fmt: skip

    def _check(self, raw: Sequence[tuple[int, str]], *, batch: bool) -> list[txs.Tx]:
        if not raw:
            raise LighterError(e.INVALID_PARAM, "no transactions")
        if len(raw) > MAX_BATCH:
            raise LighterError(e.BATCH_TOO_LARGE, f"at most {MAX_BATCH} transactions in a batch, got {len(raw)}")
        wall = self.wall_ms()
        parsed = [txs.parse(tx_type, info, self.markets, wall) for tx_type, info in raw]
        expected: dict[int, int] = {}
        for position, tx in enumerate(parsed):
            h = tx.header
            self._check_key(h.account_index, h.api_key_index)
            want = expected.get(h.api_key_index)
            if want is None:
                if self.faults.nonce_errors or h.nonce != self._nonces[h.api_key_index]:
                    self.faults.nonce_errors = max(0, self.faults.nonce_errors - 1)
                    raise LighterError(e.INVALID_NONCE, "invalid nonce")
            elif h.nonce != want:
                raise LighterError(e.BATCH_NONCE_GAP, f"batch nonces are not consecutive: transaction {position} has "
                                   f"nonce {h.nonce}, expected {want}")  # fmt: skip
            expected[h.api_key_index] = h.nonce + 1
        seen: set[tuple[int, int]] = set()
        for tx in parsed:
            if isinstance(tx, txs.CreateOrder) and tx.client_order_index:
                key = (tx.market_index, tx.client_order_index)
                if key in seen or self._pending_clients[key] or self.account.find_open(*key) is not None:
                    raise LighterError(e.DUPLICATE_CLIENT_ORDER_INDEX, f"an open order on market {key[0]} already "
                                       f"has client order index {key[1]}")  # fmt: skip
                seen.add(key)
            elif isinstance(tx, txs.UpdateLeverage):
                market = self.markets[tx.market_index]
                if tx.margin_mode != self.margin_mode[tx.market_index] and self.account.signed_position(market.symbol):
                    raise LighterError(e.INVALID_LEVERAGE, f"{market.symbol} holds a position: its margin mode "
                                       "cannot change until it is closed")  # fmt: skip
            elif isinstance(tx, txs.CancelOrder):
                known = self.account.find_open(tx.market_index, tx.index) is not None
                if not known and not self._pending_clients[(tx.market_index, tx.index)] \
                        and (tx.market_index, tx.index) not in seen:  # fmt: skip
                    raise LighterError(e.ORDER_NOT_FOUND, f"no open order {tx.index} on market {tx.market_index}")
        return parsed

    def _delay(self, tx: txs.Tx) -> float:
        if not isinstance(tx, txs.CreateOrder):
            return 0.0
        taker = tx.order_type == ORDER_TYPE_MARKET or tx.time_in_force == ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
        return self.tier.taker_delay if taker else self.tier.maker_delay

    def _enqueue(self, item: _Queued) -> None:
        self._queued += 1
        if isinstance(item.tx, txs.CreateOrder) and item.tx.client_order_index:
            self._pending_clients[(item.tx.market_index, item.tx.client_order_index)] += 1
        self._queue_send.send_nowait(item)

    async def _run_queue(self) -> None:
        """Execute delayed transactions in arrival order, each at its due time on the trio clock."""
        async for item in self._queue_receive:
            await trio.sleep_until(item.due)
            self._queued -= 1
            if isinstance(item.tx, txs.CreateOrder) and item.tx.client_order_index:
                self._pending_clients[(item.tx.market_index, item.tx.client_order_index)] -= 1
            self._execute(item.tx, item.tx_hash)
            self.flush()

    def _execute(self, tx: txs.Tx, tx_hash: str) -> None:
        self.counters.txs_executed += 1
        try:
            if isinstance(tx, txs.CreateOrder):
                self._create(tx)
            elif isinstance(tx, txs.CancelOrder):
                record = self.account.find_open(tx.market_index, tx.index)
                if record is None:
                    log.info("lighter sim: cancel %s on market %s found no open order", tx.index, tx.market_index)
                    return
                self.exchange.cancel_orders(record.market.symbol, [record.engine_id])
                self.account.sync()
                if record.is_open:
                    self.account.finish(record, "canceled")
            else:  # UpdateLeverage: the engine keeps the leverage too, in order with the account's orders
                self.imf[tx.market_index] = tx.initial_margin_fraction
                self.margin_mode[tx.market_index] = tx.margin_mode
                symbol = self.markets[tx.market_index].symbol
                self.exchange.set_leverage(symbol, max(1, 10_000 // tx.initial_margin_fraction))
        except VenueError as exc:  # a SimExchange-level scripted fault: the transaction is lost
            log.info("lighter sim: transaction %s failed in the engine: %s", tx_hash[:12], exc)

    def _create(self, tx: txs.CreateOrder) -> None:
        market = self.markets[tx.market_index]
        symbol = market.symbol
        if tx.client_order_index and self.account.find_open(tx.market_index, tx.client_order_index):
            log.info("lighter sim: duplicate client order index %s dropped at execution", tx.client_order_index)
            return
        held = self.account.signed_position(symbol)
        size = market.size(tx.base_amount)
        if tx.reduce_only and tx.base_amount == 0:
            size = abs(held)
        record = OrderRecord(
            order_index=self.account.new_order_index(), client_order_index=tx.client_order_index, market=market,
            account_index=self.account_index, is_ask=tx.is_ask, order_type=tx.order_type,
            time_in_force=tx.time_in_force, reduce_only=tx.reduce_only, base_amount=size,
            price=market.price(tx.price), order_expiry=tx.order_expiry, nonce=tx.header.nonce,
            created_ms=self.now_ms(), engine_id="", status="in-progress",
        )  # fmt: skip
        record.engine_id = f"{ENGINE_PREFIX}{record.order_index}"
        self.account.add(record)
        reduces = (held > 0 and tx.is_ask) or (held < 0 and not tx.is_ask)
        if tx.reduce_only and (not reduces or size == 0):
            self.account.finish(record, "canceled-reduce-only")
            return
        mark = self.exchange.engine.mark(symbol)
        if mark is None:
            self.account.finish(record, "canceled-not-enough-liquidity")
            return
        side = OrderSide.SELL if tx.is_ask else OrderSide.BUY
        taker = tx.order_type == ORDER_TYPE_MARKET or tx.time_in_force == ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
        if taker:
            fill = self._taker_price(market, mark, tx.is_ask)
            reachable = record.price <= fill if tx.is_ask else record.price >= fill
            if not reachable:
                status = "canceled-too-much-slippage" if tx.order_type == ORDER_TYPE_MARKET \
                    else "canceled-not-enough-liquidity"  # fmt: skip
                self.account.finish(record, status)
                return
            request = OrderRequest(record.engine_id, symbol, side, "BOTH", OrderType.MARKET, size,
                                   reduce_only=tx.reduce_only)  # fmt: skip
            self._place_at(symbol, fill, mark, request)
        else:
            crosses = record.price <= mark if tx.is_ask else record.price >= mark
            if crosses and tx.time_in_force == ORDER_TIME_IN_FORCE_POST_ONLY:
                self.account.finish(record, "canceled-post-only")
                return
            record.rested = not crosses
            request = OrderRequest(record.engine_id, symbol, side, "BOTH", OrderType.LIMIT, size, price=record.price,
                                   reduce_only=tx.reduce_only)  # fmt: skip
            self._place(request)
        self.account.sync()
        if record.status == "in-progress":  # the engine said nothing (refused): the order is gone
            self.account.finish(record, "canceled")

    def _taker_price(self, market: LighterMarket, mark: Decimal, is_ask: bool) -> Decimal:
        """Where a taker fills on the simulated book: the mark, moved by the configured slippage, on the tick."""
        slip = self._slippage.get(market.symbol, Decimal(0))
        if is_ask:
            return max((mark * (1 - slip) / market.price_unit).to_integral_value(ROUND_FLOOR) * market.price_unit,
                       market.price_unit)  # fmt: skip
        return (mark * (1 + slip) / market.price_unit).to_integral_value(ROUND_CEILING) * market.price_unit

    def _place_at(self, symbol: str, fill: Decimal, mark: Decimal, request: OrderRequest) -> None:
        """A market order filling at ``fill``: the engine fills at its mark, so it sees ``fill`` just for this order."""
        engine = self.exchange.engine
        if fill != mark:
            engine.set_mark(symbol, fill, self.clock(), trade=False)
        try:
            self._place(request)
        finally:
            if fill != mark:
                engine.set_mark(symbol, mark, self.clock(), trade=False)

    def _place(self, request: OrderRequest) -> None:
        (result,) = self.exchange.place_orders([request])
        if isinstance(result, Rejected):
            log.info("lighter sim: engine refused %s: %s", request.client_id, result)

    # ---- websocket pushes -----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Read the engine's events and push what changed to account subscribers (held while stalled)."""
        self.account.sync()
        if self.account_pushes_stalled:
            return  # the changes accumulate and go out in one push when the stall ends
        changes = self.account.take_changes()
        if changes:
            self._push_account(changes)
            if self.push_duplicates > 0:
                self.push_duplicates -= 1
                self._push_account(changes)

    def stall_account_pushes(self, stalled: bool = True) -> None:
        """Hold the account channels' updates while stalled; what changed meanwhile goes out late, merged."""
        self.account_pushes_stalled = stalled
        if not stalled:
            self.flush()

    def duplicate_pushes(self, n: int = 1) -> None:
        """The next ``n`` account updates are pushed twice (a venue re-delivering)."""
        self.push_duplicates += n

    def _push_account(self, changes: Changes) -> None:
        acct = self.account_index
        if self.hub.has_subscribers(f"account_all/{acct}") and (changes.trades or changes.markets):
            markets = sorted(changes.markets | {t.order.market.market_id for t in changes.trades})
            self.hub.publish(f"account_all/{acct}", self.account_all_message(markets, changes.trades, update=True))
        if self.hub.has_subscribers(f"account_all_orders/{acct}") and changes.orders:
            self.hub.publish(f"account_all_orders/{acct}",
                             self.account_orders_message(list(changes.orders.values()), update=True))  # fmt: skip

    def account_all_message(self, market_ids: list[int] | None, trades: Sequence[Any], *, update: bool) -> dict:
        """``account_all``: positions and trades keyed by market id string (all markets when subscribing)."""
        positions = {str(p["market_id"]): p for p in views.positions(self.account, self.imf, market_ids)}
        by_market: dict[str, list[dict]] = {}
        for trade in trades:
            by_market.setdefault(str(trade.order.market.market_id), []).append(trade.to_json())
        return {
            "account": self.account_index, "channel": f"account_all:{self.account_index}",
            "daily_trades_count": 0, "daily_volume": 0, "weekly_trades_count": 0, "weekly_volume": 0,
            "monthly_trades_count": 0, "monthly_volume": 0, "total_trades_count": len(self.account.trades),
            "total_volume": 0, "funding_histories": {}, "positions": positions, "shares": [], "trades": by_market,
            "type": "update/account_all" if update else "subscribed/account_all",
        }  # fmt: skip

    def account_orders_message(self, orders: Sequence[OrderRecord], *, update: bool) -> dict:
        """``account_all_orders``: orders keyed by market id string, each with its status and filled amounts."""
        by_market: dict[str, list[dict]] = {}
        for order in orders:
            by_market.setdefault(str(order.market.market_id), []).append(order.to_json())
        return {"channel": f"account_all_orders:{self.account_index}", "orders": by_market,
                "type": "update/account_all_orders" if update else "subscribed/account_all_orders"}  # fmt: skip

    def publish_marks(self, symbols: Iterable[str | None]) -> None:
        """Push ``market_stats`` for these symbols to ``market_stats/all`` and per-market subscribers."""
        now = self.now_ms()
        stats: dict[str, dict] = {}
        for market in self.markets.values():
            if market.symbol in symbols:
                payload = views.market_stats(self.account, market, now, self.funding_rate, self.funding_interval_ms)
                if payload is not None:
                    stats[str(market.market_id)] = payload
        if not stats:
            return
        if self.hub.has_subscribers("market_stats/all"):
            self.hub.publish("market_stats/all", {"channel": "market_stats:all", "market_stats": stats,
                                                  "type": "update/market_stats"})  # fmt: skip
        for market_id, payload in stats.items():
            self.hub.publish(
                f"market_stats/{market_id}",
                {"channel": f"market_stats:{market_id}", "market_stats": payload, "type": "update/market_stats"},
            )

    # ---- background -----------------------------------------------------------------------------------------

    def create_app(self) -> Starlette:
        from posmon.sim.lighter.app import create_app  # the app's handlers import this module

        return create_app(self)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Delayed transactions, and the engine's price and user events turned into websocket pushes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_queue)
            nursery.start_soon(self._pump_user_events)
            nursery.start_soon(self._pump_prices)
            task_status.started()

    async def _pump_user_events(self) -> None:
        """Wake on any engine user event (a mark move filling a resting order, an external entry) and flush."""
        while True:
            wake = self.exchange.open_user_stream()
            async for _ in wake:
                self.flush()
            await trio.lowlevel.checkpoint()  # drop_streams closed it: listen again

    async def _pump_prices(self) -> None:
        while True:
            prices = self.exchange.open_price_stream()
            async for frame in prices:
                try:
                    data = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, list):
                    self.publish_marks({u.get("s") for u in data if isinstance(u, dict)})
            await trio.lowlevel.checkpoint()

    # ---- auth tokens ----------------------------------------------------------------------------------------

    def check_auth(self, token: str | None, account_index: int) -> None:
        """An auth token from ``CreateAuthToken``: ``deadline:account:api_key:signature``, live and this account's."""
        if not token:
            raise LighterError(e.INVALID_AUTH, "auth token required", status=400)
        parts = token.split(":")
        try:
            deadline, acct, key = int(parts[0]), int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise LighterError(e.INVALID_AUTH, "malformed auth token") from None
        if len(parts) != 4 or not parts[3]:
            raise LighterError(e.INVALID_AUTH, "malformed auth token")
        if acct != account_index or acct != self.account_index:
            raise LighterError(e.INVALID_AUTH, f"auth token is for account {acct}, not {account_index}")
        if key not in self.api_key_indexes:
            raise LighterError(e.INVALID_AUTH, f"auth token names unknown api key {key}")
        wall = self.wall_ms()
        if wall is not None and deadline * 1000 <= wall:
            raise LighterError(e.INVALID_AUTH, f"auth token expired at {deadline}")
