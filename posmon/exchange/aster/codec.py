"""Aster JSON <-> posmon's domain types: REST answers, order parameters and websocket frames.

Pure functions, no I/O. Numbers travel as decimal strings and become ``Decimal`` straight from the string;
going out they are written plainly (never scientific notation, never through float). Anything that is not
what the protocol says raises ``MalformedMessage`` naming the field and the value, so a reader can count and
skip a bad frame and the REST client can report an unreadable answer as an unknown outcome.

The hot inputs (the ``!markPrice@arr`` frame, the ``openOrders`` and ``positionRisk`` lists) are first decoded
with msgspec into typed structs, which checks types and bounds in C and skips the fields posmon does not read.
Whatever that typed path does not accept in full (another shape, an error, an unusual number, non-ASCII bytes)
goes to the field-by-field path, which decides as before and names the bad field: the typed path is only a
shortcut to the same result (``tests/exchange/aster/test_aster_fast_decode.py`` checks it is), never a second
set of rules. Prices stay decimal strings until ``Decimal`` reads them (msgspec's own ``Decimal`` decoding would
take a JSON number, ``"NaN"`` or ``" 1_0"``, so it is not used).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson

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
from posmon.exchange import fields
from posmon.exchange.events import MalformedMessage, MarkPrice, OrderUpdate, PositionUpdate, UserEvent
from posmon.exchange.venue import RateLimits

__all__ = [
    "DEFAULT_LIMITS",
    "ExchangeInfo",
    "batch_orders_param",
    "client_ids_param",
    "error_body",
    "is_listen_key_expired",
    "load_json",
    "order_params",
    "parse_exchange_info",
    "parse_mark_prices",
    "parse_order",
    "parse_orders",
    "parse_positions",
    "parse_price_frame",
    "parse_rate_limits",
    "parse_user_frame",
    "plain",
]

# The doc's limits and weights; used only when exchangeInfo publishes no usable rateLimits entry.
DEFAULT_LIMITS = RateLimits(
    weight_per_minute=2400,
    orders_per_minute=1200,
    place_weight=1,
    batch_place_weight=5,
    cancel_weight=1,
    batch_cancel_weight=1,
    query_weight=1,
    open_orders_weight=40,
    positions_weight=5,
    max_batch_place=5,
    max_batch_cancel=10,
)
_INTERVAL_SECONDS: Mapping[str, int] = MappingProxyType(
    {"SECOND": 1, "TEN_SECONDS": 10, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
)

EXEC_TYPES = frozenset({"NEW", "TRADE", "CANCELED", "EXPIRED", "CALCULATED", "AMENDMENT"})
# posmon's OrderType names only what posmon places. Other programs' orders (and liquidations) still reach
# the position actors, so their types map onto the posmon type that executes alike.
_FOREIGN_TYPES: Mapping[str, OrderType] = MappingProxyType(
    {
        "STOP": OrderType.LIMIT,
        "TAKE_PROFIT": OrderType.LIMIT,
        "TRAILING_STOP_MARKET": OrderType.MARKET,
        "LIQUIDATION": OrderType.MARKET,
    }
)
# Liquidation statuses of the user stream: the order is live, its fills follow.
_FOREIGN_STATUSES: Mapping[str, OrderStatus] = MappingProxyType(
    {
        "NEW_INSURANCE": OrderStatus.NEW,
        "NEW_ADL": OrderStatus.NEW,
    }
)
_POSITION_SIDES = ("BOTH", "LONG", "SHORT")

_E = TypeVar("_E", OrderSide, OrderType, OrderStatus)


# ---- outgoing -------------------------------------------------------------------------------------------------


def plain(value: Decimal) -> str:
    """A Decimal as the venue wants it: plain notation, no trailing zeros (``1E+1`` -> ``10``, ``0.10`` -> ``0.1``).

    Trailing zeros are dropped because the venue judges precision by the digits it receives (-1111).
    """
    if not value.is_finite():
        raise ValueError(f"cannot send a non-finite number: {value}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def order_params(order: OrderRequest) -> list[tuple[str, str]]:
    """The wire parameters of one order, only those that apply to its type (the venue rejects others: -1106).

    LIMIT: GTC, quantity, price. MARKET: quantity. STOP_MARKET / TAKE_PROFIT_MARKET: quantity, stopPrice,
    workingType (no timeInForce: these take GTC only, which is the default). ``reduceOnly`` only in one-way
    mode (positionSide BOTH); in hedge mode the position side already closes.
    """
    params = [
        ("symbol", order.symbol),
        ("side", order.side.value),
        ("positionSide", order.position_side),
        ("type", order.type.value),
    ]
    match order.type:
        case OrderType.LIMIT:
            params += [
                ("timeInForce", "GTC"),
                ("quantity", plain(order.qty)),
                ("price", plain(_required(order.price, order, "price"))),
            ]
        case OrderType.MARKET:
            params.append(("quantity", plain(order.qty)))
        case OrderType.STOP_MARKET | OrderType.TAKE_PROFIT_MARKET:
            params += [
                ("quantity", plain(order.qty)),
                ("stopPrice", plain(_required(order.stop_price, order, "stop_price"))),
                ("workingType", order.working_type.value),
            ]
    if order.reduce_only and order.position_side == "BOTH":
        params.append(("reduceOnly", "true"))
    params.append(("newClientOrderId", order.client_id))
    return params


def _required(value: Decimal | None, order: OrderRequest, name: str) -> Decimal:
    if value is None:
        raise ValueError(f"{order.type.value} order {order.client_id} has no {name}")
    return value


def batch_orders_param(orders: Sequence[OrderRequest]) -> str:
    """``batchOrders``: a compact JSON array of the orders' parameter objects, every value a string."""
    return orjson.dumps([dict(order_params(o)) for o in orders]).decode()


