"""The account's orders and trades as Lighter shows them, kept in step with the matching engine.

The engine (through ``SimExchange``) publishes Aster/Binance-shaped user frames for every order
event, whoever caused it: the simulator's own transactions, a resting limit the replayed mark ran
through, or ``external_entry``. The account reads that tap in order and turns each event into
Lighter order statuses and trade records, remembering what changed so the websocket can push it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from posmon.sim.exchange import SimExchange, UserEventTap
from posmon.sim.lighter.markets import LighterMarket
from posmon.sim.lighter.records import ORDER_TYPE_LIQUIDATION, ZERO, OrderRecord, TradeRecord
from posmon.sim.lighter.txs import MIN_ORDER_INDEX

ENGINE_PREFIX = "lo"  # engine client ids of orders placed through the simulator's sendTx
MAX_TRADES = 2000
MAX_INACTIVE = 5000


@dataclass(slots=True)
class Changes:
    """What changed since the websocket last pushed: order records, trades, markets whose position moved."""

    orders: dict[int, OrderRecord] = field(default_factory=dict)
    trades: list[TradeRecord] = field(default_factory=list)
    markets: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.orders or self.trades or self.markets)


class Account:
    """Orders (open and finished), trades and the last seen signed position per market."""

    def __init__(
        self, exchange: SimExchange, markets: Mapping[int, LighterMarket], account_index: int,
        now_ms: Callable[[], int],
    ) -> None:  # fmt: skip
        self.exchange = exchange
        self.markets = dict(markets)
        self.by_symbol = {m.symbol: m for m in markets.values()}
        self.account_index = account_index
        self.now_ms = now_ms
        self.orders: dict[int, OrderRecord] = {}
        self.by_engine_id: dict[str, OrderRecord] = {}
        self.trades: deque[TradeRecord] = deque(maxlen=MAX_TRADES)
        self.changes = Changes()
        self._inactive: deque[int] = deque()
        self._retired: set[int] = set()
        self._order_indexes = itertools.count(MIN_ORDER_INDEX + 1)
        self._counter_indexes = itertools.count(MIN_ORDER_INDEX + 10**9)
        self._trade_ids = itertools.count(1)
        self._signed: dict[str, Decimal] = {}
        self._events = UserEventTap(exchange)

    # ---- orders ---------------------------------------------------------------------------------------------

    def new_order_index(self) -> int:
        return next(self._order_indexes)

    def add(self, record: OrderRecord) -> None:
        self.orders[record.order_index] = record
        self.by_engine_id[record.engine_id] = record
        self.changes.orders[record.order_index] = record
        if not record.is_open:
            self._retire(record)

    def finish(self, record: OrderRecord, status: str) -> None:
        """Give a record its final status (cancelled, refused by the book, ...)."""
        record.status = status
        record.updated_ms = self.now_ms()
        self.changes.orders[record.order_index] = record
        self._retire(record)

    def open_orders(self, market_id: int | None = None) -> list[OrderRecord]:
        return [o for o in self.orders.values() if o.is_open and (market_id is None or o.market.market_id == market_id)]

    def find_open(self, market_id: int, index: int) -> OrderRecord | None:
        """An open order by exchange order index or (a nonzero) client order index."""
        record = self.orders.get(index)
        if record is not None and record.is_open and record.market.market_id == market_id:
            return record
        if index == 0:
            return None
        for record in self.open_orders(market_id):
            if record.client_order_index == index:
                return record
        return None

    def inactive_orders(self, market_id: int | None = None) -> list[OrderRecord]:
        """Finished orders, newest first."""
        found = (self.orders[i] for i in reversed(self._inactive) if i in self.orders)
        return [o for o in found if market_id is None or o.market.market_id == market_id]

    def signed_position(self, symbol: str) -> Decimal:
        """The engine's current signed position (LONG +, SHORT -)."""
        total = ZERO
        for p in self.exchange.engine.positions():
            if p.symbol == symbol:
                total += p.qty * p.side.sign
        return total

    # ---- the engine's events ----------------------------------------------------------------------------------

    def sync(self) -> None:
        """Read every engine event published so far."""
        for data in self._events.read():
            self._observe(data)

    def _observe(self, data: dict[str, Any]) -> None:
        if data.get("e") == "ACCOUNT_UPDATE":
            for entry in (data.get("a") or {}).get("P") or []:
                market = self.by_symbol.get(entry.get("s"))
                if market is not None:
                    self._signed[market.symbol] = Decimal(entry.get("pa", "0"))
                    self.changes.markets.add(market.market_id)
        elif data.get("e") == "ORDER_TRADE_UPDATE" and isinstance(data.get("o"), dict):
            self._order_event(data["o"], int(data.get("E") or self.now_ms()))

    def _order_event(self, o: dict[str, Any], time_ms: int) -> None:
        market = self.by_symbol.get(o.get("s", ""))
        engine_id = o.get("c")
        if market is None or not isinstance(engine_id, str):
            return
        record = self.by_engine_id.get(engine_id)
        if record is None:
            record = self._external(engine_id, market, o, time_ms)
        exec_type, status = o.get("x"), o.get("X")
        record.updated_ms = time_ms
        if exec_type in ("TRADE", "CALCULATED"):  # CALCULATED: the venue's liquidation / ADL closed it
            qty, price = Decimal(o.get("l", "0")), Decimal(o.get("L", "0"))
            before = self._signed.get(market.symbol, ZERO)
            record.filled_base += qty
            if record.price == 0:
                record.price = price  # an external market order: show the price it traded at
            record.filled_quote += qty * price
            trade = TradeRecord(next(self._trade_ids), record, qty, price, record.rested, time_ms,
                                _hash(f"trade:{record.order_index}:{record.filled_base}"),
                                next(self._counter_indexes), before, _trade_kind(o))  # fmt: skip
            self.trades.append(trade)
            self.changes.trades.append(trade)
            self.changes.markets.add(market.market_id)
        if status == "FILLED":
            record.status = "filled"
        elif status == "EXPIRED":
            record.status = "canceled-reduce-only" if record.reduce_only else "canceled-not-enough-liquidity"
        elif status == "CANCELED":
            record.status = "canceled"
        elif exec_type == "NEW" and record.is_open:
            record.status = "open"
        self.changes.orders[record.order_index] = record
        if not record.is_open:
            self._retire(record)

    def _external(self, engine_id: str, market: LighterMarket, o: dict, time_ms: int) -> OrderRecord:
        """An order placed around the protocol (``external_entry``, another trader): give it a Lighter index."""
        price = Decimal(o.get("p") or "0") or Decimal(o.get("L") or "0")
        record = OrderRecord(
            order_index=self.new_order_index(), client_order_index=0, market=market,
            account_index=self.account_index, is_ask=o.get("S") == "SELL",
            order_type=ORDER_TYPE_LIQUIDATION if o.get("o") == "LIQUIDATION" else 1 if o.get("o") == "MARKET" else 0,
            time_in_force=0 if o.get("o") in ("MARKET", "LIQUIDATION") else 1,
            reduce_only=bool(o.get("R")), base_amount=Decimal(o.get("q", "0")), price=price, order_expiry=0,
            nonce=0, created_ms=time_ms, engine_id=engine_id,
        )  # fmt: skip
        self.orders[record.order_index] = record
        self.by_engine_id[engine_id] = record
        return record

    def _retire(self, record: OrderRecord) -> None:
        if record.order_index in self._retired:
            return
        self._retired.add(record.order_index)
        self._inactive.append(record.order_index)
        while len(self._inactive) > MAX_INACTIVE:
            index = self._inactive.popleft()
            self._retired.discard(index)
            old = self.orders.pop(index, None)
            if old is not None:
                self.by_engine_id.pop(old.engine_id, None)

    def take_changes(self) -> Changes:
        changes, self.changes = self.changes, Changes()
        return changes


def _trade_kind(o: dict) -> str:
    """Lighter's trade type: the venue's own closes are liquidations or deleverages (ADL)."""
    if o.get("x") != "CALCULATED":
        return "trade"
    return "deleverage" if str(o.get("c", "")).startswith("adl") else "liquidation"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
