"""Lighter JSON <-> posmon's domain types: orders, positions, mark prices and websocket frames.

Numbers arrive as decimal strings and become ``Decimal`` straight from the string. Anything that is not what
the protocol says raises ``MalformedMessage`` naming the field and the value. Shapes (lighter-sdk 1.1.8
models and the live stream):

- order (``Order``, REST and ``account_all_orders``): ``order_index``, ``client_order_index``, ``market_index``,
  ``initial_base_amount``, ``filled_base_amount``, ``filled_quote_amount``, ``price``, ``is_ask``, ``type``
  (limit, market, stop-loss, ...), ``time_in_force``, ``reduce_only``, ``trigger_price``, ``status``
  (in-progress, pending, open, filled, canceled, canceled-<reason>);
- ``update/account_all``: ``positions`` keyed by market id (``sign`` 1/-1, unsigned ``position``,
  ``avg_entry_price``), plus ``trades`` and ``funding_histories`` posmon does not read;
- ``update/account_all_orders``: ``orders`` keyed by market id, each a list of orders that changed;
- ``update/market_stats``: ``market_stats`` is one market's object, or (channel ``market_stats:all``) a dict
  of them keyed by market id; frames carry ``timestamp`` in milliseconds.

Lighter reports cumulative fills per order, posmon's ``OrderUpdate`` also wants the fill each update adds:
``FillTracker`` remembers each order's last cumulative amounts to tell them.

The hot frame, ``update/market_stats``, is first decoded with msgspec into typed structs (types and bounds checked
in C, the many fields posmon does not read skipped); anything that path does not accept in full goes to the
field-by-field path, which decides as before (see ``posmon/exchange/aster/codec.py`` for the same pattern).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import orjson

from posmon.domain.orders import OrderSide, OrderState, OrderStatus, OrderType, PositionState, Side
from posmon.exchange import fields
from posmon.exchange.events import MalformedMessage, MarkPrice, OrderUpdate, PositionUpdate, UserEvent
from posmon.exchange.lighter.client_ids import ClientIds
from posmon.exchange.lighter.markets import MarketTable

__all__ = [
    "FillTracker",
    "LighterOrder",
    "frame_type",
    "load_json",
    "open_order_markets",
    "order_update",
    "parse_account_positions",
    "parse_mark_prices",
    "parse_order",
    "parse_orders",
    "parse_price_frame",
    "parse_user_frame",
]

_LIVE = frozenset({"in-progress", "pending", "open"})
_TYPES = {
    "limit": OrderType.LIMIT,
    "market": OrderType.MARKET,
    "stop-loss": OrderType.STOP_MARKET,
    "take-profit": OrderType.TAKE_PROFIT_MARKET,
    # Other programs' orders map onto the posmon type that executes alike.
    "stop-loss-limit": OrderType.LIMIT,
    "take-profit-limit": OrderType.LIMIT,
    "twap": OrderType.MARKET,
    "twap-sub": OrderType.MARKET,
    "liquidation": OrderType.MARKET,
}


def load_json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"{what} is not JSON ({exc}): {body[:200]!r}") from exc


# ---- orders ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LighterOrder:
    """One order as Lighter reports it, with the cumulative quote amount kept for fill prices."""

    state: OrderState
    order_index: int
    client_order_index: int
    market_id: int
    filled_quote: Decimal
    time: float | None
    forced: str | None = None  # "LIQUIDATION" for the venue's liquidation orders (type "liquidation")


def parse_order(data: Any, markets: MarketTable, ids: ClientIds) -> LighterOrder | None:
    """One order; None for a market posmon does not know (a listing newer than its market table)."""
    o = fields.as_object(data, "order")
    market_id = _int(o, "market_index")
    symbol = markets.symbol_of(market_id)
    if symbol is None:
        return None
    order_index = _int(o, "order_index")
    client_index = _int(o, "client_order_index")
    qty = _amount(o, "initial_base_amount")
    filled = _amount(o, "filled_base_amount")
    quote = _amount(o, "filled_quote_amount")
    if filled > 0 and quote <= 0:
        raise MalformedMessage(f"filled {filled} for a quote amount of {quote}: no fill price in {fields.show(o)}")
    is_ask = o.get("is_ask")
    reduce_only = o.get("reduce_only", False)
    if not isinstance(is_ask, bool) or not isinstance(reduce_only, bool):
        raise MalformedMessage(f"'is_ask'/'reduce_only' are not booleans in {fields.show(o)}")
    kind = _word(o, "type")
    if kind not in _TYPES:
        raise MalformedMessage(f"unknown order type {fields.show(kind)}")
    price = _amount(o, "price") if "price" in o else Decimal(0)
    trigger = _amount(o, "trigger_price") if o.get("trigger_price") not in (None, "") else Decimal(0)
    state = OrderState(
        client_id=ids.client_id(client_index, order_index),
        order_id=str(order_index),
        symbol=symbol,
        side=OrderSide.SELL if is_ask else OrderSide.BUY,
        position_side="BOTH",
        type=_TYPES[kind],
        status=_status(o, filled),
        qty=qty,
        filled_qty=filled,
        avg_price=fields.derived(quote / filled, "average fill price") if filled > 0 else Decimal(0),
        price=price if price > 0 else None,
        stop_price=trigger if trigger > 0 else None,
        reduce_only=reduce_only,
    )
    return LighterOrder(
        state,
        order_index,
        client_index,
        market_id,
        quote,
        _order_time(o),
        "LIQUIDATION" if kind == "liquidation" else None,
    )


def parse_orders(data: Any, markets: MarketTable, ids: ClientIds) -> list[LighterOrder]:
    """``accountActiveOrders`` / ``accountInactiveOrders``: ``{code, orders: [...]}``."""
    answer = fields.as_object(data, "orders answer")
    items = fields.required(answer, "orders")
    if not isinstance(items, list):
        raise MalformedMessage(f"'orders' is not a list: {fields.show(items)}")
    return [o for item in items if (o := parse_order(item, markets, ids)) is not None]


def _status(o: dict[str, Any], filled: Decimal) -> OrderStatus:
    status = _word(o, "status")
    if status in _LIVE:
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    if status == "filled":
        return OrderStatus.FILLED
    if status.startswith("canceled"):
        # An IOC (market) order's unfilled rest ends as EXPIRED, as on Binance-family venues; so does an expiry.
        ioc = _word(o, "time_in_force") == "immediate-or-cancel" if "time_in_force" in o else False
        return OrderStatus.EXPIRED if ioc or status == "canceled-expired" else OrderStatus.CANCELED
    raise MalformedMessage(f"unknown order status {fields.show(status)}")


def _word(o: dict[str, Any], key: str) -> str:
    """An enum string; the stream writes some with underscores where the REST models use hyphens."""
    return fields.text(o, key).lower().replace("_", "-")


def _order_time(o: dict[str, Any]) -> float | None:
    for key in ("transaction_time", "updated_at", "timestamp", "created_at"):
        value = o.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= fields.MAX_INT:
            return _epoch_seconds(value)
    return None


def _epoch_seconds(value: int) -> float:
    """Lighter mixes seconds, milliseconds and microseconds; tell them apart by size."""
    if value >= 10**14:
        return value / 1_000_000
    if value >= 10**11:
        return value / 1000
    return float(value)


class FillTracker:
    """Each order's last cumulative fill, so an update can say what it added (``last_qty`` at ``last_price``).

    Orders that ended are remembered a while longer (``keep`` of them) so a repeated final update is not
    taken for a second fill. It also remembers which of the account's orders the venue's forced trades
    (``account_all`` trades of type ``liquidation`` / ``deleverage``) name, so their order updates say so.
    """

    def __init__(self, keep: int = 10_000) -> None:
        self._seen: OrderedDict[int, tuple[Decimal, Decimal]] = OrderedDict()
        self._forced: OrderedDict[int, str] = OrderedDict()
        self._keep = keep

    def note_forced(self, order_index: int, kind: str) -> None:
        """``kind`` ("LIQUIDATION" / "ADL") for an order a forced trade of the account named."""
        self._forced.pop(order_index, None)
        self._forced[order_index] = kind
        while len(self._forced) > self._keep:
            self._forced.popitem(last=False)

    def forced(self, order: LighterOrder) -> str | None:
        """What a forced trade said of this order (ADL is only told by trades), else what its type says."""
        return self._forced.get(order.order_index, order.forced)

    def baseline(self, order: LighterOrder) -> None:
        """Record an order's amounts without reporting a fill (a subscription snapshot, a REST read)."""
        self._remember(order)

    def update(self, order: LighterOrder) -> tuple[Decimal, Decimal]:
        """``(last_qty, last_price)`` this update adds; (0, 0) when it adds nothing."""
        fill = self.peek(order)
        self._remember(order)
        return fill

    def peek(self, order: LighterOrder) -> tuple[Decimal, Decimal]:
        """What ``update`` would report, remembering nothing; ``MalformedMessage`` for a fill with no price."""
        base, quote = self._seen.get(order.order_index, (Decimal(0), Decimal(0)))
        added = order.state.filled_qty - base
        if added <= 0:
            return Decimal(0), Decimal(0)
        paid = order.filled_quote - quote
        if paid <= 0:
            raise MalformedMessage(f"order {order.order_index} filled {added} more for a quote amount of {paid}")
        return added, fields.derived(paid / added, f"fill price of order {order.order_index}")

    def _remember(self, order: LighterOrder) -> None:
        base, quote = self._seen.pop(order.order_index, (Decimal(0), Decimal(0)))
        self._seen[order.order_index] = (max(base, order.state.filled_qty), max(quote, order.filled_quote))
        while len(self._seen) > self._keep:
            self._seen.popitem(last=False)


