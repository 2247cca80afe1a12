"""Request bodies and path parameters to typed requests, or a ``BadRequest`` naming the offending field.

Validation happens entirely before the control object is called, so a malformed request never reaches an
exchange. Numbers are parsed into ``Decimal`` exactly (JSON floats never pass through binary floating point),
and one table per body drives both parsing and the OpenAPI schema so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posmon.api.errors import BadRequest
from posmon.control import OpenRequest
from posmon.domain.exitplan import MAX_LEVELS
from posmon.domain.orders import Side
from posmon.plan_fields import LEVELS_EXAMPLE, PLAN_FIELDS, Levels, PlanField, levels_ok
from posmon.store.history import MAX_LIMIT as MAX_HISTORY_LIMIT
from posmon.store.history import parse_limit, parse_since

MAX_LEVERAGE = 125
# Decimals beyond this many powers of ten either way are typos (or attacks on arithmetic), never intents.
_MAX_MAGNITUDE = 18
# reward/risk outside [1/100, 100] is a typo, and a TP 100 times the stop's distance may be past any price the
# venue accepts (see control.check_exits, which also checks the venue's price filter).
MIN_RR = Decimal("0.01")
MAX_RR = Decimal(100)
MAX_RR_COMPONENT = Decimal(1000)
# Every pattern is anchored: JSON Schema patterns match anywhere unless they say otherwise, and the server
# matches whole values.
# A venue symbol or market id, or a unified instrument name BASE/QUOTE:SETTLE (posmon.domain.instruments).
_SYMBOL_RE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,39}"
    r"|[A-Za-z0-9][A-Za-z0-9._-]{0,19}/[A-Za-z0-9][A-Za-z0-9._-]{0,19}:[A-Za-z0-9][A-Za-z0-9._-]{0,19})$"
)
_DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
_TRANCHE_ID_RE = re.compile(r"^[0-9]{1,18}$")
# What the OpenAPI document promises for numbers sent as strings: a subset of what the parsers accept, so a
# schema-driven client never sends a value the server refuses (plain notation, at most 8 decimals).
_POSITIVE_STR = r"^(?:[1-9][0-9]{0,11}(?:\.[0-9]{1,8})?|0\.[0-9]{0,7}[1-9])$"  # > 0 and < 10^12
_PERCENT_STR = r"^(?:[1-9][0-9]?(?:\.[0-9]{1,8})?|0\.[0-9]{0,7}[1-9])$"  # > 0 and < 100
_RR_STR = r"^(?:100|[1-9][0-9]?(?:\.[0-9]{1,8})?)$"  # 1 to 100
_MIN_NUMBER = 1e-8


@dataclass(frozen=True, slots=True)
class BodyField:
    """One key of a JSON body: its parser (raising ``ValueError`` with what is expected) and its schema."""

    name: str
    parse: Callable[[Any], Any]
    schema: Mapping[str, Any]
    required: bool = True


# ---- values ----------------------------------------------------------------------------------------------------


def _decimal(v: Any) -> Decimal:
    if isinstance(v, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(v, int):
        d = Decimal(v)
    elif isinstance(v, Decimal):
        d = v
    elif isinstance(v, str) and _DECIMAL_RE.fullmatch(v):
        d = Decimal(v)
    else:
        raise ValueError("expected a number (or a decimal string)")
    if not d.is_finite() or (d != 0 and abs(d.adjusted()) > _MAX_MAGNITUDE):
        raise ValueError(f"expected a finite number between 1e-{_MAX_MAGNITUDE} and 1e{_MAX_MAGNITUDE}")
    return d


def parse_symbol(v: Any) -> str:
    """A venue symbol (``BTCUSDT``), a Lighter market id (``7``) or a unified name (``BTC/USDT:USDT``), upper-cased
    as posmon's config writes them."""
    if not isinstance(v, str) or not _SYMBOL_RE.fullmatch(v):
        raise ValueError(
            "expected a symbol such as 'BTCUSDT', a market id such as '7' (letters, digits, "
            "'.', '_' or '-', at most 40 characters) or a unified name BASE/QUOTE:SETTLE such as 'BTC/USDT:USDT'"
        )
    return v.upper()


_VENUE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,19}$")


def parse_venue(v: Any) -> str:
    """A venue account's name (``aster``, ``lighter``), lower-cased; whether the daemon runs it is the control
    object's call (422 naming ``venue`` otherwise)."""
    if not isinstance(v, str) or not _VENUE_RE.fullmatch(v):
        raise ValueError("expected a venue name such as 'aster' or 'lighter'")
    return v.lower()


