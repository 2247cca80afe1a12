"""``create_app``: the operator's HTTP API, a thin layer over the daemon's ``Control`` object.

Every request goes through one pipeline: authenticate (everything but ``/health`` when a token is set), parse
and validate the body and path completely, and only then call the control object; refusals answer
``{"error": ..., "field": ...}``. The log names the method, path, status and client, never a header.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from posmon.api.auth import Unauthorized, check_bearer
from posmon.api.errors import BadRequest
from posmon.api.openapi import openapi_schema
from posmon.api.serialize import error_response, json_response
from posmon.api.validation import (
    POSITION_CLOSE_FIELDS,
    TRANCHE_CLOSE_FIELDS,
    decode_json,
    parse_fields,
    parse_order,
    parse_symbol,
    parse_tranche_id,
    parse_value,
)
from posmon.control import Control, ControlError
from posmon.domain.orders import Side

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEFAULT_HEALTH_TIMEOUT_SECONDS = 5.0

MetricsRender = Callable[[], tuple[bytes, str]]
Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    control: Control,
    *,
    metrics_render: MetricsRender | None,
    token: str | None,
    health_timeout_seconds: float = DEFAULT_HEALTH_TIMEOUT_SECONDS,
) -> Starlette:
    """The ASGI app. ``token`` (None or '' for none) guards every endpoint but ``/health``.

    ``metrics_render`` returns ``(body, content_type)`` for ``/metrics`` (404 without it); ``/health`` waits
    at most ``health_timeout_seconds`` for ``control.status()`` so a wedged daemon answers 503, not silence.
    """
    api = _Api(control, metrics_render, health_timeout_seconds)
    guard = _Guard(token.encode() if token else None)
    routes = [
        Route("/health", guard.wrap(api.health, public=True), methods=["GET"]),
        Route("/metrics", guard.wrap(api.metrics), methods=["GET"]),
        Route("/openapi.json", guard.wrap(api.openapi), methods=["GET"]),
        Route("/api/monitor/status", guard.wrap(api.status), methods=["GET"]),
        Route("/api/orders/long", guard.wrap(api.open_long), methods=["POST"]),
        Route("/api/orders/short", guard.wrap(api.open_short), methods=["POST"]),
        Route("/api/monitor/stop/{symbol}", guard.wrap(api.stop), methods=["POST"]),
        Route("/api/monitor/resume/{symbol}", guard.wrap(api.resume), methods=["POST"]),
        Route("/api/positions/{symbol}/close", guard.wrap(api.close_position), methods=["POST"]),
        Route("/api/tranches/{id}/close", guard.wrap(api.close_tranche), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})


async def _http_exception(_request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer in the same JSON shape as every other refusal."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.detail, None, exc.status_code, exc.headers)


class _Guard:
    """Authentication, refusal mapping and the request log, around every handler."""

    def __init__(self, token: bytes | None) -> None:
        self._token = token

    def wrap(self, handler: Handler, *, public: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            response = await self._answer(handler, request, public)
            level = logging.DEBUG if request.method == "GET" and response.status_code < 500 else logging.INFO
            client = request.client.host if request.client is not None else "?"
            log.log(level, "api %s %s -> %d (client %s)", request.method, request.url.path, response.status_code,
                    client)
            return response

        return endpoint

    async def _answer(self, handler: Handler, request: Request, public: bool) -> Response:
        try:
            if self._token is not None and not public:
                check_bearer(request.headers.get("authorization"), self._token)
            return await handler(request)
        except Unauthorized as exc:
            return error_response(str(exc), exc.field, exc.status, {"WWW-Authenticate": exc.challenge})
        except BadRequest as exc:
            return error_response(str(exc), exc.field, exc.status)
        except ControlError as exc:
            status = exc.status if 400 <= exc.status <= 599 else 500
            log.info("api %s %s refused by the daemon: %s", request.method, request.url.path, exc)
            return error_response(str(exc), exc.field, status)
        except Exception:
            log.exception("api %s %s failed; answering 500, the daemon keeps running", request.method,
                          request.url.path)
            return error_response("internal error; see the daemon's log", None, 500)


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 beyond ``MAX_BODY_BYTES`` before it is all buffered."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", field="body", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _path_symbol(request: Request) -> str:
    return parse_value("symbol", parse_symbol, request.path_params["symbol"])


class _Api:
    """The handlers; each validates everything it was sent before it calls the control object."""

    def __init__(self, control: Control, metrics_render: MetricsRender | None, health_timeout: float) -> None:
        self._control = control
        self._metrics_render = metrics_render
        self._health_timeout = health_timeout

    async def health(self, _request: Request) -> Response:
        """200 while the daemon runs. Public and minimal: it reveals liveness, nothing about positions."""
        try:
            with trio.move_on_after(self._health_timeout):
                report = await self._control.status()
                if report.running:
                    return json_response({"status": "ok"})
                return json_response({"status": "stopped"}, 503)
            return json_response({"status": "unresponsive"}, 503)
        except Exception:
            log.exception("health check: status failed")
            return json_response({"status": "error"}, 503)

    async def metrics(self, _request: Request) -> Response:
        if self._metrics_render is None:
            return error_response("metrics are not enabled in this daemon", None, 404)
        body, content_type = self._metrics_render()
        return Response(body, media_type=content_type)

    async def openapi(self, _request: Request) -> Response:
        return json_response(openapi_schema())

    async def status(self, _request: Request) -> Response:
        return json_response(await self._control.status())

    async def open_long(self, request: Request) -> Response:
        return await self._open(request, Side.LONG)

    async def open_short(self, request: Request) -> Response:
        return await self._open(request, Side.SHORT)

    async def _open(self, request: Request, side: Side) -> Response:
        order = parse_order(decode_json(await _read_body(request)), side)
        result = await self._control.open_position(order)
        payload: dict[str, Any] = {"symbol": result.symbol, "side": result.side, "status": result.status,
                                   "tranche_id": result.tranche_id, "client_id": result.client_id, "qty": result.qty,
                                   "entry_price": result.entry_price, "tp": result.tp, "sl": result.sl,
                                   "sl_percent": order.sl_pct, "tp_percent": order.tp_pct.normalize()}
        # 202: the entry is placed but not filled yet, so its exits are not placed either.
        return json_response(payload, 200 if result.entry_price is not None else 202)

    async def stop(self, request: Request) -> Response:
        symbol = _path_symbol(request)
        parse_fields(decode_json(await _read_body(request), optional=True), ())  # an empty or {} body only
        result = await self._control.stop_monitoring(symbol)
        return json_response({"symbol": result.symbol, "monitoring": False, "tranche_ids": result.tranche_ids})

    async def resume(self, request: Request) -> Response:
        symbol = _path_symbol(request)
        parse_fields(decode_json(await _read_body(request), optional=True), ())  # an empty or {} body only
        await self._control.resume_monitoring(symbol)
        return json_response({"symbol": symbol, "monitoring": True})

    async def close_position(self, request: Request) -> Response:
        """Close every tranche of the symbol now, or one side (``{"side": "LONG"}`` or ``?side=LONG``)."""
        symbol = _path_symbol(request)
        body = parse_fields(decode_json(await _read_body(request), optional=True), POSITION_CLOSE_FIELDS)
        side = body.get("side")
        if "side" in request.query_params:
            query_side = parse_value("side", POSITION_CLOSE_FIELDS[0].parse, request.query_params["side"])
            if side is not None and side is not query_side:
                raise BadRequest("side given twice with different values", field="side")
            side = query_side
        return await self._close(symbol, side, None, f"no open tranche of {symbol}" + (f" {side}" if side else ""))

    async def close_tranche(self, request: Request) -> Response:
        """Close one tranche now; its symbol comes from the body or, when absent, from the status."""
        tranche_id = parse_value("id", parse_tranche_id, request.path_params["id"])
        body = parse_fields(decode_json(await _read_body(request), optional=True), TRANCHE_CLOSE_FIELDS)
        symbol: str | None = body.get("symbol")
        side: Side | None = None
        if symbol is None:
            report = await self._control.status()
            found = next((t for t in report.tranches if t.id == tranche_id), None)
            if found is None:
                raise BadRequest(f"no open tranche {tranche_id}", field="id", status=404)
            symbol, side = found.symbol, found.side
        return await self._close(symbol, side, tranche_id, f"no open tranche {tranche_id} of {symbol}")

    async def _close(self, symbol: str, side: Side | None, tranche_id: int | None, nothing: str) -> Response:
        results = await self._control.close(symbol, side, tranche_id)
        if not results or not any(r.tranche_ids for r in results):
            raise BadRequest(nothing, field="id" if tranche_id is not None else "symbol", status=404)
        return json_response({"closing": results})