def order_update(order: LighterOrder, last_qty: Decimal, last_price: Decimal, time: float) -> OrderUpdate:
    s = order.state
    if last_qty > 0:
        exec_type = "TRADE"
    else:
        exec_type = {
            OrderStatus.CANCELED: "CANCELED",
            OrderStatus.EXPIRED: "EXPIRED",
            OrderStatus.REJECTED: "REJECTED",
        }.get(s.status, "NEW")
    return OrderUpdate(
        symbol=s.symbol,
        client_id=s.client_id,
        order_id=s.order_id,
        side=s.side,
        position_side="BOTH",
        type=s.type,
        status=s.status,
        exec_type=exec_type,
        qty=s.qty,
        filled_qty=s.filled_qty,
        last_qty=last_qty,
        last_price=last_price,
        avg_price=s.avg_price,
        reduce_only=s.reduce_only,
        realized_pnl=Decimal(0),
        time=order.time or time,
        forced=order.forced,
    )


# ---- positions and prices -------------------------------------------------------------------------------------


def _position(entry: dict[str, Any], markets: MarketTable) -> list[PositionState]:
    """One account position; a flat one is flat on both sides (one-way account), so it gives two."""
    symbol = markets.symbol_of(_int(entry, "market_id"))
    if symbol is None:
        return []
    qty = _amount(entry, "position")
    if qty == 0:
        return [PositionState(symbol, side, Decimal(0), Decimal(0)) for side in Side]
    sign = fields.required(entry, "sign")
    if sign not in (1, -1) or isinstance(sign, bool):
        raise MalformedMessage(f"position 'sign' is not 1 or -1: {fields.show(sign)}")
    entry_price = _amount(entry, "avg_entry_price")
    return [PositionState(symbol, Side.LONG if sign == 1 else Side.SHORT, qty, entry_price)]