def parse_side(v: Any) -> Side:
    if isinstance(v, str) and v.upper() in Side.__members__:
        return Side[v.upper()]
    raise ValueError("expected 'LONG' or 'SHORT'")


def parse_tranche_id(v: Any) -> int:
    if isinstance(v, str) and _TRANCHE_ID_RE.fullmatch(v):
        return int(v)
    raise ValueError("expected a tranche id: a non-negative integer")


def _size_usd(v: Any) -> Decimal:
    d = _decimal(v)
    if d <= 0:
        raise ValueError("expected a number > 0")
    return d


def _leverage(v: Any) -> int:
    """An integer; ``5.0`` counts as one (JSON Schema says so, and schema-driven clients send it)."""
    expected = f"expected an integer from 1 to {MAX_LEVERAGE}"
    if isinstance(v, Decimal) and v.is_finite() and 1 <= v <= MAX_LEVERAGE and v == v.to_integral_value():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_LEVERAGE:
        raise ValueError(expected)
    return v


def _sl_percent(v: Any) -> Decimal:
    d = _decimal(v)
    if not 0 < d < 100:
        raise ValueError("expected a number > 0 and < 100")
    return d


def _rr_ratio(v: Any) -> tuple[Decimal, Decimal]:
    expected = (
        f"expected [risk, reward]: two numbers > 0 and <= {MAX_RR_COMPONENT} with reward / risk from {MIN_RR} "
        f"to {MAX_RR}, e.g. [1, 2]"
    )
    if not isinstance(v, list) or len(v) != 2:
        raise ValueError(expected)
    risk, reward = (_decimal(x) for x in v)
    if not (0 < risk <= MAX_RR_COMPONENT and 0 < reward <= MAX_RR_COMPONENT and MIN_RR <= reward / risk <= MAX_RR):
        raise ValueError(expected)
    return risk, reward


def _number_schema(string_pattern: str, **bounds: float) -> Mapping[str, Any]:
    """A JSON number within ``bounds``, or a decimal string matching ``string_pattern`` (the same range)."""
    return {"oneOf": [{"type": "number", **bounds}, {"type": "string", "pattern": string_pattern}]}


# ---- exit-plan fields (issue 15): optional, each overriding the symbol's configured key ---------------------------
# Each field alone is checked here (type, range); the plan they make with the symbol's keys is checked by the
# control object before anything is sent (422 naming the field): shares summing to 100, a callback of 0.1 at least,
# break-even needing a ladder... which a schema cannot say.

_PCT_STR = r"^(?:0|[1-9][0-9]?)(?:\.[0-9]{1,8})?$"  # >= 0 and < 100
_OFFSET_STR = r"^[0-9](?:\.[0-9]{1,8})?$"  # >= 0 and < 10
_CALLBACK_STR = r"^(?:0|0\.[1-9][0-9]{0,7}|[1-9](?:\.[0-9]{1,8})?|[1-4][0-9](?:\.[0-9]{1,8})?|50)$"  # 0, 0.1 to 50
_PLAN_STR = {"breakeven_offset_pct": _OFFSET_STR, "trailing_callback_pct": _CALLBACK_STR}


def _tp_levels(v: Any) -> Levels:
    expected = (
        "expected a list of [pct, share] pairs of numbers (pct > 0 and < 100, share > 0 and <= 100, at most "
        f"{MAX_LEVELS} levels; [] for none), e.g. {LEVELS_EXAMPLE}"
    )
    if not isinstance(v, list) or not all(isinstance(p, list) and len(p) == 2 for p in v):
        raise ValueError(expected)
    levels = tuple((_decimal(p[0]), _decimal(p[1])) for p in v)
    if not levels_ok(levels):
        raise ValueError(expected)
    return levels


def _plan_value(f: PlanField) -> Callable[[Any], Any]:
    """The parser of one numeric plan field: its kind, within its range (the table's, as in the config)."""
    b = f.bounds
    assert b is not None
    off = f" ({f.off})" if f.off else ""

    def parse(v: Any) -> Decimal | int:
        if f.kind == "int":
            integral = isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value()
            if (integral or (isinstance(v, int) and not isinstance(v, bool))) and int(v) in b:
                return int(v)
            raise ValueError(f"expected an integer {b.text(True)}{off}")
        d = _decimal(v)
        if d not in b:
            raise ValueError(f"expected a number {b.text()}{off}")
        return d

    return parse


