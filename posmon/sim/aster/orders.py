"""New-order parameters in, order JSON out: the venue's order rules on the wire side of the engine.

The engine validates what it needs to match (ids, sides, tick/step, notional, triggers);
the venue also refuses parameters that do not apply to the type, enforces its filters and
time-in-force rules, and answers in its own field names with numbers as strings. Both
halves live here so a request and its answer use one vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from posmon.domain.orders import OrderRequest, OrderSide, OrderState, OrderStatus, OrderType, WorkingType
from posmon.sim.aster import errors as e
from posmon.sim.aster import params as p
from posmon.sim.aster.book import OrderMeta
from posmon.sim.aster.errors import ApiError, mandatory, not_required
from posmon.sim.aster.filters import SymbolFilters, fmt

CLIENT_ID = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "HIDDEN")
MARKET_TYPES = frozenset({"MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"})
ALGO_TYPES = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"})
# Types the venue has but the engine cannot match (no stop-limit, trailing or close-all orders there).
ENGINE_TYPES = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
}

_COMMON = frozenset(
    {
        "symbol",
        "side",
        "positionSide",
        "type",
        "newClientOrderId",
        "newOrderRespType",
        "reduceOnly",
        "timeInForce",
        "stpMode",
        "selfTradePreventionMode",
        "builder",
        "feeRate",
    }
)
_STOP = frozenset({"stopPrice", "workingType", "priceProtect"})
# Parameters each type takes besides the common ones (since 2026-10-08 anything else is -1106).
_APPLICABLE: Mapping[str, frozenset[str]] = {
    "LIMIT": frozenset({"quantity", "price"}),
    "MARKET": frozenset({"quantity"}),
    "STOP": frozenset({"quantity", "price"}) | _STOP,
    "TAKE_PROFIT": frozenset({"quantity", "price"}) | _STOP,
    "STOP_MARKET": frozenset({"quantity", "closePosition"}) | _STOP,
    "TAKE_PROFIT_MARKET": frozenset({"quantity", "closePosition"}) | _STOP,
    "TRAILING_STOP_MARKET": frozenset({"quantity", "activationPrice", "callbackRate", "workingType", "priceProtect"}),
}
_MANDATORY: Mapping[str, tuple[str, ...]] = {
    "LIMIT": ("timeInForce", "quantity", "price"),
    "MARKET": ("quantity",),
    "STOP": ("quantity", "price", "stopPrice"),
    "TAKE_PROFIT": ("quantity", "price", "stopPrice"),
    "STOP_MARKET": ("stopPrice",),
    "TAKE_PROFIT_MARKET": ("stopPrice",),
    "TRAILING_STOP_MARKET": ("callbackRate",),
}


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """A validated new order: the engine's request plus what only the wire carries."""

    request: OrderRequest
    time_in_force: str
    working_type: str
    price_protect: bool
    close_position: bool
    resp_type: str

    def meta(self, now_ms: int) -> OrderMeta:
        return OrderMeta(
            symbol=self.request.symbol,
            time_in_force=self.time_in_force,
            working_type=self.working_type,
            price_protect=self.price_protect,
            close_position=self.close_position,
            time_ms=now_ms,
            update_ms=now_ms,
            expire_on_cancel=self.time_in_force in ("IOC", "FOK"),
        )


@dataclass(frozen=True, slots=True)
class Market:
    """What order validation needs to know about the account and the symbol right now."""

    filters: Mapping[str, SymbolFilters]
    hedge_mode: bool
    mark: Callable[[str], Decimal | None]
    open_counts: Callable[[str], tuple[int, int]]  # symbol -> (open orders, open algo orders)


