"""``create_app``: the ASGI application, and the one pipeline every REST request goes through.

Order matters and is the venue's: count the request and its weight (refused requests
count too), apply the rate limit, then scripted faults, then authentication, then the
endpoint; every answer, error or not, carries the usage headers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from posmon.exchange.errors import OutcomeUnknown, RateLimited, VenueError
from posmon.sim.aster import errors as e
from posmon.sim.aster import streams
from posmon.sim.aster.context import Ctx
from posmon.sim.aster.endpoints import ENDPOINTS, Endpoint
from posmon.sim.aster.errors import ApiError, from_venue_error
from posmon.sim.aster.params import parse_params
from posmon.sim.aster.sim import ACCOUNT, AsterSim
from posmon.sim.faults import ClientGone


def create_app(sim: AsterSim) -> Starlette:
    """REST routes for every endpoint path, plus the raw (``/ws/<stream>``) and combined (``/stream``) websockets."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in ENDPOINTS:
        for path in endpoint.paths:
            by_path.setdefault(path, {})[endpoint.method] = endpoint
    routes: list[BaseRoute] = [
        Route(path, partial(_serve, sim, methods), methods=list(methods)) for path, methods in by_path.items()
    ]
    routes += [
        WebSocketRoute("/ws", partial(streams.raw_endpoint, sim)),
        WebSocketRoute("/ws/{stream}", partial(streams.raw_endpoint, sim)),
        WebSocketRoute("/stream", partial(streams.combined_endpoint, sim)),
    ]
    return Starlette(routes=routes)


async def _serve(sim: AsterSim, methods: Mapping[str, Endpoint], request: Request) -> Response:
    method = "GET" if request.method == "HEAD" else request.method
    endpoint = methods[method]
    path = request.url.path
    sim.counters.request(method, path)
    try:
        raw_body = await request.body()
    except ClientDisconnect:  # the client went away mid-request (a killed daemon): nobody to answer
        return Response(status_code=499)
    params = parse_params(request.scope.get("query_string", b""), raw_body)
    ip = request.client.host if request.client is not None else "unknown"
    try:
        usage = sim.limiter.admit(
            ip, ACCOUNT, endpoint.weight(params.values), endpoint.orders(params.values), sim.now()
        )
        params.check_duplicates()

        async def execute() -> Any:
            version = "v3" if path.startswith("/fapi/v3/") else "v1"
            principal = sim.auth.authenticate(version, endpoint.security, params, request.headers)
            sim.orders.sync()
            return endpoint.handler(Ctx(sim, params.business(), principal))

        body = await sim.http_faults.around(method, path, request, execute)
        return _json(body, 200, usage.headers())
    except ClientGone:
        return Response(status_code=499)
    except ApiError as exc:
        return _error(sim, exc, ip)
    except OutcomeUnknown:
        return _error(sim, ApiError(e.TIMEOUT, status=503), ip)
    except RateLimited as exc:  # scripted on the SimExchange (rate_limit_next)
        return _error(
            sim,
            ApiError(
                e.TOO_MANY_REQUESTS,
                "Too many requests; please use the websocket for live updates.",
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
            ),
            ip,
        )
    except VenueError as exc:
        return _error(sim, from_venue_error(exc), ip)


def _error(sim: AsterSim, exc: ApiError, ip: str) -> Response:
    if exc.status == 503:
        sim.counters.http_503 += 1
    headers = {**sim.limiter.usage(ip, ACCOUNT, sim.now()).headers(), **exc.headers}
    return _json(exc.body(), exc.status, headers)


def _json(body: Any, status: int, headers: Mapping[str, str]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=dict(headers))
