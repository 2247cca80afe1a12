"""Order endpoints: place (single and batch), cancel (single, batch, all), query and list open orders.

They translate between the wire and ``SimExchange``'s REST surface, so its call counters
and scripted faults apply; the wire-only facts (ids, times, time in force) go through
the simulator's order index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from posmon.domain.orders import OrderRequest, OrderState, OrderStatus, OrderType
from posmon.exchange.errors import VenueError
from posmon.sim.aster import errors as e
from posmon.sim.aster import params as p
from posmon.sim.aster.context import Ctx, json_list, optional_symbol, require_symbol
from posmon.sim.aster.errors import ApiError, from_venue_error, invalid
from posmon.sim.aster.orders import Market, OrderPlan, order_json, parse_order
from posmon.sim.aster.sim import AsterSim

MAX_BATCH_PLACE = 5
MAX_BATCH_CANCEL = 10


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
    symbol = require_symbol(sim, ctx.values)
    client_id = _resolve(sim, ctx.values, e.UNKNOWN_ORDER)
    result = sim.exchange.cancel_orders(symbol, [client_id])[0]
    if isinstance(result, VenueError):
        raise from_venue_error(result)
    return _order_json(sim, result)


def cancel_batch(ctx: Ctx) -> list[dict[str, Any]]:
    """``orderIdList`` or ``origClientOrderIdList`` (JSON arrays, at most 10); unknown ids answer -2011 in place."""
    sim = ctx.sim
    symbol = require_symbol(sim, ctx.values)
    raw_ids, by_order_id = p.text(ctx.values, "orderIdList"), True
    if raw_ids is None:
        raw_ids, by_order_id = p.text(ctx.values, "origClientOrderIdList"), False
    if raw_ids is None:
        raise ApiError(
            e.MANDATORY_PARAM, "Param 'orderIdList' or 'origClientOrderIdList' must be sent, but both were empty/null!"
        )
    ids = json_list(raw_ids, "orderIdList" if by_order_id else "origClientOrderIdList")
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
    symbol = require_symbol(sim, ctx.values)
    open_ids = [o.client_id for o in sim.exchange.engine.open_orders(symbol)]
    if open_ids:
        sim.exchange.cancel_orders(symbol, open_ids)
    return {"code": "200", "msg": "The operation of cancel all open order is done."}  # the venue's string code


def query_order(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    symbol = require_symbol(sim, ctx.values)
    client_id = _resolve(sim, ctx.values, e.NO_SUCH_ORDER)
    return _order_json(sim, _query(sim, symbol, client_id))


def open_order(ctx: Ctx) -> dict[str, Any]:
    """Like ``query_order``, but an order no longer open does not exist (-2013)."""
    sim = ctx.sim
    symbol = require_symbol(sim, ctx.values)
    client_id = _resolve(sim, ctx.values, e.NO_SUCH_ORDER)
    state = _query(sim, symbol, client_id)
    if state.status.is_final:
        raise ApiError(e.NO_SUCH_ORDER)
    return _order_json(sim, state)


def open_orders(ctx: Ctx) -> list[dict[str, Any]]:
    sim = ctx.sim
    symbol = optional_symbol(sim, ctx.values)
    return [_order_json(sim, state) for state in sim.exchange.open_orders(symbol)]


def batch_size(values: Mapping[str, str]) -> int:
    try:
        return len(_batch_items(values))
    except ApiError:
        return 0


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
        raise ApiError(
            e.MANDATORY_PARAM, "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!"
        )
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
        answers.append(order_json(state, meta, sim.filters.get(request.symbol), acknowledged=plan.resp_type == "ACK"))
    sim.orders.sync()
    return answers


def _order_json(sim: AsterSim, state: OrderState) -> dict[str, Any]:
    sim.orders.sync()
    meta = sim.orders.meta(state.client_id)
    if meta is None or meta.order_id is None:
        meta = sim.orders.link(state.client_id, state.order_id, state.symbol, sim.now_ms())
    return order_json(state, meta, sim.filters.get(state.symbol))


def _batch_items(values: Mapping[str, str]) -> list[Any]:
    return json_list(p.required(values, "batchOrders"), "batchOrders")


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
