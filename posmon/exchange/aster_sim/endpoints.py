"""The REST endpoints: each translates one venue call to ``SimExchange`` calls and back to venue JSON.

Handlers are plain functions of a request context; the pipeline in ``app`` has already
counted, rate-limited, delayed and authenticated the request. Exchange calls go through
``SimExchange``'s REST surface (so its call counters and scripted faults apply), reads
the venue answers from memory (marks, open-order counts) go to the engine directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from posmon.domain.orders import OrderRequest, OrderState, OrderStatus, OrderType, Side
from posmon.exchange.aster_sim import errors as e
from posmon.exchange.aster_sim import params as p
from posmon.exchange.aster_sim.auth import Principal, Security
from posmon.exchange.aster_sim.errors import ApiError, from_venue_error, invalid, mandatory
from posmon.exchange.aster_sim.filters import fmt
from posmon.exchange.aster_sim.frames import FUNDING_INTERVAL_MS, FUNDING_RATE, INTEREST_RATE, next_funding_ms
from posmon.exchange.aster_sim.orders import Market, OrderPlan, order_json, parse_order
from posmon.exchange.aster_sim.sim import ACCOUNT, AsterSim
from posmon.exchange.errors import VenueError

MAX_BATCH_PLACE = 5
MAX_BATCH_CANCEL = 10
LEVERAGE = 20


@dataclass(frozen=True, slots=True)
class Ctx:
    """One authenticated request as a handler sees it."""

    sim: AsterSim
    values: Mapping[str, str]  # business parameters (authentication ones removed)
    principal: Principal


Handler = Callable[[Ctx], Any]
Weight = Callable[[Mapping[str, str]], int]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method on one or more paths (the v1 path and its v3 mirror), with its security and weight."""

    method: str
    paths: tuple[str, ...]
    security: Security
    handler: Handler
    weight: Weight
    orders: Weight


def _fixed(n: int) -> Weight:
    return lambda _values: n


def _v(path: str, *, v1: str = "v1") -> tuple[str, ...]:
    """The venue path under ``/fapi/<v1>`` and its v3 mirror."""
    return (f"/fapi/{v1}/{path}", f"/fapi/v3/{path}")


# ---- market data --------------------------------------------------------------------------------------------------


def ping(ctx: Ctx) -> dict[str, Any]:
    return {}


def server_time(ctx: Ctx) -> dict[str, Any]:
    return {"serverTime": ctx.sim.now_ms()}


def exchange_info(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    rules = sim.exchange.load_rules()
    return {
        "timezone": "UTC",
        "serverTime": sim.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": sim.limits.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": sim.limits.orders_per_minute},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
        "symbols": [sim.filters[s].to_json() for s in rules if s in sim.filters],
    }


def spot_exchange_info(ctx: Ctx) -> dict[str, Any]:
    """The simulator lists no spot markets (ccxt's ``load_markets`` asks anyway)."""
    return {"timezone": "UTC", "serverTime": ctx.sim.now_ms(), "rateLimits": [], "exchangeFilters": [],
            "assets": [], "symbols": []}


def premium_index(ctx: Ctx) -> Any:
    sim = ctx.sim
    symbol = _optional_symbol(sim, ctx.values)
    marks = {m.symbol: m for m in sim.exchange.mark_prices()}
    now_ms = sim.now_ms()

    def entry(name: str) -> dict[str, Any]:
        mark = marks.get(name)
        price = fmt(mark.price, sim.filters[name].tick_size) if mark else "0"
        return {"symbol": name, "markPrice": price, "indexPrice": price, "estimatedSettlePrice": price,
                "lastFundingRate": FUNDING_RATE, "interestRate": INTEREST_RATE,
                "nextFundingTime": next_funding_ms(now_ms), "time": round(mark.time * 1000) if mark else now_ms}

    if symbol is not None:
        return entry(symbol)
    return [entry(name) for name in sim.filters if name in marks]


