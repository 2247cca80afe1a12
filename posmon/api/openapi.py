"""The OpenAPI 3.1 document of the control API, built from the same field tables the handlers validate with.

What it promises is a subset of what the server accepts (anchored patterns, numeric ranges), so a client
generated from it does not send values the server then refuses; what a schema cannot say (a SHORT's TP must
stay above zero, the venue's price filter) is in the descriptions and answers 422 naming the field.
"""

from __future__ import annotations

from typing import Any

from posmon.api.pair_validation import LINK_FIELDS, PAIR_FIELDS
from posmon.api.validation import (
    HISTORY_PARAMS,
    ORDER_FIELDS,
    POSITION_CLOSE_FIELDS,
    SYMBOL_SCHEMA,
    TRANCHE_CLOSE_FIELDS,
    TRANCHE_ID_SCHEMA,
    VENUE_SCHEMA,
    BodyField,
)
from posmon.control import EXIT_STATES

_PAIR_LEG = {
    "type": "object",
    "properties": {
        "venue": {"type": "string"},
        "symbol": {"type": "string"},
        "instrument": {"type": ["string", "null"]},
        "side": {"type": "string", "enum": ["LONG", "SHORT"]},
        "qty": {"type": "string", "description": "exact decimal: held now"},
        "entry": {"type": ["string", "null"]},
        "mark": {"type": ["string", "null"]},
        "pnl": {"type": "string", "description": "unrealized at the mark plus funding"},
        "funding": {"type": "string", "description": "funding received (+) or paid (-) on this venue"},
        "stale": {"type": "boolean", "description": "no recent mark, or its account's streams are down"},
        "tranche_ids": {"type": "array", "items": {"type": "integer"}},
    },
}
_PAIR = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["opening", "open", "closing", "broken", "closed", "unknown"]},
        "legs": {"type": "array", "items": _PAIR_LEG, "minItems": 2, "maxItems": 2},
        "pnl": {"type": "string", "description": "combined PnL of both legs plus funding"},
        "pnl_pct": {"type": ["string", "null"], "description": "in % of the pair's notional"},
        "imbalance_pct": {"type": "string"},
        "imbalance_breached": {"type": "boolean"},
        "residue": {"type": "array", "items": {"type": "string"}, "description": "per leg: lost to rounding/trims"},
        "close_reason": {"type": ["string", "null"]},
        "rules": {"type": "object"},
    },
    "required": ["id", "status"],
}

_DECIMAL = {"type": "string", "description": "exact decimal"}
_NULLABLE_DECIMAL = {"type": ["string", "null"], "description": "exact decimal"}
_HEALTH = {"$ref": "#/components/schemas/Health"}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _body_schema(fields: tuple[BodyField, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: dict(f.schema) for f in fields},
        "required": [f.name for f in fields if f.required],
    }