def parse_account_positions(data: Any, markets: MarketTable) -> list[PositionState]:
    """``GET /api/v1/account?by=index``: every non-zero position of the (first) account."""
    answer = fields.as_object(data, "account answer")
    accounts = fields.required(answer, "accounts")
    if not isinstance(accounts, list) or not accounts:
        raise MalformedMessage(f"'accounts' is not a non-empty list: {fields.show(accounts)}")
    positions = fields.as_list(fields.as_object(accounts[0], "account").get("positions") or [], "'positions'")
    return [p for item in positions for p in _position(fields.as_object(item, "position"), markets) if p.qty > 0]


def parse_account_collateral(data: Any) -> Decimal:
    """``GET /api/v1/account?by=index``: the (first) account's ``collateral``, what it holds in USDC.

    Collateral, not the total asset value (collateral plus unrealized PnL): the risk limits measure a stop's
    loss against what the account holds, as Aster's wallet balance does.
    """
    answer = fields.as_object(data, "account answer")
    accounts = fields.required(answer, "accounts")
    if not isinstance(accounts, list) or not accounts:
        raise MalformedMessage(f"'accounts' is not a non-empty list: {fields.show(accounts)}")
    return fields.decimal(fields.as_object(accounts[0], "account"), "collateral")


def open_order_markets(data: Any) -> list[int]:
    """Market ids where the account answer says orders are open (``open_order_count`` / ``pending_order_count``)."""
    answer = fields.as_object(data, "account answer")
    accounts = fields.required(answer, "accounts")
    if not isinstance(accounts, list) or not accounts:
        raise MalformedMessage(f"'accounts' is not a non-empty list: {fields.show(accounts)}")
    out = []
    for item in fields.as_list(fields.as_object(accounts[0], "account").get("positions") or [], "'positions'"):
        entry = fields.as_object(item, "position")
        counts = [entry.get(k, 0) for k in ("open_order_count", "pending_order_count", "position_tied_order_count")]
        if any(isinstance(c, int) and c > 0 for c in counts):
            out.append(_int(entry, "market_id"))
    return out


