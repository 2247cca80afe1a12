"""Reading venue JSON (Aster's, Lighter's and the simulators') field by field, strictly.

Every helper raises ``MalformedMessage`` naming the field and (shortened) value, and nothing else, so a stream
reader can count and skip a bad frame and a REST client can report an unreadable answer. Numbers are refused
unless they are plain, finite and of a sane size: a frame with ``"pa":"1e999999999"`` or a mark of
``1e+999999999999999999`` must cost one dropped frame, never an exception that restarts an actor (and six of
those in a minute stop the daemon), nor a number that overflows the arithmetic downstream.
"""

from __future__ import annotations

import re
import reprlib
from decimal import Decimal, InvalidOperation
from typing import Any

from posmon.exchange.events import MalformedMessage

# No price, quantity, amount or PnL posmon meets is anywhere near 10^15, nor finer than 10^-30; anything outside
# is a corrupt or hostile frame. Bounding both ends keeps every product and quotient of two fields well inside
# Decimal's exponent range (an unbounded "1e-999999999" divisor overflows a division).
MAX_MAGNITUDE = Decimal("1e15")
MIN_EXPONENT = -30
MAX_NUMBER_CHARS = 64  # longer than any number written within the bounds above (and parsing it costs nothing)
MAX_TEXT_CHARS = 256  # symbols, client ids, enum words: a megabyte of text is not a field
MAX_INT = 2**63 - 1  # order indexes, market ids, timestamps: a signed 64-bit integer on every venue

# Plain ASCII decimal notation: Decimal() alone also takes "٣", " 1 ", "1_000", "NaN" and 10^999999999.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")

_ZERO = Decimal(0)

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxdict, _repr.maxlist = 3, 120, 120, 6, 6


def show(value: Any) -> str:
    """A short, bounded repr for an error message (depth and length capped: frames may be huge or deeply nested)."""
    text: str = _repr.repr(value)
    return text if len(text) <= 240 else text[:237] + "..."


def unwrap(data: Any) -> Any:
    """Strip the combined-stream envelope ``{"stream": ..., "data": ...}``."""
    if isinstance(data, dict) and "stream" in data:
        if "data" not in data:
            raise MalformedMessage(f"combined-stream frame without 'data': {show(data)}")
        return data["data"]
    return data


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} is not a JSON object: {show(value)}")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedMessage(f"{what} is not a list: {show(value)}")
    return value


