"""A pure matching engine: orders, triggers, fills and positions of one simulated account.

No I/O, no trio, time comes in as a float: so every rule of the venue that the
daemon relies on (triggers, reduce-only clamping, realized PnL, error codes) can
be tested exhaustively and replayed deterministically. Fills are complete at one
price, the mark, because the sim has no order book.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from posmon.domain.orders import (
    OrderRequest,
    OrderSide,
    OrderState,
    OrderStatus,
    OrderType,
    PositionState,
    Side,
    SymbolRules,
)
from posmon.exchange.errors import DuplicateClientId, OrderNotFound, Rejected
from posmon.exchange.events import OrderUpdate, PositionUpdate
from posmon.sim import validation as v

ZERO = Decimal(0)
DEFAULT_LEVERAGE = 20  # a symbol's leverage until the account sets one (Binance's and Aster's default)
DEFAULT_MAX_LEVERAGE = 50  # the highest leverage a symbol accepts unless the simulator says otherwise
HISTORY_LENGTH = 1000  # account actions kept for tests to check their order (bounded: chaos runs are long)

EngineEvent = OrderUpdate | PositionUpdate


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill as the account saw it: which order, and the signed position of its side before and after.

    A chaos campaign's evidence for "no order executed twice" and "no reduce-only close went past zero": the
    position is per (symbol, position side) in hedge mode, the symbol's net position in one-way mode.
    """

    client_id: str
    symbol: str
    position_side: str
    reduce_only: bool
    qty: Decimal
    before: Decimal
    after: Decimal


@dataclass(slots=True)
class _Order:
    """The engine's mutable record of one accepted order."""

    request: OrderRequest
    order_id: str
    status: OrderStatus = OrderStatus.NEW
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO

    def state(self) -> OrderState:
        r = self.request
        return OrderState(
            client_id=r.client_id,
            order_id=self.order_id,
            symbol=r.symbol,
            side=r.side,
            position_side=r.position_side,
            type=r.type,
            status=self.status,
            qty=r.qty,
            filled_qty=self.filled_qty,
            avg_price=self.avg_price,
            price=r.price,
            stop_price=r.stop_price,
            reduce_only=r.reduce_only,
        )