def parse_mark_prices(data: Any, markets: MarketTable, now: float) -> list[MarkPrice]:
    """Mark prices from ``orderBookDetails`` (the REST fallback while the stream is down)."""
    answer = fields.as_object(data, "orderBookDetails answer")
    items = fields.required(answer, "order_book_details")
    if not isinstance(items, list):
        raise MalformedMessage(f"'order_book_details' is not a list: {fields.show(items)}")
    out = []
    for item in items:
        entry = fields.as_object(item, "order book detail")
        if entry.get("market_type", "perp") != "perp" or "mark_price" not in entry:
            continue
        mark = _mark(entry, markets, now)
        if mark is not None:
            out.append(mark)
    return out


def _mark(entry: dict[str, Any], markets: MarketTable, now: float) -> MarkPrice | None:
    symbol = markets.symbol_of(_int(entry, "market_id"))
    price = _amount(entry, "mark_price")  # "0": no mark yet, left out
    if symbol is None or price == 0:
        return None
    return MarkPrice(symbol, price, now, *funding_of(entry.get("current_funding_rate"), entry.get("funding_timestamp")))


def funding_of(rate: Any, next_ms: Any) -> tuple[Decimal | None, float | None]:
    """``market_stats``' funding rate in force (``current_funding_rate``, read as a fraction of the notional) and
    the next funding time (``funding_timestamp``, always milliseconds: not told apart by size, a simulator's early
    clock would read as seconds), both or neither: a missing or unreadable field leaves the
    mark without funding (the mark itself still counts)."""
    return fields.funding(rate, next_ms, "current_funding_rate")


# ---- websocket frames -----------------------------------------------------------------------------------------


