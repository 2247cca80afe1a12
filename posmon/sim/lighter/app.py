"""``create_app``: the REST endpoints, and the pipeline every request goes through.

Order: count the request, rate-limit it (refusals cost nothing), apply a scripted fault before or
after executing, run the handler, answer JSON. Errors answer ``{"code", "message"}`` with the
venue's status (400, 429 with Retry-After, 503).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import orjson
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from posmon.sim.lighter import errors as e
from posmon.sim.lighter import streams, views
from posmon.sim.lighter.errors import LighterError
from posmon.sim.lighter.records import OrderRecord
from posmon.sim.lighter.sim import LighterSim

Params = dict[str, str]
Handler = Callable[[LighterSim, Params, Request], Awaitable[dict[str, Any]]]


def create_app(sim: LighterSim) -> Starlette:
    routes: list[BaseRoute] = [
        Route(path, partial(_serve, sim, method, handler), methods=[method])
        for (method, path), handler in ENDPOINTS.items()
    ]
    routes.append(WebSocketRoute("/stream", partial(streams.endpoint, sim)))
    return Starlette(routes=routes)


async def _serve(sim: LighterSim, method: str, handler: Handler, request: Request) -> Response:
    path = request.url.path
    sim.counters.request(method, path)
    ip = request.client.host if request.client is not None else "unknown"
    try:
        sim.limiter.admit(ip, path, trio.current_time())
        params: Params = dict(request.query_params)
        if method == "POST":  # application/x-www-form-urlencoded, as the SDK sends it
            params.update(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))

        async def execute() -> dict[str, Any]:
            sim.flush()
            return await handler(sim, params, request)

        body = await sim.faults.around(method, path, request, execute)
        return _json(body, 200)
    except LighterError as exc:
        if exc.status == 429:
            sim.counters.http_429 += 1
        if exc.status == 503:
            sim.counters.http_503 += 1
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
        return _json(exc.body(), exc.status, headers)


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _int(params: Params, name: str, default: int | None = None) -> int:
    value = params.get(name)
    if value is None or value == "":
        if default is not None:
            return default
        raise LighterError(e.INVALID_PARAM, f"missing parameter {name}")
    try:
        return int(value)
    except ValueError:
        raise LighterError(e.INVALID_PARAM, f"parameter {name} must be an integer, got {value!r}") from None


def _market_filter(sim: LighterSim, params: Params) -> int | None:
    raw = params.get("market_id")
    if raw is None or raw in ("", "255"):
        return None
    market_id = _int(params, "market_id")
    if market_id not in sim.markets:
        raise LighterError(e.INVALID_MARKET, f"market_id {market_id} is not a market")
    return market_id


def _auth(sim: LighterSim, params: Params, request: Request, account_index: int) -> None:
    sim.check_auth(params.get("auth") or request.headers.get("authorization"), account_index)


# ---- handlers -------------------------------------------------------------------------------------------------


async def next_nonce(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    nonce = sim.next_nonce(_int(params, "account_index"), _int(params, "api_key_index"))
    return {"code": e.OK, "nonce": nonce}


async def send_tx(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    tx_type = _int(params, "tx_type")
    tx_info = params.get("tx_info")
    if not tx_info:
        raise LighterError(e.INVALID_PARAM, "missing parameter tx_info")
    return sim.submit([(tx_type, tx_info)], batch=False)


async def send_tx_batch(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    try:
        types = json.loads(params.get("tx_types") or "")
        infos = json.loads(params.get("tx_infos") or "")
    except ValueError:
        raise LighterError(e.INVALID_PARAM, "tx_types and tx_infos must be JSON lists") from None
    if not isinstance(types, list) or not isinstance(infos, list) or len(types) != len(infos):
        raise LighterError(e.INVALID_PARAM, "tx_types and tx_infos must be JSON lists of the same length")
    if not all(isinstance(t, int) for t in types) or not all(isinstance(i, str) for i in infos):
        raise LighterError(e.INVALID_PARAM, "tx_types must hold integers and tx_infos JSON strings")
    return sim.submit(list(zip(types, infos, strict=True)), batch=True)


async def order_book_details(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    market_id = _market_filter(sim, params)
    details = [views.order_book_detail(sim.account, m) for m in sim.markets.values()
               if market_id is None or m.market_id == market_id]  # fmt: skip
    return {"code": e.OK, "order_book_details": details, "spot_order_book_details": []}


async def order_books(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    market_id = _market_filter(sim, params)
    books = [views.order_book(m) for m in sim.markets.values() if market_id is None or m.market_id == market_id]
    return {"code": e.OK, "order_books": books}


async def account(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    by = params.get("by", "index")
    if by != "index":
        raise LighterError(e.INVALID_PARAM, f"the simulator looks accounts up by index only, not {by!r}")
    index = _int(params, "value")
    if index != sim.account_index:
        raise LighterError(e.ACCOUNT_NOT_FOUND, "account not found")
    detail = views.detailed_account(sim.account, sim.collateral, sim.imf, sim.now_ms())
    return {"code": e.OK, "total": 1, "accounts": [detail]}


async def order_book_orders(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    market_id = _int(params, "market_id")
    if market_id not in sim.markets:
        raise LighterError(e.INVALID_MARKET, f"market_id {market_id} is not a market")
    limit = min(max(_int(params, "limit", 100), 1), 250)
    resting = sim.account.open_orders(market_id)
    asks = sorted((o for o in resting if o.is_ask), key=lambda o: o.price)[:limit]
    bids = sorted((o for o in resting if not o.is_ask), key=lambda o: -o.price)[:limit]
    return {"code": e.OK, "total_asks": len(asks), "asks": [_simple(o) for o in asks],
            "total_bids": len(bids), "bids": [_simple(o) for o in bids]}  # fmt: skip


def _simple(order: OrderRecord) -> dict[str, Any]:
    full = order.to_json()
    keys = ("order_index", "order_id", "owner_account_index", "initial_base_amount", "remaining_base_amount",
            "price", "order_expiry", "transaction_time")  # fmt: skip
    return {k: full[k] for k in keys}


async def active_orders(sim: LighterSim, params: Params, request: Request) -> dict[str, Any]:
    account_index = _int(params, "account_index")
    _auth(sim, params, request, account_index)
    market_id = _int(params, "market_id")
    if market_id not in sim.markets:
        raise LighterError(e.INVALID_MARKET, f"market_id {market_id} is not a market")
    return {"code": e.OK, "orders": [o.to_json() for o in sim.account.open_orders(market_id)]}


async def inactive_orders(sim: LighterSim, params: Params, request: Request) -> dict[str, Any]:
    account_index = _int(params, "account_index")
    _auth(sim, params, request, account_index)
    limit = _int(params, "limit")
    if not 1 <= limit <= 100:
        raise LighterError(e.INVALID_PARAM, f"limit must be 1..100, got {limit}")
    start = _int(params, "cursor", 0)
    found = sim.account.inactive_orders(_market_filter(sim, params))
    page = found[start : start + limit]
    cursor = str(start + limit) if start + limit < len(found) else ""
    return {"code": e.OK, "next_cursor": cursor, "orders": [o.to_json() for o in page]}


async def recent_trades(sim: LighterSim, params: Params, _request: Request) -> dict[str, Any]:
    market_id = _int(params, "market_id")
    limit = min(max(_int(params, "limit", 100), 1), 100)
    trades = [t for t in reversed(sim.account.trades) if t.order.market.market_id == market_id][:limit]
    return {"code": e.OK, "trades": [t.to_json() for t in trades]}


ENDPOINTS: dict[tuple[str, str], Handler] = {
    ("GET", "/api/v1/nextNonce"): next_nonce,
    ("POST", "/api/v1/sendTx"): send_tx,
    ("POST", "/api/v1/sendTxBatch"): send_tx_batch,
    ("GET", "/api/v1/orderBookDetails"): order_book_details,
    ("GET", "/api/v1/orderBooks"): order_books,
    ("GET", "/api/v1/account"): account,
    ("GET", "/api/v1/orderBookOrders"): order_book_orders,
    ("GET", "/api/v1/accountActiveOrders"): active_orders,
    ("GET", "/api/v1/accountInactiveOrders"): inactive_orders,
    ("GET", "/api/v1/recentTrades"): recent_trades,
}