def _plan_schema(f: PlanField) -> Mapping[str, Any]:
    words = f"{f.text}{f'; {f.off}' if f.off else ''}. Overrides the symbol's configured {f.name}"
    if f.bounds is None:
        level = {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": _number_schema(_PERCENT_STR, minimum=_MIN_NUMBER, exclusiveMaximum=100),
        }
        return {
            "type": "array",
            "maxItems": MAX_LEVELS,
            "items": level,
            "description": words,
            "example": [[1, 30], [2, 70]],
        }
    b = f.bounds
    if f.kind == "int":
        return {"type": "integer", "minimum": b.low, "maximum": b.high, "description": words}
    # 0 (off, or the least), else from ``least`` (or the smallest magnitude _decimal takes) up to the range's end.
    high = {"exclusiveMaximum" if b.high_open else "maximum": float(b.high)}
    number = {"type": "number", "minimum": float(f.least) if f.least is not None else _MIN_NUMBER, **high}
    string = {"type": "string", "pattern": _PLAN_STR.get(f.name, _PCT_STR)}
    return {"anyOf": [{"const": 0}, number, string], "description": words}


PLAN_BODY_FIELDS: tuple[BodyField, ...] = tuple(
    BodyField(f.name, _tp_levels if f.bounds is None else _plan_value(f), _plan_schema(f), required=False)
    for f in PLAN_FIELDS
)
TRANCHE_ID_SCHEMA: Mapping[str, Any] = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
VENUE_SCHEMA: Mapping[str, Any] = {
    "type": "string",
    "pattern": _VENUE_RE.pattern,
    "example": "aster",
    "description": "the venue account (aster, lighter); required when the daemon runs several, else optional",
}
VENUE_FIELD = BodyField("venue", parse_venue, VENUE_SCHEMA, required=False)
SYMBOL_SCHEMA: Mapping[str, Any] = {"type": "string", "pattern": _SYMBOL_RE.pattern}

ORDER_FIELDS: tuple[BodyField, ...] = (
    BodyField(
        "symbol",
        parse_symbol,
        {
            **SYMBOL_SCHEMA,
            "example": "BTCUSDT",
            "description": "venue symbol, or unified name such as BTC/USDT:USDT (upper-cased)",
        },
    ),
    BodyField(
        "size_usd",
        _size_usd,
        {
            **_number_schema(_POSITIVE_STR, minimum=_MIN_NUMBER, maximum=1e12),
            "description": "notional value of the position in USD (qty x price), > 0; margin = size_usd / "
            "leverage, USD at risk at the SL = size_usd x sl_percent / 100",
            "example": 100,
        },
    ),
    BodyField(
        "leverage",
        _leverage,
        {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LEVERAGE,
            "example": 5,
            "description": "set on the venue for the symbol before the entry is sent; decides the margin only "
            "(size_usd / leverage). A leverage the venue refuses answers 422 naming leverage, no answer 504: "
            "nothing is sent either way",
        },
    ),
    BodyField(
        "sl_percent",
        _sl_percent,
        {
            **_number_schema(_PERCENT_STR, minimum=_MIN_NUMBER, exclusiveMaximum=100),
            "description": "stop-loss distance from the entry in percent, > 0 and < 100",
            "example": 3,
        },
    ),
    BodyField(
        "rr_ratio",
        _rr_ratio,
        {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": _number_schema(_RR_STR, minimum=1, maximum=100),
            "description": f"[risk, reward]: TP distance = sl_percent * reward / risk. The server accepts components "
            f"> 0 and <= {MAX_RR_COMPONENT} with reward / risk from {MIN_RR} to {MAX_RR} (this schema "
            "asks for 1 to 100 each, which keeps to that); a SHORT also needs sl_percent * reward / risk "
            "< 100 (its TP above zero), and the TP and SL must lie within the venue's price filter, "
            "else 422 naming rr_ratio or sl_percent",
            "example": [1, 2],
        },
    ),
    *PLAN_BODY_FIELDS,
    VENUE_FIELD,
)
POSITION_CLOSE_FIELDS: tuple[BodyField, ...] = (
    BodyField(
        "side",
        parse_side,
        {"type": "string", "enum": ["LONG", "SHORT"], "description": "close only this side (default: both)"},
        required=False,
    ),
    VENUE_FIELD,
)
TRANCHE_CLOSE_FIELDS: tuple[BodyField, ...] = (
    BodyField(
        "symbol",
        parse_symbol,
        {**SYMBOL_SCHEMA, "description": "the tranche's symbol (default: looked up in the status)"},
        required=False,
    ),
    BodyField(
        "venue",
        parse_venue,
        {**VENUE_SCHEMA, "description": "the tranche's venue account (default: looked up in the status)"},
        required=False,
    ),
)