def funding_rate(ctx: Ctx) -> list[dict[str, Any]]:
    """Funding history: the simulator funds at a constant rate every 8 hours."""
    sim = ctx.sim
    symbol = _optional_symbol(sim, ctx.values)
    limit = p.integer(ctx.values, "limit") or 100
    if not 1 <= limit <= 1000:
        raise invalid("limit")
    last = next_funding_ms(sim.now_ms()) - FUNDING_INTERVAL_MS
    times = [last - i * FUNDING_INTERVAL_MS for i in reversed(range(limit))]
    symbols = [symbol] if symbol is not None else list(sim.filters)
    rows = [{"symbol": s, "fundingRate": FUNDING_RATE, "fundingTime": t, "markPrice": _mark_text(sim, s)}
            for t in times for s in symbols]
    return rows[-limit:]


# ---- orders -------------------------------------------------------------------------------------------------------


def new_order(ctx: Ctx) -> dict[str, Any]:
    plan = parse_order(ctx.values, _market(ctx.sim), ctx.sim.new_client_order_id())
    result = _place(ctx.sim, [plan])[0]
    if isinstance(result, ApiError):
        raise result
    return result


def batch_orders(ctx: Ctx) -> list[dict[str, Any]]:
    """Up to 5 orders in one call; a refused item answers ``{code, msg}`` in its place, in request order."""
    sim = ctx.sim
    items = _batch_items(ctx.values)
    if not 1 <= len(items) <= MAX_BATCH_PLACE:
        raise ApiError(e.BAD_BATCH_SIZE, f"Invalid number of batch place orders: {len(items)}.")
    market = _market(sim)
    answers: list[dict[str, Any] | ApiError | None] = []
    plans: list[OrderPlan] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise invalid("batchOrders")
            plans.append(parse_order(_strings(item), market, sim.new_client_order_id(), batch=True))
            answers.append(None)
        except ApiError as exc:
            answers.append(exc)
    placed = iter(_place(sim, plans)) if plans else iter(())
    results = [answer if answer is not None else next(placed) for answer in answers]
    return [r.body() if isinstance(r, ApiError) else r for r in results]


