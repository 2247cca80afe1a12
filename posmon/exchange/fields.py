"""Reading Binance-family JSON (Aster's, and the simulator's Aster-shaped frames) field by field.

Each helper raises ``MalformedMessage`` naming the field and the value, so a stream reader can count and
skip a bad frame and a REST client can report an unreadable answer.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from posmon.exchange.events import MalformedMessage


def unwrap(data: Any) -> Any:
    """Strip the combined-stream envelope ``{"stream": ..., "data": ...}``."""
    if isinstance(data, dict) and "stream" in data:
        if "data" not in data:
            raise MalformedMessage(f"combined-stream frame without 'data': {data!r:.200}")
        return data["data"]
    return data


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} is not a JSON object: {value!r:.200}")
    return value


def required(obj: dict[str, Any], key: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise MalformedMessage(f"missing field {key!r} in {obj!r:.200}") from None


def text(obj: dict[str, Any], key: str) -> str:
    value = required(obj, key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"field {key!r} is not a non-empty string: {value!r}")
    return value


def decimal(obj: dict[str, Any], key: str) -> Decimal:
    text = required(obj, key)
    if not isinstance(text, str):
        raise MalformedMessage(f"field {key!r} is not a decimal string: {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MalformedMessage(f"field {key!r} is not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise MalformedMessage(f"field {key!r} is not a finite number: {text!r}")
    return value


def millis(obj: dict[str, Any], key: str) -> int:
    value = required(obj, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedMessage(f"field {key!r} is not a millisecond timestamp: {value!r}")
    return value