def client_ids_param(client_ids: Iterable[str]) -> str:
    """``origClientOrderIdList``: ``["a","b"]`` with no spaces (the signer percent-encodes the quotes)."""
    return orjson.dumps(list(client_ids)).decode()


# ---- REST answers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """The trading rules of every usable symbol, the account's limits, and what was left out and why."""

    rules: dict[str, SymbolRules]
    limits: RateLimits
    limits_published: bool
    skipped: Mapping[str, str]


def load_json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"{what} is not JSON ({exc}): {body[:200]!r}") from exc


def error_body(data: Any) -> tuple[int, str] | None:
    """``(code, msg)`` of a Binance error object; None for anything else (a success ``{"code": 200}`` included)."""
    if not isinstance(data, dict) or "code" not in data or "msg" not in data:
        return None
    code = data["code"]
    if isinstance(code, str):
        try:
            code = int(code)
        except ValueError:
            return None
    if isinstance(code, bool) or not isinstance(code, int) or code >= 0:
        return None
    msg = data["msg"]
    return code, msg[:1000] if isinstance(msg, str) else fields.show(msg)


def parse_exchange_info(data: Any) -> ExchangeInfo:
    info = fields.as_object(data, "exchangeInfo")
    symbols = fields.required(info, "symbols")
    if not isinstance(symbols, list):
        raise MalformedMessage(f"exchangeInfo 'symbols' is not a list: {fields.show(symbols)}")
    rules: dict[str, SymbolRules] = {}
    skipped: dict[str, str] = {}
    for item in symbols:
        entry = fields.as_object(item, "exchangeInfo symbol")
        symbol = fields.text(entry, "symbol")
        try:
            rules[symbol] = _symbol_rules(symbol, entry)
        except MalformedMessage as exc:
            skipped[symbol] = str(exc)
    published = info.get("rateLimits")
    limits = parse_rate_limits(published if published is not None else [])
    return ExchangeInfo(rules, limits or DEFAULT_LIMITS, limits is not None, MappingProxyType(skipped))


