"""Aster/Binance-shaped stream frames, as the simulator writes them.

The simulator talks JSON bytes over its streams (not Python objects) so that the
daemon's parse-and-skip path runs for real, malformed frames included; they are
read back by the Aster codec (``posmon.exchange.aster.codec``), exactly as a live
venue's frames are. Numbers go out as decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TypeVar

import orjson

from posmon.domain.orders import OrderSide, OrderStatus, OrderType, Side
from posmon.exchange.events import OrderUpdate, UserEvent

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


def encode_forced_close(
    symbol: str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    *,
    client_id: str,
    order_id: int,
    time_ms: int,
    realized_pnl: Decimal,
    hedge_mode: bool = True,
) -> bytes:
    """The ORDER_TRADE_UPDATE of a venue-executed close: a liquidation (``autoclose-<ms>``) or ADL (``adl_autoclose``).

    As Binance-compatible venues send it: order type ``LIQUIDATION``, exec type ``CALCULATED``, status FILLED,
    the whole quantity at once; the position frame (ACCOUNT_UPDATE) follows separately.
    """
    order = {
        "s": symbol,
        "c": client_id,
        "S": side.closing_order_side.value,
        "o": "LIQUIDATION",
        "f": "IOC",
        "q": dec(qty),
        "p": dec(price),
        "ap": dec(price),
        "sp": "0",
        "x": "CALCULATED",
        "X": "FILLED",
        "i": order_id,
        "l": dec(qty),
        "z": dec(qty),
        "L": dec(price),
        "T": time_ms,
        "R": False,
        "ps": side.value if hedge_mode else "BOTH",
        "wt": "CONTRACT_PRICE",
        "ot": "LIQUIDATION",
        "rp": dec(realized_pnl),
    }
    return orjson.dumps({"e": "ORDER_TRADE_UPDATE", "E": time_ms, "T": time_ms, "o": order})