# ---- bodies ----------------------------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"duplicate field {key!r}", field=key)
        out[key] = value
    return out


def decode_json(raw: bytes, *, optional: bool = False) -> dict[str, Any]:
    """The JSON object in ``raw`` with every non-integer number as an exact ``Decimal``; 400 if it is not one."""
    if optional and not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}", field="body", status=400) from None
    except RecursionError:
        raise BadRequest("malformed JSON body: nested too deeply", field="body", status=400) from None
    if not isinstance(value, dict):
        raise BadRequest(f"expected a JSON object, got {type(value).__name__}", field="body", status=400)
    return value


def parse_fields(body: Mapping[str, Any], spec: tuple[BodyField, ...]) -> dict[str, Any]:
    """Each field of ``spec`` parsed (missing optional ones left out); unknown and missing fields are refused."""
    known = [f.name for f in spec]
    for key in body:
        if key not in known:
            allowed = ", ".join(repr(n) for n in known) or "none"
            raise BadRequest(f"unknown field {key!r}; allowed fields: {allowed}", field=key)
    out: dict[str, Any] = {}
    for f in spec:
        if f.name not in body:
            if f.required:
                raise BadRequest(f"missing field {f.name!r}", field=f.name)
            continue
        out[f.name] = parse_value(f.name, f.parse, body[f.name])
    return out


def parse_value(name: str, parse: Callable[[Any], Any], raw: Any) -> Any:
    """``parse(raw)``, its ``ValueError`` turned into a 422 naming ``name`` and showing the value."""
    try:
        return parse(raw)
    except ValueError as exc:
        shown = _shown(raw)
        raise BadRequest(f"invalid {name} {shown}: {exc}", field=name) from None


def _shown(raw: Any) -> str:
    text = json.dumps(raw, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_order(body: Mapping[str, Any], side: Side) -> OpenRequest:
    v = parse_fields(body, ORDER_FIELDS)
    order = OpenRequest(
        symbol=v["symbol"],
        side=side,
        size_usd=v["size_usd"],
        leverage=v["leverage"],
        sl_pct=v["sl_percent"],
        rr_ratio=v["rr_ratio"],
        plan_fields={f.name: v[f.name] for f in PLAN_BODY_FIELDS if f.name in v},
        venue=v.get("venue"),
    )
    if side is Side.SHORT and order.tp_pct >= 100:
        raise BadRequest(
            f"invalid rr_ratio: sl_percent {order.sl_pct} x reward / risk = {order.tp_pct.normalize():f} "
            "% puts a SHORT's TP at or below zero; expected a product under 100",
            field="rr_ratio",
        )
    return order


# ---- GET /api/history ------------------------------------------------------------------------------------------

# name -> (parser, OpenAPI schema, description). Parsed whole before the control object is called.
HISTORY_PARAMS: dict[str, tuple[Callable[[str], Any], Mapping[str, Any], str]] = {
    "since": (
        parse_since,
        {"type": "string"},
        "closed at or after: unix seconds, or an ISO-8601 date or date-time (UTC unless it carries an offset)",
    ),
    "symbol": (parse_symbol, SYMBOL_SCHEMA, "only this symbol (or Lighter market id, or unified name)"),
    "limit": (
        parse_limit,
        {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_LIMIT},
        "keep only the most recent N closed tranches",
    ),
    "venue": (parse_venue, VENUE_SCHEMA, "only this venue account's (default: every account's)"),
}


def parse_history_query(items: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The history filters from a query string's (key, value) pairs; 400 naming the field for anything else."""
    out: dict[str, Any] = {}
    for key, raw in items:
        if key not in HISTORY_PARAMS:
            allowed = ", ".join(repr(n) for n in HISTORY_PARAMS)
            raise BadRequest(f"unknown query parameter {key!r}; allowed: {allowed}", field=key, status=400)
        if key in out:
            raise BadRequest(f"query parameter {key!r} given twice", field=key, status=400)
        if raw == "":
            continue  # ?since= is "no filter", as a form leaves an empty field
        try:
            out[key] = HISTORY_PARAMS[key][0](raw)
        except ValueError as exc:
            raise BadRequest(f"invalid {key} {_shown(raw)}: {exc}", field=key, status=400) from None
    return out