def _refusals(*codes: int) -> dict[str, Any]:
    words = {
        400: "malformed JSON or not an object",
        401: "missing or wrong bearer token",
        403: "a Host that is not this API's, or a cross-origin (browser) request",
        404: "nothing found for the symbol or id",
        408: "the body did not arrive in time",
        413: "body too large",
        415: "Content-Type is not application/json",
        422: "a field is missing, unknown, mistyped or out of range (the answer names it)",
        500: "internal error",
        503: "the daemon could not act now (busy: see Retry-After)",
    }
    out = {str(c): {"description": words[c], "content": {"application/json": {"schema": _ERROR}}} for c in codes}
    if "503" in out:
        out["503"]["headers"] = {
            "Retry-After": {
                "description": "seconds to wait when the daemon is busy",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return out


# Every request may be refused for its Host or Origin; every POST also for its Content-Type or a slow body.
_READ_REFUSALS = (401, 403)
_WRITE_REFUSALS = (400, 401, 403, 404, 408, 413, 415, 422, 500, 503)


_INSTRUMENT = {
    "type": ["string", "null"],
    "description": "the symbol's unified name BASE/QUOTE:SETTLE (e.g. BTC/USDT:USDT; Lighter's BTC is "
    "BTC/USDC:USDC); null when the venue's market list does not say what it is",
}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _symbol_param() -> dict[str, Any]:
    return {
        "name": "symbol",
        "in": "path",
        "required": True,
        "schema": dict(SYMBOL_SCHEMA),
        "description": "venue symbol, a Lighter market id, or a unified name such as BTC/USDT:USDT (send its '/' "
        "as %2F)",
    }


def _body(ref: str, *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _order(side: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"Open a {side} position at market and protect it",
            "description": "SL at sl_percent from the fill, TP at sl_percent * reward / risk from the fill, or "
            "the first level of a take-profit ladder (tp_levels). The optional exit-plan fields (ladder, trailing "
            "stop, break-even) override the symbol's configured keys one by one ([] or 0 switches one off); the "
            "plan they make is validated before anything is sent (422 naming the field).",
            "requestBody": _body("OrderRequest", required=True),
            "responses": {
                "200": _ok("entry filled; exits placed", {"$ref": "#/components/schemas/OpenResult"}),
                "202": _ok("entry placed, not filled yet", {"$ref": "#/components/schemas/OpenResult"}),
                **_refusals(*_WRITE_REFUSALS),
            },
        }
    }


def _closed_tranche() -> dict[str, Any]:
    seconds = {"type": "number", "description": "unix seconds"}
    properties: dict[str, Any] = {
        "id": {"type": "integer"},
        "venue": {"type": "string"},
        "symbol": {"type": "string"},
        "side": {"type": "string", "enum": ["LONG", "SHORT"]},
        "index": {"type": "integer"},
        "entry": _DECIMAL,
        "exit_price": {**_NULLABLE_DECIMAL, "description": "volume-weighted over the exit fills; null: none"},
        "qty": {**_DECIMAL, "description": "quantity its exits closed"},
        "exit_reason": {"type": "string", "description": "TP, SL, TIMEOUT, MANUAL, EXTERNAL, MERGED, ..."},
        "realized_pnl": {**_DECIMAL, "description": "before fees"},
        "fees": {**_DECIMAL, "description": "as the venue reported them for posmon's exit orders (else 0)"},
        "net_pnl": {**_DECIMAL, "description": "realized_pnl - fees"},
        "opened_at": seconds,
        "closed_at": seconds,
        "hold_seconds": {"type": "number"},
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _exit_plan() -> dict[str, Any]:
    """A tranche's ``plan`` in the status: null for one TP and one SL, else the plan and what it did so far."""
    pct = {**_DECIMAL, "description": "percent"}
    ladder = {
        "type": ["object", "null"],
        "description": "take-profit ladder: one level rests at a time",
        "properties": {
            "level": {"type": "integer", "description": "levels filled so far"},
            "of": {"type": "integer", "description": "levels in all"},
            "tp": {**_DECIMAL, "description": "the current level's TP (the tranche's tp)"},
            "level_qty": {**_NULLABLE_DECIMAL, "description": "what the current level closes"},
            "levels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "pct": pct,
                        "share": {**_DECIMAL, "description": "percent of the tranche"},
                        "price": _NULLABLE_DECIMAL,
                        "filled": {"type": "boolean"},
                    },
                },
            },
        },
    }
    trailing = {
        "type": ["object", "null"],
        "properties": {
            "active": {"type": "boolean", "description": "the stop follows the best mark"},
            "activation_pct": pct,
            "callback_pct": pct,
            "min_step_pct": pct,
            "best_mark": {**_NULLABLE_DECIMAL, "description": "as of the last time it moved the stop"},
            "stop": {**_NULLABLE_DECIMAL, "description": "the stop held now while active"},
        },
    }
    breakeven = {
        "type": ["object", "null"],
        "properties": {
            "earned": {"type": "boolean", "description": "the stop was moved to the entry plus the offset"},
            "after_tp": {"type": "integer", "description": "ladder levels that earn it (0: not on fills)"},
            "offset_pct": pct,
            "trigger_pct": {**_NULLABLE_DECIMAL, "description": "gain that earns it (null: not on the mark)"},
            "stop": {**_NULLABLE_DECIMAL, "description": "the break-even stop price"},
        },
    }
    return {
        "type": ["object", "null"],
        "description": "its exit plan; null: one TP, one SL",
        "properties": {
            "describe": {"type": "string"},
            "summary": {"type": "string", "description": "its state in short, e.g. 'TP 2/3 TRAIL BE@TP2'"},
            "ladder": ladder,
            "trailing": trailing,
            "breakeven": breakeven,
        },
    }