def parse_order(values: Mapping[str, str], market: Market, new_client_id: str, *, batch: bool = False) -> OrderPlan:
    """Validate one order's parameters in the venue's order; raise the first ``ApiError`` it would answer."""
    symbol = p.required(values, "symbol")
    filters = market.filters.get(symbol)
    if filters is None:
        raise ApiError(e.BAD_SYMBOL)
    side = p.choice(values, "side", ("BUY", "SELL"), ApiError(e.INVALID_SIDE), "")
    if not side:
        raise mandatory("side")
    kind = p.choice(values, "type", tuple(_APPLICABLE), ApiError(e.INVALID_ORDER_TYPE), "")
    if not kind:
        raise mandatory("type")
    position_side = p.choice(
        values, "positionSide", ("BOTH", "LONG", "SHORT"), ApiError(e.INVALID_POSITION_SIDE), "BOTH"
    )
    if (position_side == "BOTH") == market.hedge_mode:
        raise ApiError(e.POSITION_SIDE_MISMATCH)

    allowed = _COMMON | _APPLICABLE[kind]
    if batch:
        allowed -= {"closePosition", "newOrderRespType"}
    for name in values:
        if name not in allowed:
            raise not_required(name)
    if market.hedge_mode and "reduceOnly" in values:
        raise not_required("reduceOnly")  # hedge mode: positionSide LONG/SHORT closes by itself
    close_position = p.boolean(values, "closePosition")
    if close_position and "reduceOnly" in values:
        raise not_required("reduceOnly")
    if close_position and "quantity" in values:
        raise ApiError(e.QTY_WITH_CLOSE_POSITION)
    for name in _MANDATORY[kind] + (() if close_position else ("quantity",)):
        if p.text(values, name) is None:
            raise mandatory(name)

    tif = p.choice(values, "timeInForce", TIME_IN_FORCE, ApiError(e.INVALID_TIF), "GTC")
    if kind in MARKET_TYPES and tif != "GTC":
        raise ApiError(e.INVALID_TIF, f"Invalid timeInForce: {kind} takes GTC only.")
    working_type = p.choice(
        values, "workingType", ("MARK_PRICE", "CONTRACT_PRICE"), ApiError(e.INVALID_WORKING_TYPE), "CONTRACT_PRICE"
    )
    price_protect = p.boolean(values, "priceProtect")
    reduce_only = p.boolean(values, "reduceOnly")
    resp_type = p.choice(values, "newOrderRespType", ("ACK", "RESULT"), ApiError(e.INVALID_RESP_TYPE), "ACK")
    client_id = values.get("newClientOrderId") or new_client_id
    if len(client_id) > 36:
        raise ApiError(e.BAD_CLIENT_ID_LEN)
    if not CLIENT_ID.fullmatch(client_id):
        raise ApiError(
            e.ILLEGAL_CHARS,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
        )

    qty = p.decimal(values, "quantity")
    price = p.decimal(values, "price")
    stop_price = p.decimal(values, "stopPrice")
    buy = side == "BUY"
    mark = market.mark(symbol)
    if qty is not None:
        filters.check_qty(qty, market=kind in MARKET_TYPES)
    if price is not None:
        filters.check_price(price, stop=False)
        filters.check_percent_price(price, buy, mark)
    if stop_price is not None:
        filters.check_price(stop_price, stop=True)

    engine_type = ENGINE_TYPES.get(kind)
    if engine_type is None or close_position:
        raise ApiError(
            e.UNSUPPORTED,
            f"This operation is not supported: the simulator does not match "
            f"{'closePosition orders' if close_position else kind + ' orders'}.",
        )
    if tif == "GTX" and mark is not None and price is not None and (mark <= price if buy else mark >= price):
        raise ApiError(e.POST_ONLY_REJECTED)
    orders, algo = market.open_counts(symbol)
    if orders >= filters.max_num_orders:
        raise ApiError(e.MAX_OPEN_ORDERS)
    if kind in ALGO_TYPES and algo >= filters.max_num_algo_orders:
        raise ApiError(e.MAX_STOP_ORDERS)
    assert qty is not None
    request = OrderRequest(
        client_id=client_id,
        symbol=symbol,
        side=OrderSide(side),
        position_side=position_side,
        type=engine_type,
        qty=qty,
        price=price,
        stop_price=stop_price,
        reduce_only=reduce_only,
        working_type=WorkingType(working_type),
    )
    return OrderPlan(request, tif, working_type, price_protect, close_position, resp_type)


def order_json(
    state: OrderState, meta: OrderMeta | None, filters: SymbolFilters | None, *, acknowledged: bool = False
) -> dict[str, object]:
    """An order as the venue returns it; ``acknowledged``: the ACK snapshot (accepted, nothing executed yet)."""
    tick = filters.tick_size if filters else None
    step = filters.step_size if filters else None
    status = state.status
    if meta is not None and meta.expire_on_cancel and status is OrderStatus.CANCELED:
        status = OrderStatus.EXPIRED
    filled, avg = state.filled_qty, state.avg_price
    if acknowledged:
        status, filled, avg = OrderStatus.NEW, Decimal(0), Decimal(0)
    time_ms = meta.time_ms if meta else 0
    update_ms = time_ms if acknowledged or meta is None else meta.update_ms
    return {
        "orderId": int(state.order_id) if state.order_id.isdigit() else state.order_id,
        "symbol": state.symbol,
        "status": status.value,
        "clientOrderId": state.client_id,
        "price": fmt(state.price, tick),
        "avgPrice": fmt(avg, tick),
        "origQty": fmt(state.qty, step),
        "executedQty": fmt(filled, step),
        "cumQty": fmt(filled, step),
        "cumQuote": fmt(filled * avg),
        "timeInForce": meta.time_in_force if meta else "GTC",
        "type": state.type.value,
        "reduceOnly": state.reduce_only,
        "closePosition": meta.close_position if meta else False,
        "side": state.side.value,
        "positionSide": state.position_side,
        "stopPrice": fmt(state.stop_price, tick),
        "workingType": meta.working_type if meta else "CONTRACT_PRICE",
        "priceProtect": meta.price_protect if meta else False,
        "origType": state.type.value,
        "time": time_ms,
        "updateTime": update_ms,
    }
