"""Hedge-pair request bodies (``POST /api/pairs``, ``POST /api/pairs/link``) to typed requests, or a ``BadRequest``
naming the offending field (``legs[1].symbol``, ``qty``...). One table per body drives parsing and the OpenAPI
schema, as for the order bodies (``posmon.api.validation``).

``POST /api/pairs``::

    {"legs": [{"venue": "aster", "symbol": "BTC/USDT:USDT"}, {"venue": "lighter"}],
     "side": "LONG", "qty": "0.01",                    # or "notional_usd": 500 (at the first leg's mark)
     "tp_usd": 50, "sl_usd": 30, "tp_percent": 2, "sl_percent": 1,      # optional, on the combined PnL
     "on_leg_exit": "close", "protect_stop_percent": 0.5,               # or "protect": a tight stop instead
     "max_leg_imbalance_pct": 1, "auto_rebalance": false}

``side`` is the first leg's (the second takes the other); a leg's ``symbol`` is its venue's symbol, market id or
unified name; the second leg's may be left out (the first leg's asset on that venue). ``POST /api/pairs/link``
takes ``legs`` with each leg's ``symbol`` (and ``side`` when posmon holds both) and the same optional pair rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from posmon.api.errors import BadRequest
from posmon.api.validation import (
    _PERCENT_STR,
    _POSITIVE_STR,
    SYMBOL_SCHEMA,
    VENUE_SCHEMA,
    BodyField,
    _decimal,
    _number_schema,
    parse_fields,
    parse_side,
    parse_symbol,
    parse_value,
    parse_venue,
)
from posmon.control import LinkRequest, PairLegRef, PairRequest
from posmon.domain.pairs import OnLegExit, PairRules

_LEG_KEYS = ("venue", "symbol", "side")


def _positive(v: Any) -> Decimal:
    d = _decimal(v)
    if d <= 0:
        raise ValueError("expected a number > 0")
    return d


def _percent(v: Any) -> Decimal:
    d = _decimal(v)
    if not 0 < d < 100:
        raise ValueError("expected a number > 0 and < 100")
    return d


def _imbalance(v: Any) -> Decimal:
    d = _decimal(v)
    if not 0 <= d < 100:
        raise ValueError("expected a number from 0 (no alarm) to under 100")
    return d


def _on_leg_exit(v: Any) -> OnLegExit:
    if isinstance(v, str) and v.lower() in {e.value for e in OnLegExit}:
        return OnLegExit(v.lower())
    raise ValueError("expected 'close' (the other leg closed at market) or 'protect' (a tight stop on it)")


def _boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError("expected true or false")


def _legs(*, link: bool) -> Any:
    def parse(v: Any) -> tuple[PairLegRef, PairLegRef]:
        if not isinstance(v, list) or len(v) != 2:
            raise ValueError("expected two legs: [{'venue': 'aster', 'symbol': ...}, {'venue': 'lighter', ...}]")
        refs = []
        for i, leg in enumerate(v):
            name = f"legs[{i}]"
            if not isinstance(leg, Mapping):
                raise BadRequest(f"invalid {name}: expected an object with venue and symbol", field=name)
            allowed = _LEG_KEYS if link else _LEG_KEYS[:2]
            for key in leg:
                if key not in allowed:
                    raise BadRequest(
                        f"unknown field {key!r} in {name}; allowed: {', '.join(allowed)}", field=f"{name}.{key}"
                    )
            if "venue" not in leg:
                raise BadRequest(f"missing field 'venue' in {name}", field=f"{name}.venue")
            venue = parse_value(f"{name}.venue", parse_venue, leg["venue"])
            symbol = leg.get("symbol")
            if symbol is None and (link or i == 0):
                raise BadRequest(f"missing field 'symbol' in {name}", field=f"{name}.symbol")
            if symbol is not None:
                symbol = parse_value(f"{name}.symbol", parse_symbol, symbol)
            side = parse_value(f"{name}.side", parse_side, leg["side"]) if "side" in leg else None
            refs.append(PairLegRef(venue, symbol, side))
        if refs[0].venue == refs[1].venue:
            raise BadRequest(f"both legs on {refs[0].venue}; a pair hedges across two venues", field="legs[1].venue")
        return refs[0], refs[1]

    return parse


def _leg_schema(*, link: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "venue": dict(VENUE_SCHEMA),
        "symbol": {**SYMBOL_SCHEMA, "description": "the venue's symbol, market id or unified name"},
    }
    if link:
        props["side"] = {"type": "string", "enum": ["LONG", "SHORT"], "description": "default: the side held"}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": ["venue", "symbol"] if link else ["venue"],
    }


def _legs_field(*, link: bool) -> BodyField:
    what = (
        "the two positions to pair: each leg's venue, symbol and (when posmon holds both sides) side"
        if link
        else "the two legs: the first leg's venue and symbol (or unified name such as BTC/USDT:USDT); the "
        "second's venue, its symbol optional (default: the same asset there)"
    )
    return BodyField(
        "legs",
        _legs(link=link),
        {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": _leg_schema(link=link),
            "description": what,
            "example": [{"venue": "aster", "symbol": "BTCUSDT"}, {"venue": "lighter", "symbol": "BTC"}],
        },
    )


RULE_FIELDS: tuple[BodyField, ...] = (
    BodyField(
        "tp_usd",
        _positive,
        {**_number_schema(_POSITIVE_STR, minimum=1e-8), "description": "close both legs at this combined PnL"},
        required=False,
    ),
    BodyField(
        "sl_usd",
        _positive,
        {**_number_schema(_POSITIVE_STR, minimum=1e-8), "description": "close both legs at minus this combined PnL"},
        required=False,
    ),
    BodyField(
        "tp_percent",
        _percent,
        {
            **_number_schema(_PERCENT_STR, minimum=1e-8, exclusiveMaximum=100),
            "description": "the same in % of the pair's notional",
        },
        required=False,
    ),
    BodyField(
        "sl_percent",
        _percent,
        {
            **_number_schema(_PERCENT_STR, minimum=1e-8, exclusiveMaximum=100),
            "description": "the same in % of the pair's notional",
        },
        required=False,
    ),
    BodyField(
        "on_leg_exit",
        _on_leg_exit,
        {
            "type": "string",
            "enum": ["close", "protect"],
            "description": "when one leg exits: close the other at market (default) or give it a tight stop",
        },
        required=False,
    ),
    BodyField(
        "protect_stop_percent",
        _percent,
        {
            **_number_schema(_PERCENT_STR, minimum=1e-8, exclusiveMaximum=100),
            "description": "the tight stop's distance from the mark with on_leg_exit=protect (default 0.5)",
        },
        required=False,
    ),
    BodyField(
        "max_leg_imbalance_pct",
        _imbalance,
        {
            "anyOf": [{"type": "number", "minimum": 0, "exclusiveMaximum": 100}, {"type": "string"}],
            "description": "alarm when the legs' quantities differ by more (0: no alarm; default 1)",
        },
        required=False,
    ),
    BodyField(
        "auto_rebalance",
        _boolean,
        {"type": "boolean", "description": "trim the larger leg to the smaller on an imbalance alarm"},
        required=False,
    ),
)

PAIR_FIELDS: tuple[BodyField, ...] = (
    _legs_field(link=False),
    BodyField(
        "side",
        parse_side,
        {
            "type": "string",
            "enum": ["LONG", "SHORT"],
            "description": "the first leg's side; the second takes the other",
        },
    ),
    BodyField(
        "qty",
        _positive,
        {
            **_number_schema(_POSITIVE_STR, minimum=1e-8, maximum=1e12),
            "description": "base quantity of each leg, rounded down to each venue's step (the residue reported); "
            "give qty or notional_usd",
        },
        required=False,
    ),
    BodyField(
        "notional_usd",
        _positive,
        {
            **_number_schema(_POSITIVE_STR, minimum=1e-8, maximum=1e12),
            "description": "or the notional in USD at the first leg's mark",
        },
        required=False,
    ),
    *RULE_FIELDS,
)
LINK_FIELDS: tuple[BodyField, ...] = (_legs_field(link=True), *RULE_FIELDS)


def _rules(v: Mapping[str, Any]) -> PairRules:
    defaults = PairRules()
    return PairRules(
        tp_quote=v.get("tp_usd"),
        sl_quote=v.get("sl_usd"),
        tp_pct=v.get("tp_percent"),
        sl_pct=v.get("sl_percent"),
        on_leg_exit=v.get("on_leg_exit", defaults.on_leg_exit),
        protect_stop_pct=v.get("protect_stop_percent", defaults.protect_stop_pct),
        max_leg_imbalance_pct=v.get("max_leg_imbalance_pct", defaults.max_leg_imbalance_pct),
        auto_rebalance=v.get("auto_rebalance", defaults.auto_rebalance),
    )


def parse_pair(body: Mapping[str, Any]) -> PairRequest:
    v = parse_fields(body, PAIR_FIELDS)
    if ("qty" in v) == ("notional_usd" in v):
        raise BadRequest("give exactly one of qty (base quantity) or notional_usd", field="qty")
    return PairRequest(v["legs"], v["side"], v.get("qty"), v.get("notional_usd"), _rules(v))


def parse_link(body: Mapping[str, Any]) -> LinkRequest:
    v = parse_fields(body, LINK_FIELDS)
    return LinkRequest(v["legs"], _rules(v))