def _symbol_rules(symbol: str, entry: dict[str, Any]) -> SymbolRules:
    """Tick, step, min qty and min notional from the filters (never from pricePrecision/quantityPrecision)."""
    filters = fields.required(entry, "filters")
    if not isinstance(filters, list):
        raise MalformedMessage(f"{symbol}: 'filters' is not a list: {fields.show(filters)}")
    by_type = {f.get("filterType"): f for f in filters if isinstance(f, dict) and isinstance(f.get("filterType"), str)}
    price_filter = by_type.get("PRICE_FILTER")
    lot_size = by_type.get("LOT_SIZE")
    if price_filter is None or lot_size is None:
        raise MalformedMessage(f"{symbol}: no PRICE_FILTER/LOT_SIZE filter, so no tick/step to round to")
    tick = fields.decimal(price_filter, "tickSize")
    step = fields.decimal(lot_size, "stepSize")
    if tick <= 0 or step <= 0:
        raise MalformedMessage(f"{symbol}: tickSize {tick} / stepSize {step} is not positive")
    min_notional = Decimal(0)
    notional_filter = by_type.get("MIN_NOTIONAL")
    if notional_filter is not None:
        key = "notional" if "notional" in notional_filter else "minNotional"
        min_notional = fields.non_negative(notional_filter, key)
    bounds = {
        name: fields.non_negative(price_filter, key)
        for name, key in (("min_price", "minPrice"), ("max_price", "maxPrice"))
        if key in price_filter
    }
    base, quote, settle = _assets(entry)
    return SymbolRules(
        symbol=symbol,
        tick_size=tick,
        step_size=step,
        min_qty=fields.non_negative(lot_size, "minQty"),
        min_notional=min_notional,
        **bounds,
        base_asset=base,
        quote_asset=quote,
        settle_asset=settle,
    )


_ASSET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")


def _assets(entry: dict[str, Any]) -> tuple[str, str, str]:
    """A perpetual's baseAsset, quoteAsset and marginAsset (the settle asset), for its unified instrument name.

    Only perpetuals (a dated contract would need its expiry in the name) and only well-formed names; anything else
    leaves them out: the symbol still trades, it just has no unified name (``posmon.domain.instruments``).
    """
    if entry.get("contractType", "PERPETUAL") != "PERPETUAL":
        return "", "", ""
    base, quote = entry.get("baseAsset"), entry.get("quoteAsset")
    settle = entry.get("marginAsset", quote)  # Binance's USD-M contracts margin in their quote asset
    named = (base, quote, settle)
    if not all(isinstance(v, str) and _ASSET_RE.fullmatch(v) for v in named):
        return "", "", ""
    return str(base), str(quote), str(settle)


def parse_rate_limits(items: Any, base: RateLimits = DEFAULT_LIMITS) -> RateLimits | None:
    """Per-minute REQUEST_WEIGHT and ORDERS limits; None when the venue publishes neither.

    Windows of a minute or less are scaled to a minute and the strictest wins (the gateway paces per minute);
    longer windows (hour, day) are sustained caps the per-minute pacing cannot express, so they are ignored.
    """
    if not isinstance(items, list):
        raise MalformedMessage(f"exchangeInfo 'rateLimits' is not a list: {fields.show(items)}")
    per_minute: dict[str, int] = {}
    for item in items:
        entry = fields.as_object(item, "rateLimits entry")
        kind = entry.get("rateLimitType")
        if kind not in ("REQUEST_WEIGHT", "ORDERS"):
            continue
        named = entry.get("interval")
        interval = _INTERVAL_SECONDS.get(named) if isinstance(named, str) else None
        num = entry.get("intervalNum", 1)
        limit = entry.get("limit")
        if (
            interval is None
            or isinstance(num, bool)
            or not isinstance(num, int)
            or num < 1
            or isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= fields.MAX_INT
            or num > 10**6
        ):
            raise MalformedMessage(f"rateLimits entry not understood: {fields.show(entry)}")
        window = interval * num
        if window > 60:
            continue
        scaled = limit * 60 // window
        per_minute[kind] = min(per_minute.get(kind, scaled), scaled)
    if not per_minute:
        return None
    return RateLimits(
        weight_per_minute=per_minute.get("REQUEST_WEIGHT", base.weight_per_minute),
        orders_per_minute=per_minute.get("ORDERS", base.orders_per_minute),
        place_weight=base.place_weight,
        batch_place_weight=base.batch_place_weight,
        cancel_weight=base.cancel_weight,
        batch_cancel_weight=base.batch_cancel_weight,
        query_weight=base.query_weight,
        open_orders_weight=base.open_orders_weight,
        positions_weight=base.positions_weight,
        max_batch_place=base.max_batch_place,
        max_batch_cancel=base.max_batch_cancel,
        mark_prices_weight=base.mark_prices_weight,
    )