def required(obj: dict[str, Any], key: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise MalformedMessage(f"missing field {key!r} in {show(obj)}") from None


def text(obj: dict[str, Any], key: str) -> str:
    value = required(obj, key)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_CHARS:
        raise MalformedMessage(
            f"field {key!r} is not a non-empty string of at most {MAX_TEXT_CHARS} characters: {show(value)}"
        )
    return value


def number(value: Any, what: str, *, ints: bool = False) -> Decimal:
    """A decimal string (or, with ``ints``, a JSON integer) as a bounded, finite ``Decimal``.

    Refused: non-strings (lists, objects, null, booleans, floats), text that is not a number, NaN and
    infinities, magnitudes above ``MAX_MAGNITUDE`` and digits finer than ``10**MIN_EXPONENT``. A zero is
    returned as plain ``Decimal(0)`` whatever exponent it was written with.
    """
    if isinstance(value, str) and (fast := plain_decimal(value)) is not None:
        return fast
    if ints and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_MAGNITUDE:
            raise MalformedMessage(f"{what} is out of range (|x| <= 1e15): {show(value)}")
        return Decimal(value)
    if not isinstance(value, str):
        raise MalformedMessage(f"{what} is not a decimal string: {show(value)}")
    if len(value) > MAX_NUMBER_CHARS:
        raise MalformedMessage(f"{what} is not a plausible number ({len(value)} characters): {show(value)}")
    if _NUMBER.fullmatch(value) is None:
        raise MalformedMessage(f"{what} is not a decimal number (plain ASCII, finite): {show(value)}")
    try:
        parsed = Decimal(value)
    except (InvalidOperation, ValueError, ArithmeticError):  # pragma: no cover - the pattern admits only numbers
        raise MalformedMessage(f"{what} is not a decimal number: {show(value)}") from None
    if parsed.is_zero():
        return Decimal(0)
    _, digits, exponent = parsed.as_tuple()
    assert isinstance(exponent, int)  # finite
    finest = exponent + len(digits) - len("".join(map(str, digits)).rstrip("0"))  # "1.000...0" is not fine-grained
    if finest < MIN_EXPONENT or parsed.copy_abs() > MAX_MAGNITUDE:
        raise MalformedMessage(f"{what} is out of range (|x| <= 1e15, at most 30 decimals): {show(value)}")
    return parsed


def plain_decimal(value: str) -> Decimal | None:
    """The common case of ``number``, fast: ASCII digits with at most one point and an optional minus, in bounds.

    None for anything else (a plus, an exponent, more than 31 digits and point, |x| > 1e15): ``number`` then
    judges it. At most 31 characters keeps the digits at or above 10**-30; with no exponent that is all to check.
    """
    digits = value[1:] if value[:1] == "-" else value
    if len(digits) <= 31 and digits.isascii() and digits.replace(".", "", 1).isdigit():
        parsed = Decimal(value)
        if -MAX_MAGNITUDE <= parsed <= MAX_MAGNITUDE:
            return parsed if parsed else _ZERO
    return None


def derived(value: Decimal, what: str) -> Decimal:
    """A value computed from fields (an average price: quote / base) held to the same bound as a field."""
    if not value.is_finite() or value.copy_abs() > MAX_MAGNITUDE:
        raise MalformedMessage(f"{what} is out of range (|x| <= 1e15): {value:.6E}")
    return value


def decimal(obj: dict[str, Any], key: str, *, ints: bool = False) -> Decimal:
    """A bounded decimal of any sign (a signed position amount, a realized PnL)."""
    return number(required(obj, key), f"field {key!r}", ints=ints)


def non_negative(obj: dict[str, Any], key: str, *, ints: bool = False) -> Decimal:
    """A bounded decimal >= 0 (quantities, cumulative fills, prices where 0 means "none")."""
    value = decimal(obj, key, ints=ints)
    if value < 0:
        raise MalformedMessage(f"field {key!r} is negative: {show(obj[key])}")
    return value


def positive(obj: dict[str, Any], key: str, *, ints: bool = False) -> Decimal:
    """A bounded decimal > 0 (a mark price, a tick size)."""
    value = decimal(obj, key, ints=ints)
    if value <= 0:
        raise MalformedMessage(f"field {key!r} is not positive: {show(obj[key])}")
    return value


def integer(obj: dict[str, Any], key: str, *, low: int = 0, high: int = MAX_INT) -> int:
    """A JSON integer, or a string of ASCII digits, in ``low..high`` (``"²"`` is a digit to ``str.isdigit``)."""
    value = required(obj, key)
    if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MalformedMessage(f"field {key!r} is not an integer in {low}..{high}: {show(value)}")
    return value


def millis(obj: dict[str, Any], key: str) -> int:
    value = required(obj, key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise MalformedMessage(f"field {key!r} is not a millisecond timestamp: {show(value)}")
    return value


def funding(rate: Any, next_ms: Any, what: str) -> tuple[Decimal | None, float | None]:
    """A mark's funding rate (judged like every number: ``number``) and next funding time (epoch milliseconds, to
    seconds), both or neither: a missing or unreadable field leaves the mark without funding, never drops the mark."""
    if isinstance(next_ms, bool) or not isinstance(next_ms, int) or not 0 < next_ms <= MAX_INT:
        return None, None
    try:
        return number(rate, what), next_ms / 1000
    except MalformedMessage:
        return None, None
