"""The OpenAPI 3.1 document of the control API, built from the same field tables the handlers validate with."""

from __future__ import annotations

from typing import Any

from posmon.api.validation import ORDER_FIELDS, POSITION_CLOSE_FIELDS, TRANCHE_CLOSE_FIELDS, BodyField

_DECIMAL = {"type": "string", "description": "exact decimal"}
_NULLABLE_DECIMAL = {"type": ["string", "null"], "description": "exact decimal"}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _body_schema(fields: tuple[BodyField, ...]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "properties": {f.name: dict(f.schema) for f in fields},
            "required": [f.name for f in fields if f.required]}


def _refusals(*codes: int) -> dict[str, Any]:
    words = {400: "malformed JSON or not an object", 401: "missing or wrong bearer token",
             404: "nothing found for the symbol or id", 413: "body too large",
             422: "a field is missing, unknown, mistyped or out of range (the answer names it)",
             500: "internal error", 503: "the daemon could not act now"}
    return {str(c): {"description": words[c], "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _symbol_param() -> dict[str, Any]:
    return {"name": "symbol", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "venue symbol, or a Lighter market id"}


def _body(ref: str, *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _order(side: str) -> dict[str, Any]:
    return {"post": {
        "summary": f"Open a {side} position at market and protect it",
        "description": "SL at sl_percent from the fill, TP at sl_percent * reward / risk from the fill.",
        "requestBody": _body("OrderRequest", required=True),
        "responses": {"200": _ok("entry filled; exits placed", {"$ref": "#/components/schemas/OpenResult"}),
                      "202": _ok("entry placed, not filled yet", {"$ref": "#/components/schemas/OpenResult"}),
                      **_refusals(400, 401, 413, 422, 500, 503)},
    }}


def openapi_schema() -> dict[str, Any]:
    tranche = {"type": "object", "properties": {
        "id": {"type": "integer"}, "venue": {"type": "string"}, "symbol": {"type": "string"},
        "side": {"type": "string", "enum": ["LONG", "SHORT"]}, "index": {"type": "integer"},
        "entry": _DECIMAL, "qty": _DECIMAL, "tp": _DECIMAL, "sl": _DECIMAL,
        "opened_at": {"type": "number", "description": "unix seconds"},
        "max_hold_seconds": {"type": "integer", "description": "0: no limit"},
        "timeout_at": {"type": ["number", "null"]}, "remaining_seconds": {"type": ["number", "null"]},
        "mark": _NULLABLE_DECIMAL, "unrealized_pnl": _NULLABLE_DECIMAL, "closing": {"type": ["string", "null"]},
        "exits": {"type": "string", "enum": ["exchange", "emulated"]}}}
    close = _ok("closes started", {"type": "object", "properties": {"closing": {"type": "array", "items": {
        "type": "object", "properties": {"symbol": {"type": "string"}, "side": {"type": "string"},
                                         "tranche_ids": {"type": "array", "items": {"type": "integer"}}}}}}})
    return {
        "openapi": "3.1.0",
        "info": {"title": "posmon control API", "version": "1",
                 "description": "Operate a running posmon daemon. Every endpoint but /health needs "
                                "'Authorization: Bearer <token>' when the daemon is configured with a token."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "OrderRequest": _body_schema(ORDER_FIELDS),
                "PositionClose": _body_schema(POSITION_CLOSE_FIELDS),
                "TrancheClose": _body_schema(TRANCHE_CLOSE_FIELDS),
                "Error": {"type": "object", "required": ["error", "field"], "properties": {
                    "error": {"type": "string"}, "field": {"type": ["string", "null"]}}},
                "OpenResult": {"type": "object", "properties": {
                    "symbol": {"type": "string"}, "side": {"type": "string"},
                    "status": {"type": "string", "enum": ["FILLED", "PENDING"]}, "tranche_id": {"type": "integer"},
                    "client_id": {"type": "string"}, "qty": _DECIMAL, "entry_price": _NULLABLE_DECIMAL,
                    "tp": _NULLABLE_DECIMAL, "sl": _NULLABLE_DECIMAL, "sl_percent": _DECIMAL,
                    "tp_percent": _DECIMAL}},
                "Tranche": tranche,
                "Status": {"type": "object", "properties": {
                    "running": {"type": "boolean"}, "venue": {"type": "string"}, "started_at": {"type": "number"},
                    "streams": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "up": {"type": "boolean"},
                        "last_frame_age_seconds": {"type": ["number", "null"]}}}},
                    "tranches": {"type": "array", "items": {"$ref": "#/components/schemas/Tranche"}},
                    "unmonitored": {"type": "array", "items": {"type": "string"}},
                    "extra": {"type": "object"}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": {"summary": "Liveness for container health checks (never needs a token)",
                                "security": [],
                                "responses": {"200": _ok("running", {"type": "object"}),
                                              "503": _ok("stopped or not answering", {"type": "object"})}}},
            "/metrics": {"get": {"summary": "Prometheus text exposition",
                                 "responses": {"200": {"description": "metrics",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                               **_refusals(401, 404)}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _ok("schema", {
                "type": "object"}), **_refusals(401)}}},
            "/api/monitor/status": {"get": {
                "summary": "Running state, stream health and every monitored tranche",
                "responses": {"200": _ok("status", {"$ref": "#/components/schemas/Status"}),
                              **_refusals(401, 500, 503)}}},
            "/api/orders/long": _order("LONG"),
            "/api/orders/short": _order("SHORT"),
            "/api/monitor/stop/{symbol}": {"post": {
                "summary": "Stop monitoring a symbol without closing it (its posmon orders are cancelled)",
                "parameters": [_symbol_param()],
                "responses": {"200": _ok("stopped", {"type": "object"}), **_refusals(400, 401, 404, 422, 500)}}},
            "/api/monitor/resume/{symbol}": {"post": {
                "summary": "Resume monitoring a symbol (adopted again at the next reconcile)",
                "parameters": [_symbol_param()],
                "responses": {"200": _ok("resumed", {"type": "object"}), **_refusals(400, 401, 404, 422, 500)}}},
            "/api/positions/{symbol}/close": {"post": {
                "summary": "Close every tranche of a symbol now, or one side",
                "parameters": [_symbol_param(), {"name": "side", "in": "query", "required": False,
                                                 "schema": {"type": "string", "enum": ["LONG", "SHORT"]}}],
                "requestBody": _body("PositionClose", required=False),
                "responses": {"200": close, **_refusals(400, 401, 404, 422, 500)}}},
            "/api/tranches/{id}/close": {"post": {
                "summary": "Close one tranche now; its symbol is looked up in the status unless given",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "requestBody": _body("TrancheClose", required=False),
                "responses": {"200": close, **_refusals(400, 401, 404, 422, 500)}}},
        },
    }
