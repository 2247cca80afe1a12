"""Aster/Binance-shaped stream frames: the sim encodes them, and the same decoders read them.

The simulator talks JSON bytes over its streams (not Python objects) so that the
daemon's parse-and-skip path runs for real, malformed frames included. Numbers
are decimal strings on the wire and become Decimal straight from the string.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from posmon.domain.orders import OrderSide, OrderStatus, OrderType, PositionState, Side
from posmon.exchange import fields
from posmon.exchange.events import MalformedMessage, MarkPrice, OrderUpdate, PositionUpdate, UserEvent

EXEC_TYPES = frozenset({"NEW", "TRADE", "CANCELED", "EXPIRED", "CALCULATED", "AMENDMENT"})

_E = TypeVar("_E", OrderSide, OrderType, OrderStatus)


def dec(value: Decimal) -> str:
    """Plain notation (never ``1E+1``), the way the venue writes numbers."""
    return "0" if value == 0 else format(value, "f")


# ---- encoding ---------------------------------------------------------------------------------------------------


def encode_mark_prices(prices: Mapping[str, Decimal], time_ms: int) -> bytes:
    """A ``!markPrice@arr@1s`` frame."""
    return orjson.dumps([{"e": "markPriceUpdate", "E": time_ms, "s": s, "p": dec(p)} for s, p in prices.items()])


def encode_user_event(
    event: UserEvent,
    time_ms: int,
    *,
    price: Decimal | None = None,
    stop_price: Decimal | None = None,
    hedge_mode: bool = True,
) -> bytes:
    """ORDER_TRADE_UPDATE or ACCOUNT_UPDATE; ``price``/``stop_price`` are the order's (the event lacks them)."""
    event_ms = round(event.time * 1000)
    if isinstance(event, OrderUpdate):
        order = {
            "s": event.symbol,
            "c": event.client_id,
            "S": event.side.value,
            "o": event.type.value,
            "f": "GTC",
            "q": dec(event.qty),
            "p": dec(price or Decimal(0)),
            "ap": dec(event.avg_price),
            "sp": dec(stop_price or Decimal(0)),
            "x": event.exec_type,
            "X": event.status.value,
            "i": int(event.order_id) if event.order_id.isdigit() else event.order_id,
            "l": dec(event.last_qty),
            "z": dec(event.filled_qty),
            "L": dec(event.last_price),
            "T": event_ms,
            "R": event.reduce_only,
            "ps": event.position_side,
            "wt": "MARK_PRICE",
            "ot": event.type.value,
            "rp": dec(event.realized_pnl),
        }
        return orjson.dumps({"e": "ORDER_TRADE_UPDATE", "E": time_ms, "T": event_ms, "o": order})
    position = event.position
    signed = position.qty if position.side is Side.LONG else -position.qty
    entry = {
        "s": position.symbol,
        "pa": dec(signed),
        "ep": dec(position.entry_price),
        "ps": position.side.value if hedge_mode else "BOTH",
    }
    return orjson.dumps(
        {"e": "ACCOUNT_UPDATE", "E": time_ms, "T": event_ms, "a": {"m": "ORDER", "B": [], "P": [entry]}}
    )


# ---- decoding ---------------------------------------------------------------------------------------------------


def parse_mark_prices(frame: bytes) -> list[MarkPrice]:
    """Mark prices of a raw or combined-stream frame; [] for subscription acks."""
    data = fields.unwrap(_load(frame))
    if isinstance(data, dict) and "result" in data and "id" in data:
        return []
    items = data if isinstance(data, list) else [data]
    return [_mark_price(fields.as_object(item, "mark price entry")) for item in items]