def parse_order(data: Any) -> OrderState:
    """An order object (new order, query, cancel, open orders): zero price/stopPrice mean "none"."""
    o = fields.as_object(data, "order")
    price = fields.non_negative(o, "price") if "price" in o else Decimal(0)
    stop = fields.non_negative(o, "stopPrice") if "stopPrice" in o else Decimal(0)
    reduce_only = o.get("reduceOnly", False)
    if not isinstance(reduce_only, bool):
        raise MalformedMessage(f"field 'reduceOnly' is not a boolean: {fields.show(reduce_only)}")
    return OrderState(
        client_id=fields.text(o, "clientOrderId"),
        order_id=_order_id(o, "orderId"),
        symbol=fields.text(o, "symbol"),
        side=_enum(OrderSide, o, "side"),
        position_side=_position_side(o, "positionSide", default="BOTH"),
        type=_order_type(o, "type"),
        status=_status(o, "status"),
        qty=fields.non_negative(o, "origQty"),
        filled_qty=fields.non_negative(o, "executedQty") if "executedQty" in o else Decimal(0),
        avg_price=fields.non_negative(o, "avgPrice") if "avgPrice" in o else Decimal(0),
        price=price if price != 0 else None,
        stop_price=stop if stop != 0 else None,
        reduce_only=reduce_only,
    )


def parse_orders(data: Any) -> list[OrderState]:
    """The open orders answer: decoded JSON, or its raw bytes (which take the typed path first)."""
    if isinstance(data, bytes):
        typed = _typed(_ORDER_LIST, data, _order_state)
        if typed is not None:
            return typed
        data = load_json(data, "open orders answer")
    if not isinstance(data, list):
        raise MalformedMessage(f"open orders answer is not a list: {fields.show(data)}")
    return [parse_order(item) for item in data]


def parse_positions(data: Any) -> list[PositionState]:
    """positionRisk entries with a non-zero amount; a negative amount is a SHORT in one-way (BOTH) mode.

    ``data``: decoded JSON, or the answer's raw bytes (which take the typed path first).
    """
    if isinstance(data, bytes):
        typed = _typed(_POSITION_LIST, data, _position_state)
        if typed is not None:
            return [p for p in typed if p is not _FLAT]
        data = load_json(data, "positionRisk answer")
    if not isinstance(data, list):
        raise MalformedMessage(f"positionRisk answer is not a list: {fields.show(data)}")
    out = []
    for item in data:
        p = fields.as_object(item, "positionRisk entry")
        amount = fields.decimal(p, "positionAmt")
        if amount == 0:
            continue
        ps = _position_side(p, "positionSide", default="BOTH")
        side = (Side.LONG if amount > 0 else Side.SHORT) if ps == "BOTH" else Side(ps)
        out.append(
            PositionState(
                symbol=fields.text(p, "symbol"),
                side=side,
                qty=abs(amount),
                entry_price=fields.non_negative(p, "entryPrice"),
            )
        )
    return out


