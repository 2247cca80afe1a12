"""``create_app``: the operator's HTTP API, a thin layer over the daemon's ``Control`` object.

Every request goes through one pipeline: refuse what a web page elsewhere could send (a ``Host`` that is not
this API's, a foreign ``Origin`` or ``Sec-Fetch-Site``), authenticate (everything but ``/health`` and ``/ready`` when
a token is set), require ``Content-Type: application/json`` on every state-changing request, parse and validate the
body (read within a time limit) and path completely, and only then call the control object; refusals answer
``{"error": ..., "field": ...}``. The log names the method, path, status and client, never a header.

Why the browser checks: with the default (loopback, no token) the API trusts whoever can reach the port, and a
browser page on any site can reach loopback. A cross-site ``text/plain`` POST needs no CORS preflight, and DNS
rebinding points a name the attacker owns at 127.0.0.1. Requiring JSON forces a preflight (which this API never
grants), a foreign ``Origin`` is refused, and the ``Host`` header (which carries the attacker's name under
rebinding) must name this API: a loopback name, the address the connection arrived on, or ``allowed_hosts``.
The port in ``Host`` is not compared: an SSH tunnel or a port-forward legitimately changes it, and rebinding is
defeated by the name alone.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import trio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from posmon.api.auth import Unauthorized, check_bearer
from posmon.api.dashboard import StatusFeed, StreamSettings, page_handlers
from posmon.api.errors import BadRequest
from posmon.api.openapi import openapi_schema
from posmon.api.pair_validation import parse_link, parse_pair
from posmon.api.serialize import error_response, json_response
from posmon.api.validation import (
    POSITION_CLOSE_FIELDS,
    TRANCHE_CLOSE_FIELDS,
    decode_json,
    parse_fields,
    parse_history_query,
    parse_order,
    parse_symbol,
    parse_tranche_id,
    parse_value,
    parse_venue,
)
from posmon.control import Control, ControlError
from posmon.domain.orders import Side
from posmon.readiness import Readiness

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEFAULT_HEALTH_TIMEOUT_SECONDS = 5.0
# A body is a few hundred bytes: one that has not arrived in full by then is never coming (or is an attack on
# the connection count); the request is answered 408 and its connection freed.
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
JSON_TYPE = "application/json"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

MetricsRender = Callable[[], tuple[bytes, str]]
Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    control: Control,
    *,
    metrics_render: MetricsRender | None,
    token: str | None,
    health_timeout_seconds: float = DEFAULT_HEALTH_TIMEOUT_SECONDS,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    allowed_hosts: Iterable[str] = (),
    stream: StreamSettings | None = None,
    readiness: Readiness | None = None,
    describe: Callable[[], Mapping[str, Any]] | None = None,
) -> ASGIApp:
    """The ASGI app. ``token`` (None or '' for none) guards every endpoint but ``/health`` and ``/ready``.

    ``metrics_render`` returns ``(body, content_type)`` for ``/metrics`` (404 without it); ``/health`` waits
    at most ``health_timeout_seconds`` for ``control.status()`` so a wedged daemon answers 503, not silence.
    ``allowed_hosts``: host names (no port) accepted in the ``Host`` header besides loopback names and the
    address a connection arrived on, e.g. the DNS name remote clients use for a token-protected API.
    ``stream``: pacing and limits of the dashboard's live feed (``posmon.api.dashboard``).
    ``readiness``: the daemon's start-up phase, reported by ``/health`` and required by ``/ready`` (None: a control
    object that is ready as soon as it answers).
    ``describe``: more fields for the ``/health`` and ``/ready`` bodies (a cluster instance's role and accounts).
    """
    api = _Api(
        control,
        metrics_render,
        health_timeout_seconds,
        body_timeout_seconds,
        bearer_required=bool(token),
        readiness=readiness,
        describe=describe,
    )
    guard = _Guard(token.encode() if token else None)
    routes = [
        Route("/health", guard.wrap(api.health, public=True), methods=["GET"]),
        Route("/ready", guard.wrap(api.ready, public=True), methods=["GET"]),
        Route("/metrics", guard.wrap(api.metrics), methods=["GET"]),
        Route("/openapi.json", guard.wrap(api.openapi), methods=["GET"]),
        Route("/api/monitor/status", guard.wrap(api.status), methods=["GET"]),
        Route("/api/orders/long", guard.wrap(api.open_long), methods=["POST"]),
        Route("/api/orders/short", guard.wrap(api.open_short), methods=["POST"]),
        # {symbol:path}: a unified name's "/" (sent as %2F, which the server decodes before routing) stays in it
        Route("/api/monitor/stop/{symbol:path}", guard.wrap(api.stop), methods=["POST"]),
        Route("/api/monitor/resume/{symbol:path}", guard.wrap(api.resume), methods=["POST"]),
        Route("/api/positions/{symbol:path}/close", guard.wrap(api.close_position), methods=["POST"]),
        Route("/api/tranches/{id}/close", guard.wrap(api.close_tranche), methods=["POST"]),
        Route("/api/history", guard.wrap(api.history), methods=["GET"]),
        Route("/api/pairs", guard.wrap(api.pairs), methods=["GET"]),
        Route("/api/pairs", guard.wrap(api.open_pair), methods=["POST"]),
        Route("/api/pairs/link", guard.wrap(api.link_pair), methods=["POST"]),
        Route("/api/pairs/{id}/close", guard.wrap(api.close_pair), methods=["POST"]),
        # The dashboard: its files hold no data (public); its live feed is guarded like every data call.
        Route("/api/stream", guard.wrap(StatusFeed(control, stream).stream), methods=["GET"]),
        *(Route(path, guard.wrap(page, public=True), methods=["GET"]) for path, page in page_handlers().items()),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})
    app.router.redirect_slashes = False  # a trailing slash is dropped before routing instead (no 307)
    return _SameOrigin(app, frozenset(_host_name(h) for h in allowed_hosts) | LOOPBACK_NAMES)


def _host_name(host: str) -> str:
    """The lower-cased name of a ``Host`` value (``[::1]:8787`` -> ``::1``, ``Example.COM`` -> ``example.com``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host  # a bare IPv6 literal, or a name without a port


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def _authority(host: str, scheme: str) -> tuple[str, int] | None:
    """``(name, port)`` of a ``Host`` value, the scheme's default port when none is given; None if malformed."""
    try:
        parts = urlsplit(f"{scheme}://{host.strip()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower(), port if port is not None else _default_port(scheme)


class _SameOrigin:
    """Refuse (403) what a web page on another site could send, before anything else looks at the request.

    Also drops a single trailing slash from the path, so ``/api/monitor/status/`` answers like
    ``/api/monitor/status`` rather than with a redirect a client may not follow.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            raw: bytes = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": raw.rstrip(b"/") or b"/"}
        refusal = self._refusal(scope, Headers(scope=scope))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        message, field = refusal
        client = scope.get("client") or ("?", 0)
        log.warning(
            "api %s %s -> 403 (client %s): %s; nothing done", scope["method"], scope["path"], client[0], message
        )
        await error_response(message, field, 403)(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[str, str] | None:
        scheme = scope.get("scheme", "http")
        host = headers.get("host")
        authority = _authority(host, scheme) if host else None
        if authority is None:
            return "missing or malformed Host header", "Host"
        server = scope.get("server")
        local = {_host_name(str(server[0]))} if server else set()
        if not self._host_ok(authority[0], local):
            return (
                f"Host {_shown(authority[0])} is not an address of this API (expected a loopback name, the "
                "address it listens on, or a name in api.allowed_hosts)",
                "Host",
            )
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin, authority):
            return (
                f"cross-origin request from {_shown(origin)} refused; only same-origin pages may call this API",
                "Origin",
            )
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return f"cross-site request (Sec-Fetch-Site: {_shown(site)}) refused", "Sec-Fetch-Site"
        return None

    def _host_ok(self, name: str, local: set[str]) -> bool:
        if name in self.allowed or name in local:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    @staticmethod
    def _same_origin(origin: str, authority: tuple[str, int]) -> bool:
        """Whether ``origin`` is this API's own: the name and port of ``Host`` (http, or https behind a proxy)."""
        try:
            parts = urlsplit(origin.strip())
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            return False
        return (parts.hostname.lower(), port if port is not None else _default_port(parts.scheme)) == authority


def _shown(value: str) -> str:
    """A client-supplied value for a log line or an answer: repr'd and cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
            log.log(
                level, "api %s %s -> %d (client %s)", request.method, request.url.path, response.status_code, client
            )
            return response

        return endpoint

    async def _answer(self, handler: Handler, request: Request, public: bool) -> Response:
        try:
            if self._token is not None and not public:
                check_bearer(request.headers.get("authorization"), self._token)
            if request.method not in _SAFE_METHODS:
                _require_json(request.headers.get("content-type"))
            return await handler(request)
        except Unauthorized as exc:
            return error_response(str(exc), exc.field, exc.status, {"WWW-Authenticate": exc.challenge})
        except BadRequest as exc:
            return error_response(str(exc), exc.field, exc.status)
        except ControlError as exc:
            status = exc.status if 400 <= exc.status <= 599 else 500
            log.info("api %s %s refused by the daemon: %s", request.method, request.url.path, exc)
            headers = {"Retry-After": str(math.ceil(exc.retry_after))} if exc.retry_after is not None else None
            return error_response(str(exc), exc.field, status, headers)
        except ClientDisconnect:
            # Nobody is left to answer; nothing was done. Not an error of the daemon's.
            log.info(
                "api %s %s: the client disconnected before its body arrived; nothing done",
                request.method,
                request.url.path,
            )
            return error_response("client disconnected", "body", 400)
        except Exception:
            log.exception("api %s %s failed; answering 500, the daemon keeps running", request.method, request.url.path)
            return error_response("internal error; see the daemon's log", None, 500)


def _require_json(content_type: str | None) -> None:
    """415 unless ``Content-Type`` is ``application/json`` (parameters such as ``charset`` allowed).

    A browser may send a cross-site ``text/plain`` or form POST without asking first; ``application/json``
    makes it ask (a CORS preflight), and this API never says yes.
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != JSON_TYPE:
        shown = _shown(content_type) if content_type else "none"
        raise BadRequest(
            f"expected Content-Type: {JSON_TYPE} (got {shown}); send a JSON body, {{}} when empty",
            field="Content-Type",
            status=415,
        )


async def _read_body(request: Request, limit_seconds: float) -> bytes:
    """The body, refused with 413 beyond ``MAX_BODY_BYTES`` before it is all buffered, 408 after ``limit_seconds``."""
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(limit_seconds):
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", field="body", status=413)
            chunks.append(chunk)
        return b"".join(chunks)
    raise BadRequest(f"body not received within {limit_seconds:g} s", field="body", status=408)


def _path_symbol(request: Request) -> str:
    return parse_value("symbol", parse_symbol, request.path_params["symbol"])


def _venue(request: Request, body: Mapping[str, Any] | None = None) -> str | None:
    """The venue account a command addresses: ``?venue=`` or the body's ``venue`` (the same if both)."""
    venue: str | None = (body or {}).get("venue")
    if "venue" in request.query_params:
        query_venue = parse_value("venue", parse_venue, request.query_params["venue"])
        if venue is not None and venue != query_venue:
            raise BadRequest("venue given twice with different values", field="venue")
        venue = query_venue
    return venue


def _addressed(venue: str | None) -> dict[str, str]:
    """``venue=`` for the control call when a venue was named (a control serving one venue needs none)."""
    return {} if venue is None else {"venue": venue}


class _Api:
    """The handlers; each validates everything it was sent before it calls the control object."""

    def __init__(
        self,
        control: Control,
        metrics_render: MetricsRender | None,
        health_timeout: float,
        body_timeout: float,
        *,
        bearer_required: bool,
        readiness: Readiness | None = None,
        describe: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self._control = control
        self._describe = describe
        self._metrics_render = metrics_render
        self._health_timeout = health_timeout
        self._body_timeout = body_timeout
        self._bearer_required = bearer_required
        self._readiness = readiness

    async def _body(self, request: Request) -> bytes:
        return await _read_body(request, self._body_timeout)

    async def health(self, _request: Request) -> Response:
        """200 while the daemon runs, starting or ready. Public and minimal: liveness and the start-up phase,
        nothing about positions."""
        return await self._liveness(ready_required=False)

    async def ready(self, _request: Request) -> Response:
        """200 once start-up is over and the daemon answers; 503 while starting, stopped or wedged (the container's
        ``HEALTHCHECK`` and load balancers ask this one)."""
        return await self._liveness(ready_required=True)

    async def _liveness(self, *, ready_required: bool) -> Response:
        state = self._readiness.state if self._readiness is not None else "ready"
        more = dict(self._describe()) if self._describe is not None else {}
        try:
            with trio.move_on_after(self._health_timeout):
                report = await self._control.status()
                if not report.running:
                    return json_response({"status": "stopped", "state": state, **more}, 503)
                if ready_required and state != "ready":
                    return json_response({"status": "starting", "state": state, **more}, 503)
                return json_response({"status": "ok", "state": state, **more})
            return json_response({"status": "unresponsive", "state": state, **more}, 503)
        except Exception:
            log.exception("health check: status failed")
            return json_response({"status": "error", "state": state, **more}, 503)

    async def metrics(self, _request: Request) -> Response:
        if self._metrics_render is None:
            return error_response("metrics are not enabled in this daemon", None, 404)
        body, content_type = self._metrics_render()
        return Response(body, media_type=content_type)

    async def openapi(self, _request: Request) -> Response:
        return json_response(openapi_schema(bearer_required=self._bearer_required))

    async def status(self, _request: Request) -> Response:
        return json_response(await self._control.status())

    async def history(self, request: Request) -> Response:
        """Closed tranches with exit price, reason, PnL and fees; ``?since=&symbol=&limit=``."""
        filters = parse_history_query(request.query_params.multi_items())
        return json_response((await self._control.history(**filters)).as_dict())

    async def open_long(self, request: Request) -> Response:
        return await self._open(request, Side.LONG)

    async def open_short(self, request: Request) -> Response:
        return await self._open(request, Side.SHORT)

    async def _open(self, request: Request, side: Side) -> Response:
        order = parse_order(decode_json(await self._body(request)), side)
        result = await self._control.open_position(order)
        payload: dict[str, Any] = {
            "symbol": result.symbol,
            **({"venue": result.venue} if result.venue is not None else {}),
            "instrument": result.instrument,
            "side": result.side,
            "status": result.status,
            "tranche_id": result.tranche_id,
            "client_id": result.client_id,
            "qty": result.qty,
            "entry_price": result.entry_price,
            "tp": result.tp,
            "sl": result.sl,
            "sl_percent": order.sl_pct,
            # With a ladder the TP is its first level's (the next level's, as each fills).
            "tp_percent": (levels[0].pct if (levels := result.plan.tp_levels) else order.tp_pct).normalize(),
            "leverage": order.leverage,
            # As status shows it (null: one TP, one SL); while PENDING (no tranche yet) only its description.
            "plan": result.plan_view or ({"describe": result.plan.describe()} if result.plan else None),
        }
        if result.sizing is not None:  # notional, margin and USD at risk: from the fill (estimated while pending)
            s = result.sizing
            payload |= {"notional_usd": s.notional_usd, "margin_usd": s.margin_usd, "risk_usd": s.risk_usd}
        # 202: the entry is placed but not filled yet, so its exits are not placed either.
        return json_response(payload, 200 if result.entry_price is not None else 202)

    async def pairs(self, _request: Request) -> Response:
        return json_response({"pairs": await self._control.pairs()})

    async def open_pair(self, request: Request) -> Response:
        """Both entries decided and persisted, then sent together; 200 once both ended (the pair as status shows
        it, or closed/broken when an entry was rejected), 202 while still opening."""
        result = await self._control.open_pair(parse_pair(decode_json(await self._body(request))))
        status = result.get("status") if isinstance(result, dict) else result.status
        return json_response(result, 202 if status == "opening" else 200)

    async def link_pair(self, request: Request) -> Response:
        return json_response(await self._control.link_pair(parse_link(decode_json(await self._body(request)))))

    async def close_pair(self, request: Request) -> Response:
        pair_id = parse_value("id", parse_tranche_id, request.path_params["id"])
        parse_fields(decode_json(await self._body(request), optional=True), ())  # an empty or {} body only
        return json_response(await self._control.close_pair(pair_id))

    async def stop(self, request: Request) -> Response:
        symbol = _path_symbol(request)
        parse_fields(decode_json(await self._body(request), optional=True), ())  # an empty or {} body only
        result = await self._control.stop_monitoring(symbol, **_addressed(_venue(request)))
        return json_response(
            {
                "symbol": result.symbol,
                "monitoring": False,
                "tranche_ids": result.tranche_ids,
                "exits": result.exits,
                "message": result.message,
            }
        )

    async def resume(self, request: Request) -> Response:
        symbol = _path_symbol(request)
        parse_fields(decode_json(await self._body(request), optional=True), ())  # an empty or {} body only
        await self._control.resume_monitoring(symbol, **_addressed(_venue(request)))
        return json_response({"symbol": symbol, "monitoring": True})

    async def close_position(self, request: Request) -> Response:
        """Close every tranche of the symbol now, or one side (``{"side": "LONG"}`` or ``?side=LONG``)."""
        symbol = _path_symbol(request)
        body = parse_fields(decode_json(await self._body(request), optional=True), POSITION_CLOSE_FIELDS)
        side = body.get("side")
        if "side" in request.query_params:
            query_side = parse_value("side", POSITION_CLOSE_FIELDS[0].parse, request.query_params["side"])
            if side is not None and side is not query_side:
                raise BadRequest("side given twice with different values", field="side")
            side = query_side
        nothing = f"no open tranche of {symbol}" + (f" {side}" if side else "")
        return await self._close(symbol, side, None, nothing, _venue(request, body))

    async def close_tranche(self, request: Request) -> Response:
        """Close one tranche now; its symbol comes from the body or, when absent, from the status."""
        tranche_id = parse_value("id", parse_tranche_id, request.path_params["id"])
        body = parse_fields(decode_json(await self._body(request), optional=True), TRANCHE_CLOSE_FIELDS)
        symbol: str | None = body.get("symbol")
        venue = _venue(request, body)
        side: Side | None = None
        if symbol is None:
            report = await self._control.status()
            found = next((t for t in report.tranches if t.id == tranche_id), None)
            if found is None:
                raise BadRequest(f"no open tranche {tranche_id}", field="id", status=404)
            symbol, side = found.symbol, found.side
            if venue is None and len(report.accounts) > 1:  # tranche ids are unique over venues: its own venue
                venue = found.venue
        return await self._close(symbol, side, tranche_id, f"no open tranche {tranche_id} of {symbol}", venue)

    async def _close(
        self, symbol: str, side: Side | None, tranche_id: int | None, nothing: str, venue: str | None = None
    ) -> Response:
        results = await self._control.close(symbol, side, tranche_id, **_addressed(venue))
        if not results or not any(r.tranche_ids for r in results):
            raise BadRequest(nothing, field="id" if tranche_id is not None else "symbol", status=404)
        return json_response({"closing": results})