class MatchingEngine:
    """One account on a venue with one price per symbol (the mark).

    Hedge mode keeps a LONG and a SHORT position per symbol; one-way mode keeps a
    signed net position (stored as at most one LONG or SHORT entry). Closing
    fills are clamped to the open quantity, so no order ever flips a hedge-mode
    position or a one-way position through a reduce-only order.
    """

    def __init__(
        self, rules: Mapping[str, SymbolRules], *, hedge_mode: bool = True, bounded_market: bool = False
    ) -> None:
        self.rules: dict[str, SymbolRules] = dict(rules)
        self.hedge_mode = hedge_mode
        # Lighter-style market orders: ``price`` is the worst acceptable fill; what cannot fill within it expires.
        self.bounded_market = bounded_market
        self._impact: dict[str, Decimal] = {}  # symbol -> % a market order fills through the mark (thin book)
        self._ids = itertools.count(1)
        self._orders: dict[str, _Order] = {}  # every accepted order, by client id
        self._open: dict[str, dict[str, _Order]] = {}  # symbol -> client id -> resting order, in placement order
        self._positions: dict[tuple[str, Side], PositionState] = {}
        self._marks: dict[str, Decimal] = {}
        self._realized: dict[str, Decimal] = {}
        self._events: list[EngineEvent] = []
        self.fill_listener: Callable[[Fill], None] | None = None  # told of every fill (chaos invariants)
        self._leverage: dict[str, int] = {}
        self._max_leverage: dict[str, int] = {}
        # What the account was told, oldest first: ("leverage", symbol, "7") and ("order", symbol, client id).
        # Lets a test prove a leverage change reached the venue before the entry it was meant for.
        self.history: deque[tuple[str, str, str]] = deque(maxlen=HISTORY_LENGTH)

    # ---- orders -------------------------------------------------------------------------------------------------

    def place(self, order: OrderRequest, now: float) -> OrderState:
        """Accept (NEW), then fill at once if the order is marketable; returns the state after that."""
        if order.client_id in self._orders:
            raise DuplicateClientId(f"ClientOrderId is duplicated: {order.client_id!r}.", code=v.DUPLICATE_CLIENT_ID)
        mark = self._marks.get(order.symbol)
        v.check_order(order, self.rules, mark, hedge_mode=self.hedge_mode, bounded_market=self.bounded_market)
        record = _Order(order, str(next(self._ids)))
        self._orders[order.client_id] = record
        self.history.append(("order", order.symbol, order.client_id))
        self._emit_order(record, "NEW", now)
        if order.type is OrderType.MARKET:
            assert mark is not None  # validation rejects a market order without a mark
            price = self._market_fill_price(order, mark)
            if (
                self.bounded_market
                and order.price is not None
                and (price > order.price if order.side is OrderSide.BUY else price < order.price)
            ):
                record.status = OrderStatus.EXPIRED  # nothing fills within the bound: IOC, so it ends here
                self._emit_order(record, "EXPIRED", now)
            else:
                self._execute(record, price, now)
        elif order.type is OrderType.LIMIT and mark is not None and v.limit_crosses(order, mark):
            self._execute(record, mark, now)
        else:
            self._open.setdefault(order.symbol, {})[order.client_id] = record
        return record.state()

    def set_market_impact(self, symbol: str, pct: Decimal) -> None:
        """Make the book thin: market orders fill ``pct`` % through the mark (against the taker)."""
        self._impact[symbol] = pct

    def _market_fill_price(self, order: OrderRequest, mark: Decimal) -> Decimal:
        impact = self._impact.get(order.symbol)
        if not impact:
            return mark
        sign = 1 if order.side is OrderSide.BUY else -1
        return (mark * (100 + sign * impact) / 100).quantize(self.rules[order.symbol].tick_size)

    def cancel(self, symbol: str, client_id: str, now: float) -> OrderState:
        """Cancel a resting order; ``OrderNotFound`` (-2011) when it is unknown or no longer open."""
        record = self._open.get(symbol, {}).pop(client_id, None)
        if record is None:
            raise OrderNotFound(f"Unknown order sent: {symbol} {client_id!r} is not open.", code=v.UNKNOWN_ORDER)
        record.status = OrderStatus.CANCELED
        self._emit_order(record, "CANCELED", now)
        return record.state()

    def query(self, symbol: str, client_id: str) -> OrderState:
        """Any order ever accepted, final or not; ``OrderNotFound`` (-2013) if never seen."""
        record = self._orders.get(client_id)
        if record is None or record.request.symbol != symbol:
            raise OrderNotFound(f"Order does not exist: {symbol} {client_id!r}.", code=v.NO_SUCH_ORDER)
        return record.state()

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Resting orders (of one symbol or all), oldest first."""
        if symbol is not None:
            return [r.state() for r in self._open.get(symbol, {}).values()]
        records = [r for book in self._open.values() for r in book.values()]
        records.sort(key=lambda r: int(r.order_id))
        return [r.state() for r in records]

    # ---- leverage -----------------------------------------------------------------------------------------------

    def leverage(self, symbol: str) -> int:
        """The symbol's leverage on this account (``DEFAULT_LEVERAGE`` until one is set)."""
        return self._leverage.get(symbol, DEFAULT_LEVERAGE)

    def max_leverage(self, symbol: str) -> int:
        return self._max_leverage.get(symbol, DEFAULT_MAX_LEVERAGE)

    def set_max_leverage(self, symbol: str, leverage: int) -> None:
        """The venue's cap for ``symbol`` (a simulator's market table says it, e.g. Lighter's minimum IMF)."""
        if leverage < 1:
            raise ValueError(f"a maximum leverage is >= 1, got {leverage}")
        self._max_leverage[symbol] = leverage

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set ``symbol``'s leverage (positions of it included, as on a cross-margin account); 1..max, else -4028.

        Binance's and Aster's rule: an integer from 1 to the symbol's maximum; setting the current value again
        is a success.
        """
        if symbol not in self.rules:
            raise Rejected(f"Invalid symbol {symbol!r}.", code=v.BAD_SYMBOL)
        top = self.max_leverage(symbol)
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= top:
            raise Rejected(f"Leverage {leverage} is not valid (1 to {top} for {symbol}).", code=v.BAD_LEVERAGE)
        self._leverage[symbol] = leverage
        self.history.append(("leverage", symbol, str(leverage)))
        return leverage

    # ---- positions and prices -----------------------------------------------------------------------------------

    def positions(self) -> list[PositionState]:
        """Every non-zero position."""
        return list(self._positions.values())

    def position(self, symbol: str, side: Side) -> PositionState | None:
        return self._positions.get((symbol, side))

    def realized_pnl(self, symbol: str) -> Decimal:
        """Sum of the realized PnL of every closing fill in ``symbol``."""
        return self._realized.get(symbol, ZERO)

    def mark(self, symbol: str) -> Decimal | None:
        return self._marks.get(symbol)

    def adjust_position(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        now: float,
        *,
        emit: bool = True,
    ) -> PositionState:
        """Set ``side``'s position to ``qty`` with no order at all (a liquidation, ADL, a close elsewhere).

        Growth enters at the mark (averaged into the entry), a shrink realizes PnL at the mark. ``emit``: the
        account's position frame goes out (ACCOUNT_UPDATE only); without it nothing tells the client.
        """
        if symbol not in self.rules:
            raise Rejected(f"Invalid symbol {symbol!r}.", code=v.BAD_SYMBOL)
        if qty < 0:
            raise ValueError(f"a position quantity is >= 0, got {qty}")
        other = Side.SHORT if side is Side.LONG else Side.LONG
        if not self.hedge_mode and qty > 0 and (symbol, other) in self._positions:
            raise ValueError(f"one-way mode: {symbol} holds the other side; flatten it first")
        held = self._positions.get((symbol, side))
        old_qty, old_entry = (held.qty, held.entry_price) if held else (ZERO, ZERO)
        mark = self._marks.get(symbol, old_entry)
        entry = old_entry
        if qty > old_qty:
            entry = (old_qty * old_entry + (qty - old_qty) * mark) / qty
        elif qty < old_qty:
            pnl = side.sign * (mark - old_entry) * (old_qty - qty)
            self._realized[symbol] = self._realized.get(symbol, ZERO) + pnl
        position = self._set_position(symbol, side, qty, entry)
        if emit:
            self._events.append(PositionUpdate(position, now))
        return position

    def next_order_id(self) -> str:
        """A fresh venue order id, for orders the venue itself executes (liquidations)."""
        return str(next(self._ids))

    def set_mark(self, symbol: str, price: Decimal, now: float, *, trade: bool = True) -> None:
        """Move the mark and fill every resting order of the symbol it triggers, oldest first.

        ``trade=False`` moves only the mark: resting limits do not fill (the book did not
        trade there), as when a spike in the mark runs through a TP limit that never trades.
        Stop triggers follow the mark either way.
        """
        if symbol not in self.rules:
            raise Rejected(f"Invalid symbol {symbol!r}.", code=v.BAD_SYMBOL)
        if price <= 0:
            raise ValueError(f"mark price must be positive, got {price}")
        self._marks[symbol] = price
        book = self._open.get(symbol)
        if not book:
            return
        for client_id, record in list(book.items()):
            if not trade and record.request.type is OrderType.LIMIT:
                continue
            fill_price = _fill_price(record.request, price)
            if fill_price is not None:
                del book[client_id]
                self._execute(record, fill_price, now)

    def drain_events(self) -> list[EngineEvent]:
        """The user-stream events since the last drain, oldest first."""
        events, self._events = self._events, []
        return events

    # ---- internals ----------------------------------------------------------------------------------------------

    def _split(self, request: OrderRequest, qty: Decimal) -> tuple[Side | None, Decimal, Side | None, Decimal]:
        """(side closed, qty closed, side opened, qty opened) if ``qty`` of ``request`` filled now."""
        symbol = request.symbol
        if self.hedge_mode:
            side = Side(request.position_side)
            if request.side is side.opening_order_side:
                return None, ZERO, side, qty
            held = self._positions.get((symbol, side))
            return side, min(qty, held.qty if held else ZERO), None, ZERO
        opens = Side.LONG if request.side is OrderSide.BUY else Side.SHORT
        held_side = Side.SHORT if opens is Side.LONG else Side.LONG
        held = self._positions.get((symbol, held_side))
        close = min(qty, held.qty) if held else ZERO
        rest = ZERO if request.reduce_only else qty - close
        return held_side, close, opens, rest

    def trade_partially(self, symbol: str, client_id: str, qty: Decimal, now: float) -> OrderState:
        """A resting LIMIT trades ``qty`` at its price and keeps resting for the rest (a thin book)."""
        record = self._open.get(symbol, {}).get(client_id)
        if record is None or record.request.type is not OrderType.LIMIT:
            raise OrderNotFound(f"no resting limit order {client_id!r}", code=v.UNKNOWN_ORDER)
        if not ZERO < qty < record.request.qty - record.filled_qty:
            raise ValueError(f"a partial trade must be below the open quantity, got {qty}")
        assert record.request.price is not None
        self._execute(record, record.request.price, now, qty=qty, keep_open=True)
        return record.state()

    def _execute(
        self, record: _Order, price: Decimal, now: float, *, qty: Decimal | None = None, keep_open: bool = False
    ) -> None:
        """Fill what the position allows at ``price``; expire the rest (reduce-only / closing clamp).

        ``qty``/``keep_open``: trade only that much and leave the order resting (``trade_partially``).
        """
        request = record.request
        want = request.qty - record.filled_qty if qty is None else qty
        closed_side, close_qty, opened_side, open_qty = self._split(request, want)
        fill = close_qty + open_qty
        if fill == 0:
            record.status = OrderStatus.EXPIRED
            self._emit_order(record, "EXPIRED", now)
            return
        symbol = request.symbol
        before = self._signed(symbol, request.position_side) if self.fill_listener is not None else ZERO
        pnl = ZERO
        changed: list[PositionState] = []
        if close_qty and closed_side is not None:
            closing = self._positions[(symbol, closed_side)]
            pnl = closed_side.sign * (price - closing.entry_price) * close_qty
            changed.append(self._set_position(symbol, closed_side, closing.qty - close_qty, closing.entry_price))
            self._realized[symbol] = self._realized.get(symbol, ZERO) + pnl
        if open_qty and opened_side is not None:
            held = self._positions.get((symbol, opened_side))
            old_qty, old_entry = (held.qty, held.entry_price) if held else (ZERO, ZERO)
            new_qty = old_qty + open_qty
            entry = (old_qty * old_entry + open_qty * price) / new_qty
            changed.append(self._set_position(symbol, opened_side, new_qty, entry))
        record.avg_price = (record.avg_price * record.filled_qty + price * fill) / (record.filled_qty + fill)
        record.filled_qty += fill
        complete = record.filled_qty == request.qty
        record.status = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
        self._emit_order(record, "TRADE", now, last_qty=fill, last_price=price, realized_pnl=pnl)
        self._events.extend(PositionUpdate(position, now) for position in changed)
        if self.fill_listener is not None:
            self.fill_listener(
                Fill(
                    request.client_id,
                    symbol,
                    request.position_side,
                    request.reduce_only,
                    fill,
                    before,
                    self._signed(symbol, request.position_side),
                )
            )
        if not complete and not (keep_open and fill == want):
            self._open.get(symbol, {}).pop(request.client_id, None)
            record.status = OrderStatus.EXPIRED
            self._emit_order(record, "EXPIRED", now)

    def _signed(self, symbol: str, position_side: str) -> Decimal:
        """The signed position an order of ``position_side`` acts on (the net one in one-way mode)."""
        sides = (Side(position_side),) if self.hedge_mode and position_side != "BOTH" else (Side.LONG, Side.SHORT)
        total = ZERO
        for side in sides:
            held = self._positions.get((symbol, side))
            if held is not None:
                total += side.sign * held.qty
        return total

    def _set_position(self, symbol: str, side: Side, qty: Decimal, entry: Decimal) -> PositionState:
        if qty == 0:
            self._positions.pop((symbol, side), None)
            return PositionState(symbol, side, ZERO, ZERO)
        position = PositionState(symbol, side, qty, entry)
        self._positions[(symbol, side)] = position
        return position

    def _emit_order(
        self,
        record: _Order,
        exec_type: str,
        now: float,
        *,
        last_qty: Decimal = ZERO,
        last_price: Decimal = ZERO,
        realized_pnl: Decimal = ZERO,
    ) -> None:
        r = record.request
        self._events.append(
            OrderUpdate(
                symbol=r.symbol,
                client_id=r.client_id,
                order_id=record.order_id,
                side=r.side,
                position_side=r.position_side,
                type=r.type,
                status=record.status,
                exec_type=exec_type,
                qty=r.qty,
                filled_qty=record.filled_qty,
                last_qty=last_qty,
                last_price=last_price,
                avg_price=record.avg_price,
                reduce_only=r.reduce_only,
                realized_pnl=realized_pnl,
                time=now,
            )
        )


def _fill_price(request: OrderRequest, mark: Decimal) -> Decimal | None:
    """The price a resting order fills at when the mark moves to ``mark``, or None if it stays."""
    if request.type is OrderType.LIMIT:
        assert request.price is not None
        return request.price if v.limit_crosses(request, mark) else None
    if request.type is OrderType.MARKET:
        return mark
    return mark if v.would_trigger(request, mark) else None