def parse_balance(data: Any, asset: str = "USDT") -> Decimal:
    """``GET /fapi/v2/balance`` (v3: ``/fapi/v3/balance``): ``asset``'s wallet balance (``balance``).

    The wallet balance, not the margin balance (wallet plus unrealized PnL): the risk limits measure a stop's
    loss against what the account holds, not against what its open positions happen to show this second. An
    account without the asset holds 0 of it.
    """
    if not isinstance(data, list):
        raise MalformedMessage(f"balance answer is not a list: {fields.show(data)}")
    for item in data:
        entry = fields.as_object(item, "balance entry")
        if entry.get("asset") == asset:
            return fields.decimal(entry, "balance")
    return Decimal(0)


def parse_mark_prices(data: Any) -> list[MarkPrice]:
    """premiumIndex (one object or the all-symbols array); symbols without a mark yet ("0") are left out."""
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        entry = fields.as_object(item, "premiumIndex entry")
        price = fields.non_negative(entry, "markPrice")  # "0": no mark yet, left out
        if price > 0:
            rate, next_time = funding_of(entry.get("lastFundingRate"), entry.get("nextFundingTime"))
            at = fields.millis(entry, "time") / 1000
            out.append(MarkPrice(fields.text(entry, "symbol"), price, at, rate, next_time))
    return out


def funding_of(rate: Any, next_ms: Any) -> tuple[Decimal | None, float | None]:
    """The funding rate (``r`` / ``lastFundingRate``) and next funding time (``T`` / ``nextFundingTime``) of a mark."""
    return fields.funding(rate, next_ms, "lastFundingRate")


# ---- websocket frames -----------------------------------------------------------------------------------------


def parse_price_frame(frame: bytes) -> list[MarkPrice]:
    """``markPriceUpdate`` objects from a raw, array (``!markPrice@arr``) or combined-stream frame; [] for acks."""
    if frame[:1] == b"[" and frame.isascii():
        try:
            entries = _MARK_ARRAY.decode(frame)
        except (msgspec.MsgspecError, ValueError, RecursionError):
            pass  # the field-by-field path names what is wrong
        else:
            out = []
            for entry in entries:
                price = fields.plain_decimal(entry.p)
                if price is None or price < 0:
                    break  # an unusual notation or a negative mark: the field-by-field path judges it
                if price:  # "0": no mark yet, left out
                    out.append(MarkPrice(entry.s, price, entry.E / 1000, *funding_of(entry.r, entry.T)))
            else:
                return out
    return parse_price_frame_by_field(frame)


def parse_price_frame_by_field(frame: bytes) -> list[MarkPrice]:
    """``parse_price_frame`` for any frame, checked field by field (the reference the typed path must match)."""
    data = fields.unwrap(load_json(frame, "price frame"))
    if isinstance(data, dict) and "id" in data and "result" in data:
        return []
    if isinstance(data, dict) and "code" in data and "e" not in data:
        raise MalformedMessage(f"price stream answered with an error: {fields.show(data)}")
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        entry = fields.as_object(item, "mark price entry")
        if entry.get("e") != "markPriceUpdate":
            raise MalformedMessage(f"not a markPriceUpdate: {fields.show(entry)}")
        price = fields.non_negative(entry, "p")  # "0": no mark yet, left out
        if price > 0:
            at = fields.millis(entry, "E") / 1000
            out.append(MarkPrice(fields.text(entry, "s"), price, at, *funding_of(entry.get("r"), entry.get("T"))))
    return out