def cancel_order(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    symbol = _symbol(sim, ctx.values)
    client_id = _resolve(sim, ctx.values, e.UNKNOWN_ORDER)
    result = sim.exchange.cancel_orders(symbol, [client_id])[0]
    if isinstance(result, VenueError):
        raise from_venue_error(result)
    return _order_json(sim, result)


def cancel_batch(ctx: Ctx) -> list[dict[str, Any]]:
    """``orderIdList`` or ``origClientOrderIdList`` (JSON arrays, at most 10); unknown ids answer -2011 in place."""
    sim = ctx.sim
    symbol = _symbol(sim, ctx.values)
    raw_ids, by_order_id = p.text(ctx.values, "orderIdList"), True
    if raw_ids is None:
        raw_ids, by_order_id = p.text(ctx.values, "origClientOrderIdList"), False
    if raw_ids is None:
        raise ApiError(e.MANDATORY_PARAM,
                       "Param 'orderIdList' or 'origClientOrderIdList' must be sent, but both were empty/null!")
    ids = _json_list(raw_ids, "orderIdList" if by_order_id else "origClientOrderIdList")
    if len(ids) > MAX_BATCH_CANCEL:
        raise ApiError(e.BAD_CANCEL_BATCH_SIZE)
    client_ids: list[str | None] = []
    for raw in ids:
        if by_order_id:
            client_ids.append(sim.orders.client_id(str(raw)) if isinstance(raw, int | str) else None)
        else:
            client_ids.append(raw if isinstance(raw, str) else None)
    known = [c for c in client_ids if c is not None]
    cancelled = iter(sim.exchange.cancel_orders(symbol, known) if known else [])
    answers: list[dict[str, Any]] = []
    for client_id in client_ids:
        result = next(cancelled) if client_id is not None else None
        if result is None or isinstance(result, VenueError):
            answers.append(ApiError(e.UNKNOWN_ORDER).body())
        else:
            answers.append(_order_json(sim, result))
    return answers


def cancel_all(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    symbol = _symbol(sim, ctx.values)
    open_ids = [o.client_id for o in sim.exchange.engine.open_orders(symbol)]
    if open_ids:
        sim.exchange.cancel_orders(symbol, open_ids)
    return {"code": "200", "msg": "The operation of cancel all open order is done."}  # the venue's string code


def query_order(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    symbol = _symbol(sim, ctx.values)
    client_id = _resolve(sim, ctx.values, e.NO_SUCH_ORDER)
    return _order_json(sim, _query(sim, symbol, client_id))


def open_order(ctx: Ctx) -> dict[str, Any]:
    """Like ``query_order``, but an order no longer open does not exist (-2013)."""
    sim = ctx.sim
    symbol = _symbol(sim, ctx.values)
    client_id = _resolve(sim, ctx.values, e.NO_SUCH_ORDER)
    state = _query(sim, symbol, client_id)
    if state.status.is_final:
        raise ApiError(e.NO_SUCH_ORDER)
    return _order_json(sim, state)


def open_orders(ctx: Ctx) -> list[dict[str, Any]]:
    sim = ctx.sim
    symbol = _optional_symbol(sim, ctx.values)
    return [_order_json(sim, state) for state in sim.exchange.open_orders(symbol)]


# ---- account ------------------------------------------------------------------------------------------------------


def position_risk(ctx: Ctx) -> list[dict[str, Any]]:
    """Every symbol's position (zero ones too, as the single-account endpoint does): LONG+SHORT or BOTH."""
    sim = ctx.sim
    symbol = _optional_symbol(sim, ctx.values)
    held = {(pos.symbol, pos.side): pos for pos in sim.exchange.positions()}
    engine = sim.exchange.engine
    rows = []
    for name in [symbol] if symbol is not None else list(sim.filters):
        mark = engine.mark(name) or Decimal(0)
        long, short = held.get((name, Side.LONG)), held.get((name, Side.SHORT))
        if sim.exchange.hedge_mode:
            entries = [("LONG", long.qty if long else Decimal(0), long.entry_price if long else Decimal(0)),
                       ("SHORT", -short.qty if short else Decimal(0), short.entry_price if short else Decimal(0))]
        else:
            position = long or short
            amount = (long.qty if long else Decimal(0)) - (short.qty if short else Decimal(0))
            entries = [("BOTH", amount, position.entry_price if position else Decimal(0))]
        for side, amount, entry in entries:
            rows.append(_position_row(sim, name, side, amount, entry, mark))
    return rows


def position_mode(ctx: Ctx) -> dict[str, Any]:
    return {"dualSidePosition": ctx.sim.exchange.hedge_mode}


def change_position_mode(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    if p.text(ctx.values, "dualSidePosition") is None:
        raise mandatory("dualSidePosition")
    hedge = p.boolean(ctx.values, "dualSidePosition")
    engine = sim.exchange.engine
    if hedge == sim.exchange.hedge_mode:
        raise ApiError(e.NO_NEED_TO_CHANGE_POSITION_SIDE)
    if engine.open_orders():
        raise ApiError(e.POSITION_SIDE_CHANGE_OPEN_ORDERS)
    if engine.positions():
        raise ApiError(e.POSITION_SIDE_CHANGE_POSITION)
    sim.exchange.hedge_mode = engine.hedge_mode = hedge
    return {"code": 200, "msg": "success"}


def leverage_bracket(ctx: Ctx) -> Any:
    sim = ctx.sim
    symbol = _optional_symbol(sim, ctx.values)

    def entry(name: str) -> dict[str, Any]:
        return {"symbol": name, "brackets": [
            {"bracket": 1, "initialLeverage": LEVERAGE, "notionalCap": 1_000_000, "notionalFloor": 0,
             "maintMarginRatio": 0.005, "cum": 0.0},
        ]}

    return entry(symbol) if symbol is not None else [entry(name) for name in sim.filters]


def new_listen_key(ctx: Ctx) -> dict[str, Any]:
    return {"listenKey": ctx.sim.listen_keys.create(ACCOUNT)}


def keepalive_listen_key(ctx: Ctx) -> dict[str, Any]:
    ctx.sim.listen_keys.keepalive(ACCOUNT, p.text(ctx.values, "listenKey"))
    return {}


def close_listen_key(ctx: Ctx) -> dict[str, Any]:
    ctx.sim.listen_keys.delete(ACCOUNT, p.text(ctx.values, "listenKey"))
    return {}


# ---- the table ----------------------------------------------------------------------------------------------------


def _open_orders_weight(values: Mapping[str, str]) -> int:
    return 1 if values.get("symbol") else 40


def _batch_size(values: Mapping[str, str]) -> int:
    try:
        return len(_batch_items(values))
    except ApiError:
        return 0


S, N, U = Security.SIGNED, Security.NONE, Security.USER_STREAM
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _v("ping"), N, ping, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("time"), N, server_time, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("exchangeInfo"), N, exchange_info, _fixed(1), _fixed(0)),
    Endpoint("GET", ("/api/v3/exchangeInfo",), N, spot_exchange_info, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("premiumIndex"), N, premium_index, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("fundingRate"), N, funding_rate, _fixed(1), _fixed(0)),
    Endpoint("POST", _v("order"), S, new_order, _fixed(1), _fixed(1)),
    Endpoint("DELETE", _v("order"), S, cancel_order, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("order"), S, query_order, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("openOrder"), S, open_order, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("openOrders"), S, open_orders, _open_orders_weight, _fixed(0)),
    Endpoint("POST", _v("batchOrders"), S, batch_orders, _fixed(5), _batch_size),
    Endpoint("DELETE", _v("batchOrders"), S, cancel_batch, _fixed(1), _fixed(0)),
    Endpoint("DELETE", _v("allOpenOrders"), S, cancel_all, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("positionRisk", v1="v2"), S, position_risk, _fixed(5), _fixed(0)),
    Endpoint("GET", _v("positionSide/dual"), S, position_mode, _fixed(30), _fixed(0)),
    Endpoint("POST", _v("positionSide/dual"), S, change_position_mode, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("leverageBracket"), S, leverage_bracket, _fixed(1), _fixed(0)),
    Endpoint("POST", _v("listenKey"), U, new_listen_key, _fixed(1), _fixed(0)),
    Endpoint("PUT", _v("listenKey"), U, keepalive_listen_key, _fixed(1), _fixed(0)),
    Endpoint("DELETE", _v("listenKey"), U, close_listen_key, _fixed(1), _fixed(0)),
)


# ---- helpers ------------------------------------------------------------------------------------------------------


def _symbol(sim: AsterSim, values: Mapping[str, str]) -> str:
    symbol = p.required(values, "symbol")
    if symbol not in sim.filters:
        raise ApiError(e.BAD_SYMBOL)
    return symbol


def _optional_symbol(sim: AsterSim, values: Mapping[str, str]) -> str | None:
    return _symbol(sim, values) if p.text(values, "symbol") is not None else None


def _resolve(sim: AsterSim, values: Mapping[str, str], unknown: int) -> str:
    """The client id an order is addressed by; ``orderId`` wins when both are sent (as on the venue)."""
    order_id = p.text(values, "orderId")
    if order_id is not None:
        client_id = sim.orders.client_id(order_id)
        if client_id is None:
            raise ApiError(unknown)
        return client_id
    client_id = p.text(values, "origClientOrderId")
    if client_id is None:
        raise ApiError(e.MANDATORY_PARAM, "Param 'orderId' or 'origClientOrderId' must be sent, but both were "
                                          "empty/null!")
    return client_id


def _query(sim: AsterSim, symbol: str, client_id: str) -> OrderState:
    try:
        return sim.exchange.query_order(symbol, client_id)
    except VenueError as exc:
        if exc.code in (e.UNKNOWN_ORDER, e.NO_SUCH_ORDER):
            raise ApiError(e.NO_SUCH_ORDER) from None
        raise


def _market(sim: AsterSim) -> Market:
    engine = sim.exchange.engine

    def counts(symbol: str) -> tuple[int, int]:
        orders = engine.open_orders(symbol)
        return len(orders), sum(o.type is not OrderType.LIMIT and o.type is not OrderType.MARKET for o in orders)

    return Market(sim.filters, sim.exchange.hedge_mode, engine.mark, counts)


def _place(sim: AsterSim, plans: Sequence[OrderPlan]) -> list[dict[str, Any] | ApiError]:
    """One ``place_orders`` call for all plans; IOC/FOK remainders are expired the way the venue does."""
    now_ms = sim.now_ms()
    fresh: set[str] = set()
    for plan in plans:
        client_id = plan.request.client_id
        if sim.orders.meta(client_id) is None:  # a duplicate id keeps the existing order's metadata
            sim.orders.register(client_id, plan.meta(now_ms))
            fresh.add(client_id)
    results = sim.exchange.place_orders([plan.request for plan in plans])
    answers: list[dict[str, Any] | ApiError] = []
    for plan, result in zip(plans, results, strict=True):
        request: OrderRequest = plan.request
        if isinstance(result, VenueError):
            if request.client_id in fresh:
                sim.orders.forget(request.client_id)
            answers.append(from_venue_error(result))
            continue
        meta = sim.orders.link(request.client_id, result.order_id, request.symbol, now_ms)
        state = result
        if state.status is OrderStatus.NEW and plan.time_in_force in ("IOC", "FOK"):
            # No book to wait on: what did not trade at once expires (the engine can only cancel it).
            cancelled = sim.exchange.cancel_orders(request.symbol, [request.client_id])[0]
            if not isinstance(cancelled, VenueError):
                state = cancelled
        elif state.status is OrderStatus.NEW and request.type is OrderType.LIMIT:
            meta.rested = True
        answers.append(order_json(state, meta, sim.filters.get(request.symbol),
                                  acknowledged=plan.resp_type == "ACK"))
    sim.orders.sync()
    return answers


def _order_json(sim: AsterSim, state: OrderState) -> dict[str, Any]:
    sim.orders.sync()
    meta = sim.orders.meta(state.client_id)
    if meta is None or meta.order_id is None:
        meta = sim.orders.link(state.client_id, state.order_id, state.symbol, sim.now_ms())
    return order_json(state, meta, sim.filters.get(state.symbol))


def _batch_items(values: Mapping[str, str]) -> list[Any]:
    return _json_list(p.required(values, "batchOrders"), "batchOrders")


def _json_list(raw: str, name: str) -> list[Any]:
    """A JSON array parameter; the venue's own Python example sends single-quoted pseudo-JSON, so accept that too."""
    for text in (raw, raw.replace("'", '"')):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, list):
            return value
        break
    raise invalid(name)


def _strings(item: Mapping[str, Any]) -> dict[str, str]:
    """Batch items arrive as JSON values; the venue reads them like form parameters."""
    out = {}
    for key, value in item.items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif value is None:
            out[str(key)] = ""
        else:
            out[str(key)] = str(value)
    return out


def _mark_text(sim: AsterSim, symbol: str) -> str:
    mark = sim.exchange.engine.mark(symbol)
    return fmt(mark, sim.filters[symbol].tick_size) if mark is not None else "0"


def _position_row(sim: AsterSim, symbol: str, side: str, amount: Decimal, entry: Decimal,
                  mark: Decimal) -> dict[str, Any]:
    filters = sim.filters[symbol]
    unrealized = (mark - entry) * amount if amount and mark else Decimal(0)
    return {
        "symbol": symbol,
        "positionAmt": fmt(amount, filters.step_size),
        "entryPrice": fmt(entry),
        "breakEvenPrice": fmt(entry),
        "markPrice": fmt(mark, filters.tick_size),
        "unRealizedProfit": fmt(unrealized),
        "liquidationPrice": "0",
        "leverage": str(LEVERAGE),
        "maxNotionalValue": "1000000",
        "marginType": "cross",
        "isolatedMargin": "0",
        "isAutoAddMargin": "false",
        "positionSide": side,
        "notional": fmt(amount * mark),
        "isolatedWallet": "0",
        "updateTime": sim.orders.position_time(symbol, side) if amount else 0,
    }