def frame_type(data: dict[str, Any]) -> str:
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedMessage(f"frame without a 'type' string: {fields.show(data)}")
    return kind


def _frame_time(data: dict[str, Any], now: float) -> float:
    value = data.get("timestamp")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= fields.MAX_INT:
        return _epoch_seconds(value)
    return now


def parse_price_frame(frame: bytes, markets: MarketTable, now: float) -> list[MarkPrice]:
    """``update/market_stats`` (one market or ``all``); [] for connected/subscribed acks, pings and pongs."""
    if frame.isascii():
        try:
            typed = _STATS_FRAME.decode(frame)
        except (msgspec.MsgspecError, ValueError, RecursionError):
            pass  # another frame type, or something wrong: the field-by-field path decides
        else:
            marks = _typed_marks(typed, markets, now)
            if marks is not None:
                return marks
    return parse_price_frame_by_field(frame, markets, now)


def parse_price_frame_by_field(frame: bytes, markets: MarketTable, now: float) -> list[MarkPrice]:
    """``parse_price_frame`` for any frame, checked field by field (the reference the typed path must match)."""
    data = fields.as_object(load_json(frame, "price frame"), "price frame")
    kind = frame_type(data)
    if kind == "error" or "error" in data:
        raise MalformedMessage(f"price stream answered with an error: {fields.show(data)}")
    if kind not in ("update/market_stats", "subscribed/market_stats"):
        return []
    stats = fields.as_object(fields.required(data, "market_stats"), "'market_stats'")
    entries = [stats] if "market_id" in stats else [fields.as_object(v, "market stats") for v in stats.values()]
    at = _frame_time(data, now)
    return [m for e in entries if (m := _mark(e, markets, at)) is not None]


class _Stats(msgspec.Struct, gc=False):
    """One market's ``market_stats``: only what posmon reads."""

    market_id: Annotated[int, msgspec.Meta(ge=0, le=fields.MAX_INT)]
    mark_price: str
    current_funding_rate: Any = None  # judged by ``funding_of``, as the field-by-field path does
    funding_timestamp: Any = None


class _StatsFrame(msgspec.Struct, gc=False):
    """A ``market_stats:all`` frame; ``error``/``timestamp`` kept as given for the field-by-field path's rules."""

    type: Literal["update/market_stats", "subscribed/market_stats"]
    market_stats: dict[str, _Stats]
    timestamp: Any = None
    error: Any = msgspec.UNSET


_STATS_FRAME = msgspec.json.Decoder(_StatsFrame)


def _typed_marks(frame: _StatsFrame, markets: MarketTable, now: float) -> list[MarkPrice] | None:
    """The marks of a typed frame; None when it needs the field-by-field path (an error, one market, a notation)."""
    if frame.error is not msgspec.UNSET or "market_id" in frame.market_stats:
        return None
    at = _frame_time({"timestamp": frame.timestamp}, now)
    out = []
    for entry in frame.market_stats.values():
        price = fields.plain_decimal(entry.mark_price)
        if price is None or price < 0:
            return None
        symbol = markets.symbol_of(entry.market_id)
        if symbol is not None and price:
            funding = funding_of(entry.current_funding_rate, entry.funding_timestamp)
            out.append(MarkPrice(symbol, price, at, *funding))
    return out