def parse_user_frame(frame: bytes) -> list[UserEvent]:
    """Order and position events; [] for events posmon does not use (listenKeyExpired is seen by the stream)."""
    data = fields.as_object(fields.unwrap(load_json(frame, "user frame")), "user event")
    kind = data.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        return [_order_update(data)]
    if kind == "ACCOUNT_UPDATE":
        time = fields.millis(data, "E") / 1000
        account = fields.as_object(fields.required(data, "a"), "ACCOUNT_UPDATE 'a'")
        entries = account.get("P", [])  # a crossed funding fee comes with balances only
        if not isinstance(entries, list):
            raise MalformedMessage(f"ACCOUNT_UPDATE 'a.P' is not a list: {fields.show(entries)}")
        return [
            u for entry in entries for u in _position_updates(fields.as_object(entry, "ACCOUNT_UPDATE position"), time)
        ]
    if not isinstance(kind, str) or not kind:
        raise MalformedMessage(f"user event without an 'e' string: {fields.show(data)}")
    return []  # listenKeyExpired, MARGIN_CALL, ACCOUNT_CONFIG_UPDATE, announcement, ...


def is_listen_key_expired(frame: bytes) -> bool:
    """Whether a user-stream frame is ``listenKeyExpired`` (cheap substring test before parsing)."""
    if b"listenKeyExpired" not in frame:
        return False
    try:
        data = fields.unwrap(orjson.loads(frame))
    except (orjson.JSONDecodeError, MalformedMessage):
        return False
    return isinstance(data, dict) and data.get("e") == "listenKeyExpired"


def _order_update(data: dict[str, Any]) -> OrderUpdate:
    o = fields.as_object(fields.required(data, "o"), "ORDER_TRADE_UPDATE 'o'")
    exec_type = fields.text(o, "x")
    if exec_type not in EXEC_TYPES:
        raise MalformedMessage(f"unknown execution type 'x' {fields.show(exec_type)}")
    reduce_only = o.get("R", False)
    if not isinstance(reduce_only, bool):
        raise MalformedMessage(f"reduce-only 'R' is not a boolean: {fields.show(reduce_only)}")
    client_id = fields.text(o, "c")
    order_type = fields.text(o, "o")
    status = fields.text(o, "X")
    last_qty = fields.non_negative(o, "l")
    last_price = fields.non_negative(o, "L")
    if last_qty > 0 and last_price == 0:
        raise MalformedMessage(f"a fill of {last_qty} without a price 'L': {fields.show(o)}")
    return OrderUpdate(
        symbol=fields.text(o, "s"),
        client_id=client_id,
        order_id=_order_id(o, "i"),
        side=_enum(OrderSide, o, "S"),
        position_side=_position_side(o, "ps", default="BOTH"),
        type=_order_type(o, "o"),
        status=_status(o, "X"),
        exec_type=exec_type,
        qty=fields.non_negative(o, "q"),
        filled_qty=fields.non_negative(o, "z"),
        last_qty=last_qty,
        last_price=last_price,
        avg_price=fields.non_negative(o, "ap"),
        reduce_only=reduce_only,
        realized_pnl=fields.decimal(o, "rp") if "rp" in o else Decimal(0),
        time=fields.millis(data, "E") / 1000,
        forced=_forced(client_id, order_type, status, exec_type),
        commission=fields.decimal(o, "n") if "n" in o else Decimal(0),
        commission_asset=str(o.get("N") or ""),
    )


def _forced(client_id: str, order_type: str, status: str, exec_type: str) -> str | None:
    """ "ADL" or "LIQUIDATION" for the venue's forced orders (Binance semantics, see docs/aster-api.md), else None.

    ADL: client id ``adl_autoclose`` (any suffix) or status ``NEW_ADL``. Liquidation: client id ``autoclose-...``,
    order type ``LIQUIDATION``, status ``NEW_INSURANCE``, or a ``CALCULATED`` execution with no ADL marker.
    """
    if client_id.startswith("adl_autoclose") or status == "NEW_ADL":
        return "ADL"
    if (
        client_id.startswith("autoclose-")
        or order_type == "LIQUIDATION"
        or status == "NEW_INSURANCE"
        or exec_type == "CALCULATED"
    ):
        return "LIQUIDATION"
    return None