def parse_user_event(frame: bytes) -> list[UserEvent]:
    """Typed events of a user-data frame; [] for events posmon does not use."""
    data = fields.as_object(fields.unwrap(_load(frame)), "user event")
    kind = data.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        return [_order_update(data)]
    if kind == "ACCOUNT_UPDATE":
        time = fields.millis(data, "E") / 1000
        account = fields.as_object(fields.required(data, "a"), "ACCOUNT_UPDATE 'a'")
        entries = fields.required(account, "P")
        if not isinstance(entries, list):
            raise MalformedMessage(f"ACCOUNT_UPDATE 'a.P' is not a list: {entries!r}")
        return [update for entry in entries
                for update in _position_updates(fields.as_object(entry, "position entry"), time)]
    if not isinstance(kind, str):
        raise MalformedMessage(f"user event without an 'e' string: {data!r:.200}")
    return []  # listenKeyExpired (the reader reconnects on its own schedule), MARGIN_CALL, ...


def _mark_price(item: dict[str, Any]) -> MarkPrice:
    if item.get("e") != "markPriceUpdate":
        raise MalformedMessage(f"not a markPriceUpdate: {item!r:.200}")
    price = fields.decimal(item, "p")
    if price <= 0:
        raise MalformedMessage(f"non-positive mark price {price} for {item.get('s')!r}")
    return MarkPrice(symbol=fields.text(item, "s"), price=price, time=fields.millis(item, "E") / 1000)


def _order_update(data: dict[str, Any]) -> OrderUpdate:
    o = fields.as_object(fields.required(data, "o"), "ORDER_TRADE_UPDATE 'o'")
    exec_type = fields.text(o, "x")
    if exec_type not in EXEC_TYPES:
        raise MalformedMessage(f"unknown execution type 'x' {exec_type!r}")
    order_id = fields.required(o, "i")
    if isinstance(order_id, bool) or not isinstance(order_id, int | str):
        raise MalformedMessage(f"order id 'i' is neither integer nor string: {order_id!r}")
    reduce_only = fields.required(o, "R")
    if not isinstance(reduce_only, bool):
        raise MalformedMessage(f"reduce-only 'R' is not a boolean: {reduce_only!r}")
    return OrderUpdate(
        symbol=fields.text(o, "s"),
        client_id=fields.text(o, "c"),
        order_id=str(order_id),
        side=_enum(OrderSide, o, "S"),
        position_side=_position_side(o),
        type=_enum(OrderType, o, "o"),
        status=_enum(OrderStatus, o, "X"),
        exec_type=exec_type,
        qty=fields.decimal(o, "q"),
        filled_qty=fields.decimal(o, "z"),
        last_qty=fields.decimal(o, "l"),
        last_price=fields.decimal(o, "L"),
        avg_price=fields.decimal(o, "ap"),
        reduce_only=reduce_only,
        realized_pnl=fields.decimal(o, "rp"),
        time=fields.millis(data, "E") / 1000,
    )


def _position_updates(entry: dict[str, Any], time: float) -> list[PositionUpdate]:
    """One update per entry; a flat one-way (BOTH) position is flat on both sides, so it gives two."""
    symbol = fields.text(entry, "s")
    amount = fields.decimal(entry, "pa")
    entry_price = fields.decimal(entry, "ep")
    ps = _position_side(entry)
    if ps == "BOTH":
        if amount == 0:
            return [PositionUpdate(PositionState(symbol, side, Decimal(0), Decimal(0)), time) for side in Side]
        side = Side.LONG if amount > 0 else Side.SHORT
    else:
        side = Side(ps)
    return [PositionUpdate(PositionState(symbol, side, abs(amount), entry_price), time)]


def _load(frame: bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"frame is not JSON ({exc}): {frame[:200]!r}") from exc














def _enum(cls: type[_E], obj: dict[str, Any], key: str) -> _E:
    value = fields.text(obj, key)
    try:
        return cls(value)
    except ValueError:
        raise MalformedMessage(f"field {key!r} has unknown {cls.__name__} {value!r}") from None


def _position_side(obj: dict[str, Any]) -> str:
    value = fields.text(obj, "ps")
    if value not in ("LONG", "SHORT", "BOTH"):
        raise MalformedMessage(f"unknown position side 'ps' {value!r}")
    return value
