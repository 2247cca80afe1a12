"""Stream payloads in the venue's full shape, built from the ``SimExchange`` frames.

``SimExchange`` publishes compact frames (what posmon's parsers need). A protocol
simulator must send what the venue sends: mark updates carry index, settle price,
funding rate and next funding time; order updates carry time in force, working type,
trade id and maker flag; position entries carry realized and unrealized PnL. Frames
that are not valid JSON pass through untouched, so malformed-frame tests still work.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from posmon.sim.aster.book import OrderIndex
from posmon.sim.engine import MatchingEngine

FUNDING_INTERVAL_MS = 8 * 3600 * 1000
FUNDING_RATE = "0.00010000"
INTEREST_RATE = "0.00010000"


def next_funding_ms(now_ms: int, interval_ms: int = FUNDING_INTERVAL_MS) -> int:
    """The venue funds every 8 hours from midnight UTC (a simulator's ``funding_interval_ms`` may say otherwise)."""
    return (now_ms // interval_ms + 1) * interval_ms


def mark_updates(
    frame: bytes, funding_rate: str = FUNDING_RATE, funding_interval_ms: int = FUNDING_INTERVAL_MS
) -> list[dict[str, Any]] | None:
    """The entries of a ``!markPrice@arr`` frame in full shape, or None when the frame is not one; ``r`` and ``T``:
    the simulator's funding rate and next funding time."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, list) or not all(isinstance(x, dict) and isinstance(x.get("s"), str) for x in data):
        return None
    out = []
    for item in data:
        event_ms = item.get("E") if isinstance(item.get("E"), int) else 0
        price = item.get("p", "0")
        out.append(
            {
                "e": item.get("e", "markPriceUpdate"),
                "E": event_ms,
                "s": item["s"],
                "p": price,
                "i": price,
                "P": price,
                "r": funding_rate,
                "T": next_funding_ms(event_ms, funding_interval_ms),
            }
        )
    return out


def user_event(frame: bytes, index: OrderIndex, engine: MatchingEngine) -> dict[str, Any] | None:
    """A user-data event in full shape, or None when the frame is not JSON (sent as it is)."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        if data.get("e") == "ORDER_TRADE_UPDATE" and isinstance(data.get("o"), dict):
            data["o"] = _order(data["o"], index)
        elif data.get("e") == "ACCOUNT_UPDATE" and isinstance(data.get("a"), dict):
            data["a"]["P"] = [_position(entry, engine) for entry in data["a"].get("P") or []]
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return data  # an odd frame (tests publish those on purpose): forward what was there
    return data


def _order(o: dict[str, Any], index: OrderIndex) -> dict[str, Any]:
    meta = index.meta(o["c"])
    exec_type, status = o["x"], o["X"]
    if meta is not None and meta.expire_on_cancel and exec_type == "CANCELED":
        exec_type = status = "EXPIRED"  # an IOC/FOK remainder: the venue expires it, it is not cancelled
    trade = exec_type == "TRADE"
    order_id = o["i"]
    return {
        "s": o["s"],
        "c": o["c"],
        "S": o["S"],
        "o": o["o"],
        "f": meta.time_in_force if meta else o.get("f", "GTC"),
        "q": o["q"],
        "p": o["p"],
        "ap": o["ap"],
        "sp": o["sp"],
        "x": exec_type,
        "X": status,
        "i": order_id,
        "l": o["l"],
        "z": o["z"],
        "L": o["L"],
        "T": o["T"],
        "t": index.trade_id(order_id, o["z"]) if trade and isinstance(order_id, int) else 0,
        "b": "0",
        "a": "0",
        "m": bool(trade and meta is not None and meta.rested),
        "R": o["R"],
        "wt": meta.working_type if meta else o.get("wt", "CONTRACT_PRICE"),
        "ot": o.get("ot", o["o"]),
        "ps": o["ps"],
        "cp": meta.close_position if meta else False,
        "pP": meta.price_protect if meta else False,
        "rp": o["rp"],
    }


def _position(entry: dict[str, Any], engine: MatchingEngine) -> dict[str, Any]:
    symbol = entry["s"]
    amount, entry_price = Decimal(entry["pa"]), Decimal(entry["ep"])
    mark = engine.mark(symbol)
    unrealized = (mark - entry_price) * amount if mark is not None and amount else Decimal(0)
    return {
        "s": symbol,
        "pa": entry["pa"],
        "ep": entry["ep"],
        "cr": _plain(engine.realized_pnl(symbol)),
        "up": _plain(unrealized),
        "mt": "cross",
        "iw": "0",
        "ps": entry["ps"],
    }


def _plain(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")