def _position_updates(entry: dict[str, Any], time: float) -> list[PositionUpdate]:
    """One update per entry; a flat one-way (BOTH) position is flat on both sides, so it gives two."""
    symbol = fields.text(entry, "s")
    amount = fields.decimal(entry, "pa")
    entry_price = fields.non_negative(entry, "ep")
    ps = _position_side(entry, "ps", default=None)
    if ps == "BOTH":
        if amount == 0:
            return [PositionUpdate(PositionState(symbol, side, Decimal(0), Decimal(0)), time) for side in Side]
        side = Side.LONG if amount > 0 else Side.SHORT
    else:
        side = Side(ps)
    return [PositionUpdate(PositionState(symbol, side, abs(amount), entry_price), time)]


# ---- typed decoding (msgspec) ------------------------------------------------------------------------------

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=fields.MAX_TEXT_CHARS)]
_Millis = Annotated[int, msgspec.Meta(ge=0, le=fields.MAX_INT)]


class _MarkEntry(msgspec.Struct, gc=False):
    """One ``markPriceUpdate`` of the array frame: only what posmon reads (``i`` and ``P`` are skipped; ``r`` and
    ``T`` kept as given, ``funding_of`` judges them as the field-by-field path does)."""

    e: Literal["markPriceUpdate"]
    E: _Millis
    s: _Text
    p: str
    r: Any = None
    T: Any = None


_MARK_ARRAY = msgspec.json.Decoder(list[_MarkEntry])
_PositionSide = Literal["BOTH", "LONG", "SHORT"]


class _Order(msgspec.Struct, gc=False):
    """An order object of ``openOrders`` (``parse_order``'s fields; defaults as ``parse_order`` reads absence)."""

    clientOrderId: _Text
    orderId: int | _Text
    symbol: _Text
    side: _Text
    type: _Text
    status: _Text
    origQty: str
    positionSide: _PositionSide = "BOTH"
    executedQty: str = "0"
    avgPrice: str = "0"
    price: str = "0"
    stopPrice: str = "0"
    reduceOnly: bool = False


class _Position(msgspec.Struct, gc=False):
    """A ``positionRisk`` entry (``parse_positions``'s fields)."""

    symbol: _Text
    positionAmt: str
    entryPrice: str
    positionSide: _PositionSide = "BOTH"


_ORDER_LIST = msgspec.json.Decoder(list[_Order])
_POSITION_LIST = msgspec.json.Decoder(list[_Position])
_SIDES: Mapping[str, OrderSide] = MappingProxyType({m.value: m for m in OrderSide})
_TYPES: Mapping[str, OrderType] = MappingProxyType({**{m.value: m for m in OrderType}, **_FOREIGN_TYPES})
_STATUSES: Mapping[str, OrderStatus] = MappingProxyType({**{m.value: m for m in OrderStatus}, **_FOREIGN_STATUSES})
_FLAT = PositionState("", Side.LONG, Decimal(0), Decimal(0))  # a zero-amount entry, left out
_T = TypeVar("_T")
_S = TypeVar("_S", bound=msgspec.Struct)


_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
DECODE_CHUNK_BYTES = 1_000_000  # a larger list is decoded ~1,000 items at a time
DECODE_CHUNK_ITEMS = 1000


def _decode_list(decoder: msgspec.json.Decoder[list[_S]], body: bytes) -> list[_S]:
    """``decoder.decode(body)``, in chunks for a large list: one decode is one C call holding the interpreter
    lock (a whole account's 25,000 orders: ~35 ms quiet, 75-100 ms on a busy machine, every price frame and
    exit waiting); splitting the array into raw items first holds it about a third as long, and each chunk's
    decode a few milliseconds. The same items either way: each chunk is the same items, decoded the same way."""
    if len(body) <= DECODE_CHUNK_BYTES:
        return decoder.decode(body)
    raws = _RAW_LIST.decode(body)
    items: list[_S] = []
    for start in range(0, len(raws), DECODE_CHUNK_ITEMS):
        items.extend(decoder.decode(b"[" + b",".join(raws[start : start + DECODE_CHUNK_ITEMS]) + b"]"))
    return items