def openapi_schema(*, bearer_required: bool = True) -> dict[str, Any]:
    """The document; ``bearer_required``: whether this daemon has a token (else the bearer scheme is optional)."""
    tranche = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "venue": {"type": "string"},
            "symbol": {"type": "string"},
            "side": {"type": "string", "enum": ["LONG", "SHORT"]},
            "index": {"type": "integer"},
            "entry": _DECIMAL,
            "qty": _DECIMAL,
            "tp": _DECIMAL,
            "sl": _DECIMAL,
            "opened_at": {"type": "number", "description": "unix seconds"},
            "max_hold_seconds": {"type": "integer", "description": "0: no limit"},
            "timeout_at": {"type": ["number", "null"]},
            "remaining_seconds": {"type": ["number", "null"]},
            "mark": _NULLABLE_DECIMAL,
            "unrealized_pnl": _NULLABLE_DECIMAL,
            "closing": {"type": ["string", "null"]},
            "instrument": _INSTRUMENT,
            "exits": {"type": "string", "enum": ["exchange", "emulated", "unknown"]},
            "exits_live": {
                "type": "boolean",
                "description": "exchange: its TP and SL orders are both working on the venue; emulated: posmon is "
                "watching its TP and SL (its actor runs, monitoring is on, it is not closing)",
            },
            "exit_orders": {
                "type": "object",
                "description": "per exit leg: LIVE (working), PENDING (sent, not confirmed), CANCELING, MISSING "
                "(none on the venue); on an emulated venue WATCHED or UNWATCHED",
                "properties": {
                    "tp": {"type": "string", "enum": list(EXIT_STATES)},
                    "sl": {"type": "string", "enum": list(EXIT_STATES)},
                },
            },
            "plan": _exit_plan(),
        },
    }
    stopped = {
        "type": "object",
        "properties": {
            "symbol": {"type": "string"},
            "monitoring": {"type": "boolean", "const": False},
            "tranche_ids": {"type": "array", "items": {"type": "integer"}, "description": "tranches forgotten"},
            "exits": {
                "type": "string",
                "enum": ["exchange", "emulated"],
                "description": "exchange: their TP/SL orders were cancelled; emulated: posmon stopped watching them",
            },
            "message": {"type": "string", "description": "what was cancelled; the position stays open, unprotected"},
        },
    }
    close = _ok(
        "closes started",
        {
            "type": "object",
            "properties": {
                "closing": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "symbol": {"type": "string"},
                            "side": {"type": "string"},
                            "tranche_ids": {"type": "array", "items": {"type": "integer"}},
                        },
                    },
                }
            },
        },
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "posmon control API",
            "version": "1",
            "description": "Operate a running posmon daemon. Every endpoint but /health and /ready needs "
            "'Authorization: Bearer <token>' when the daemon is configured with a token "
            "(always when it listens beyond loopback); on loopback without a token none is "
            "needed, and this document then declares the bearer scheme optional. Every POST "
            "needs 'Content-Type: application/json' (send {} for an empty body); requests "
            "whose Host is not this API's or that come from another origin are refused (403).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "OrderRequest": _body_schema(ORDER_FIELDS),
                "PositionClose": _body_schema(POSITION_CLOSE_FIELDS),
                "TrancheClose": _body_schema(TRANCHE_CLOSE_FIELDS),
                "Empty": _body_schema(()),
                "PairRequest": _body_schema(PAIR_FIELDS),
                "PairLink": _body_schema(LINK_FIELDS),
                "Pair": _PAIR,
                "Error": {
                    "type": "object",
                    "required": ["error", "field"],
                    "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
                },
                "OpenResult": {
                    "type": "object",
                    "properties": {
                        "symbol": {"type": "string"},
                        "instrument": _INSTRUMENT,
                        "side": {"type": "string"},
                        "status": {"type": "string", "enum": ["FILLED", "PENDING"]},
                        "tranche_id": {"type": "integer"},
                        "client_id": {"type": "string"},
                        "qty": _DECIMAL,
                        "entry_price": _NULLABLE_DECIMAL,
                        "tp": _NULLABLE_DECIMAL,
                        "sl": _NULLABLE_DECIMAL,
                        "sl_percent": _DECIMAL,
                        "tp_percent": {
                            **_DECIMAL,
                            "description": "TP distance from the entry (a ladder's first level)",
                        },
                        "leverage": {"type": "integer", "description": "set on the venue before the entry"},
                        "plan": {
                            **_exit_plan(),
                            "description": "the tranche's exit plan (the entry's plan fields over the symbol's "
                            "configured ones) as the status shows it; while PENDING only 'describe'; null: one TP, "
                            "one SL",
                        },
                        "notional_usd": {
                            **_DECIMAL,
                            "description": "qty x entry price (estimated at the mark while PENDING)",
                        },
                        "margin_usd": {**_DECIMAL, "description": "notional_usd / leverage"},
                        "risk_usd": {
                            **_DECIMAL,
                            "description": "USD lost if the SL fills at its price: "
                            "qty x |entry - SL| (notional_usd x sl_percent / 100 while PENDING)",
                        },
                    },
                },
                "Tranche": tranche,
                "Health": {
                    "type": "object",
                    "required": ["status", "state"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "starting", "stopped", "unresponsive", "error"]},
                        "state": {"type": "string", "enum": ["starting", "ready"]},
                    },
                },
                "ClosedTranche": _closed_tranche(),
                "History": {
                    "type": "object",
                    "required": ["tranches", "realized_pnl", "fees", "net_pnl"],
                    "properties": {
                        "tranches": {"type": "array", "items": {"$ref": "#/components/schemas/ClosedTranche"}},
                        "realized_pnl": _DECIMAL,
                        "fees": _DECIMAL,
                        "net_pnl": _DECIMAL,
                    },
                },
                "Status": {
                    "type": "object",
                    "properties": {
                        "running": {"type": "boolean"},
                        "venue": {"type": "string"},
                        "started_at": {"type": "number"},
                        "streams": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "up": {"type": "boolean"},
                                    "last_frame_age_seconds": {"type": ["number", "null"]},
                                },
                            },
                        },
                        "tranches": {"type": "array", "items": {"$ref": "#/components/schemas/Tranche"}},
                        "unmonitored": {"type": "array", "items": {"type": "string"}},
                        "extra": {"type": "object"},
                        "now": {"type": ["number", "null"], "description": "the daemon's clock (unix seconds)"},
                        "rate_limit": {
                            "type": ["object", "null"],
                            "description": "request budget free now, as the order gateway paces it",
                            "properties": {
                                "weight_headroom": {"type": "number", "description": "0..1"},
                                "orders_headroom": {"type": "number", "description": "0..1"},
                                "weight_per_minute": {"type": "integer"},
                                "orders_per_minute": {"type": "integer"},
                                "paused_seconds": {"type": "number"},
                                "paced": {"type": "integer"},
                                "throttled": {"type": "integer"},
                            },
                        },
                        "pairs": {
                            "type": "array",
                            "description": "hedge pairs not closed (a daemon running several venues)",
                            "items": _PAIR,
                        },
                        "accounts": {
                            "type": "array",
                            "description": "every venue account: its state, streams and request budget",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "venue": {"type": "string"},
                                    "state": {
                                        "type": "string",
                                        "enum": ["connecting", "unreachable", "starting", "ready"],
                                    },
                                    "detail": {"type": "string"},
                                    "exits": {"type": ["string", "null"], "enum": ["exchange", "emulated", None]},
                                    "streams": {"type": "array", "items": {"type": "object"}},
                                    "rate_limit": {"type": ["object", "null"]},
                                    "unmonitored": {"type": "array", "items": {"type": "string"}},
                                    "positions": {"type": "integer", "description": "open tranches on it"},
                                },
                            },
                        },
                    },
                },
            },
        },
        "security": [{"bearer": []}] if bearer_required else [{}, {"bearer": []}],
        "paths": {
            "/health": {
                "get": {
                    "summary": "Liveness for container health checks (never needs a token)",
                    "security": [],
                    "responses": {
                        "200": _ok("running (state: starting or ready)", _HEALTH),
                        "503": _ok("stopped or not answering", _HEALTH),
                        **_refusals(403),
                    },
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: 200 once start-up is over (store, venue, account reconciled, every "
                    "position actor watching) and the daemon answers; 503 while starting or wedged (never needs "
                    "a token)",
                    "security": [],
                    "responses": {
                        "200": _ok("ready", _HEALTH),
                        "503": _ok("starting, stopped or not answering", _HEALTH),
                        **_refusals(403),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus text exposition",
                    "responses": {
                        "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **_refusals(*_READ_REFUSALS, 404),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _ok("schema", {"type": "object"}), **_refusals(*_READ_REFUSALS)},
                }
            },
            "/api/monitor/status": {
                "get": {
                    "summary": "Running state, stream health and every monitored tranche",
                    "responses": {
                        "200": _ok("status", {"$ref": "#/components/schemas/Status"}),
                        **_refusals(*_READ_REFUSALS, 500, 503),
                    },
                }
            },
            "/api/stream": {
                "get": {
                    "summary": "Live status for the dashboard: server-sent events",
                    "description": "text/event-stream. 'event: status' carries the JSON of /api/monitor/status "
                    "whenever it changes (checked about once a second), a ': heartbeat' comment when nothing "
                    "changed for 10 s, 'event: reconnect' when the stream ends after about 25 s (open the next "
                    "one), 'event: end' when the daemon stops. Read it with fetch() to send the bearer token.",
                    "responses": {
                        "200": {
                            "description": "the event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_refusals(*_READ_REFUSALS, 503),
                    },
                }
            },
            "/api/orders/long": _order("LONG"),
            "/api/orders/short": _order("SHORT"),
            "/api/monitor/stop/{symbol}": {
                "post": {
                    "summary": "Stop monitoring a symbol without closing it (its posmon orders are cancelled)",
                    "parameters": [
                        _symbol_param(),
                        {"name": "venue", "in": "query", "required": False, "schema": dict(VENUE_SCHEMA)},
                    ],
                    "requestBody": _body("Empty", required=True),
                    "responses": {"200": _ok("stopped", stopped), **_refusals(*_WRITE_REFUSALS)},
                }
            },
            "/api/monitor/resume/{symbol}": {
                "post": {
                    "summary": "Resume monitoring a symbol (adopted again at the next reconcile)",
                    "parameters": [
                        _symbol_param(),
                        {"name": "venue", "in": "query", "required": False, "schema": dict(VENUE_SCHEMA)},
                    ],
                    "requestBody": _body("Empty", required=True),
                    "responses": {"200": _ok("resumed", {"type": "object"}), **_refusals(*_WRITE_REFUSALS)},
                }
            },
            "/api/positions/{symbol}/close": {
                "post": {
                    "summary": "Close every tranche of a symbol now, or one side",
                    "parameters": [
                        _symbol_param(),
                        {
                            "name": "side",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["LONG", "SHORT"]},
                        },
                        {"name": "venue", "in": "query", "required": False, "schema": dict(VENUE_SCHEMA)},
                    ],
                    "requestBody": _body("PositionClose", required=True),
                    "responses": {"200": close, **_refusals(*_WRITE_REFUSALS)},
                }
            },
            "/api/history": {
                "get": {
                    "summary": "Closed tranches, oldest first, with exit price, reason, PnL, fees and hold time",
                    "parameters": [
                        {"name": name, "in": "query", "required": False, "schema": dict(schema), "description": text}
                        for name, (_parse, schema, text) in HISTORY_PARAMS.items()
                    ],
                    "responses": {
                        "200": _ok("history", {"$ref": "#/components/schemas/History"}),
                        **_refusals(400, *_READ_REFUSALS, 500),
                    },
                }
            },
            "/api/pairs": {
                "get": {
                    "summary": "Hedge pairs not closed: both legs, per-leg and combined PnL, funding, imbalance",
                    "responses": {
                        "200": _ok(
                            "pairs",
                            {"type": "object", "properties": {"pairs": {"type": "array", "items": _PAIR}}},
                        ),
                        **_refusals(*_READ_REFUSALS, 503),
                    },
                },
                "post": {
                    "summary": "Open a hedge pair: one leg on each venue, opposite sides, the same base quantity",
                    "description": "Both entries are decided and persisted first, then sent together; each leg is "
                    "protected by its symbol's TP/SL in its venue's exit style. One entry rejected: the other is "
                    "unwound (status broken, then closed); one filled partially: the other is trimmed to match. "
                    "When one leg exits (TP, SL, liquidation, manual...), the other is closed at market "
                    "(on_leg_exit=close) or given a tight stop (protect). 409: the daemon runs one venue.",
                    "requestBody": _body("PairRequest", required=True),
                    "responses": {
                        "200": _ok("both entries ended", _PAIR),
                        "202": _ok("entries sent, not both ended yet", _PAIR),
                        **_refusals(*_WRITE_REFUSALS),
                    },
                },
            },
            "/api/pairs/link": {
                "post": {
                    "summary": "Pair two positions posmon already holds (one per venue, opposite sides)",
                    "requestBody": _body("PairLink", required=True),
                    "responses": {"200": _ok("linked", _PAIR), **_refusals(*_WRITE_REFUSALS)},
                }
            },
            "/api/pairs/{id}/close": {
                "post": {
                    "summary": "Close both legs of a pair now (at market, each venue's bounded slippage)",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": dict(TRANCHE_ID_SCHEMA)}],
                    "requestBody": _body("Empty", required=True),
                    "responses": {"200": _ok("closing", _PAIR), **_refusals(*_WRITE_REFUSALS)},
                }
            },
            "/api/tranches/{id}/close": {
                "post": {
                    "summary": "Close one tranche now; its symbol is looked up in the status unless given",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": dict(TRANCHE_ID_SCHEMA)}],
                    "requestBody": _body("TrancheClose", required=True),
                    "responses": {"200": close, **_refusals(*_WRITE_REFUSALS)},
                }
            },
        },
    }