def parse_user_frame(
    frame: bytes, markets: MarketTable, ids: ClientIds, fills: FillTracker, now: float
) -> list[UserEvent]:
    """Orders (``account_all_orders``) and positions (``account_all``); [] for acks, pings and other channels.

    A ``subscribed/...`` frame is the channel's snapshot: its orders set the fill baseline and report no
    fill (the daemon reconciles the account after every reconnect); ``update/...`` frames report fills.
    """
    data = fields.as_object(load_json(frame, "user frame"), "user frame")
    kind = frame_type(data)
    if kind == "error" or "error" in data:
        raise MalformedMessage(f"user stream answered with an error: {fields.show(data)}")
    at = _frame_time(data, now)
    if kind in ("update/account_all_orders", "subscribed/account_all_orders"):
        return _order_events(data, markets, ids, fills, at, snapshot=kind.startswith("subscribed/"))
    if kind in ("update/account_all", "subscribed/account_all"):
        positions = data.get("positions") or {}
        if not isinstance(positions, dict):
            raise MalformedMessage(f"'positions' is not an object keyed by market id: {fields.show(positions)}")
        updates: list[UserEvent] = [
            PositionUpdate(p, at)
            for entry in positions.values()
            for p in _position(fields.as_object(entry, "position"), markets)
        ]
        for order_index, forced in _forced_trades(data):  # after the whole frame parsed: a bad one changes nothing
            fills.note_forced(order_index, forced)
        return updates
    return []


_FORCED_TRADES = {"liquidation": "LIQUIDATION", "deleverage": "ADL"}


def _forced_trades(data: dict[str, Any]) -> list[tuple[int, str]]:
    """``(order index, "LIQUIDATION"/"ADL")`` of the account's side of each forced trade in ``account_all``.

    ``trades`` is keyed by market id (lists of trades); a trade's ``type`` is trade / liquidation / deleverage /
    market-settlement. The account's order is ``ask_id`` when ``ask_account_id`` is the frame's ``account``,
    ``bid_id`` when ``bid_account_id`` is; without an ``account`` both are noted (the other is not ours).
    """
    trades = data.get("trades") or {}
    groups = list(trades.values()) if isinstance(trades, dict) else [fields.as_list(trades, "'trades'")]
    account = data.get("account")
    if isinstance(account, bool) or not isinstance(account, int):
        account = None
    out = []
    for group in groups:
        for item in fields.as_list(group, "trades of a market"):
            trade = fields.as_object(item, "trade")
            kind = trade.get("type")
            forced = _FORCED_TRADES.get(kind.lower()) if isinstance(kind, str) else None
            if forced is None:
                continue
            sides = [("ask_id", "ask_account_id"), ("bid_id", "bid_account_id")]
            mine = [order for order, acct in sides if account is not None and trade.get(acct) == account]
            out += [(fields.integer(trade, key), forced) for key in (mine or [o for o, _ in sides])]
    return out


def _order_events(
    data: dict[str, Any], markets: MarketTable, ids: ClientIds, fills: FillTracker, at: float, *, snapshot: bool
) -> list[UserEvent]:
    by_market = data.get("orders") or {}
    if not isinstance(by_market, dict):
        raise MalformedMessage(f"'orders' is not an object keyed by market id: {fields.show(by_market)}")
    parsed: list[LighterOrder] = []
    for items in by_market.values():
        if not isinstance(items, list):
            raise MalformedMessage(f"orders of a market are not a list: {fields.show(items)}")
        parsed += [o for item in items if (o := parse_order(item, markets, ids)) is not None]
    if not snapshot:
        for order in parsed:  # check the whole frame first: a malformed frame changes no fill baseline
            fills.peek(order)
    events: list[UserEvent] = []
    for order in parsed:
        if fills.forced(order) != order.forced:
            order = replace(order, forced=fills.forced(order))
        if snapshot:
            fills.baseline(order)
            events.append(order_update(order, Decimal(0), Decimal(0), at))
        else:
            events.append(order_update(order, *fills.update(order), at))
    return events


# ---- field helpers --------------------------------------------------------------------------------------------


def _int(obj: dict[str, Any], key: str) -> int:
    """Market ids and order indexes: a JSON integer or a string of ASCII digits, within 64 bits."""
    return fields.integer(obj, key)


def _amount(obj: dict[str, Any], key: str) -> Decimal:
    """Amounts and prices: unsigned on Lighter (a position's direction is its ``sign``); integers allowed."""
    return fields.non_negative(obj, key, ints=True)