def _typed(decoder: msgspec.json.Decoder[list[_S]], body: bytes, build: Callable[[_S], _T | None]) -> list[_T] | None:
    """Every item built from the typed decoding of ``body``; None when any part needs the field-by-field path."""
    if not body.isascii():
        return None
    try:
        items = _decode_list(decoder, body)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
    out = []
    for item in items:
        built = build(item)
        if built is None:
            return None
        out.append(built)
    return out


def _order_state(o: _Order) -> OrderState | None:
    side, kind, status = _SIDES.get(o.side), _TYPES.get(o.type), _STATUSES.get(o.status)
    qty, filled, avg = (
        fields.plain_decimal(o.origQty),
        fields.plain_decimal(o.executedQty),
        fields.plain_decimal(o.avgPrice),
    )
    price, stop = fields.plain_decimal(o.price), fields.plain_decimal(o.stopPrice)
    if (
        side is None
        or kind is None
        or status is None
        or qty is None
        or filled is None
        or avg is None
        or price is None
        or stop is None
        or min(qty, filled, avg, price, stop) < 0
    ):
        return None
    return OrderState(
        client_id=o.clientOrderId,
        order_id=str(o.orderId),
        symbol=o.symbol,
        side=side,
        position_side=o.positionSide,
        type=kind,
        status=status,
        qty=qty,
        filled_qty=filled,
        avg_price=avg,
        price=price if price != 0 else None,
        stop_price=stop if stop != 0 else None,
        reduce_only=o.reduceOnly,
    )


def _position_state(p: _Position) -> PositionState | None:
    amount = fields.plain_decimal(p.positionAmt)
    if amount is None:
        return None
    if amount == 0:
        return _FLAT
    entry_price = fields.plain_decimal(p.entryPrice)
    if entry_price is None or entry_price < 0:
        return None
    side = (Side.LONG if amount > 0 else Side.SHORT) if p.positionSide == "BOTH" else Side(p.positionSide)
    return PositionState(symbol=p.symbol, side=side, qty=abs(amount), entry_price=entry_price)


# ---- field helpers --------------------------------------------------------------------------------------------


def _order_id(obj: dict[str, Any], key: str) -> str:
    value = fields.required(obj, key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or value == ""
        or (isinstance(value, str) and len(value) > fields.MAX_TEXT_CHARS)
    ):
        raise MalformedMessage(f"order id {key!r} is neither an integer nor a string: {fields.show(value)}")
    return str(value)


def _enum(cls: type[_E], obj: dict[str, Any], key: str) -> _E:
    value = fields.text(obj, key)
    try:
        return cls(value)
    except ValueError:
        raise MalformedMessage(f"field {key!r} has unknown {cls.__name__} {fields.show(value)}") from None


def _order_type(obj: dict[str, Any], key: str) -> OrderType:
    value = fields.text(obj, key)
    if value in _FOREIGN_TYPES:
        return _FOREIGN_TYPES[value]
    return _enum(OrderType, obj, key)


def _status(obj: dict[str, Any], key: str) -> OrderStatus:
    value = fields.text(obj, key)
    if value in _FOREIGN_STATUSES:
        return _FOREIGN_STATUSES[value]
    return _enum(OrderStatus, obj, key)


def _position_side(obj: dict[str, Any], key: str, *, default: str | None) -> str:
    if key not in obj and default is not None:
        return default
    value = fields.text(obj, key)
    if value not in _POSITION_SIDES:
        raise MalformedMessage(f"unknown position side {key!r} {fields.show(value)}")
    return value
