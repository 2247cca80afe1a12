"""Order validation with Binance's error codes, so the daemon meets the venue's refusals in tests.

Pure: it sees one request, the symbol's rules and the current mark; what needs the
engine's memory (duplicate client ids) is checked by the engine itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side, SymbolRules
from posmon.exchange.aster.errors import rejection

CLIENT_ID_PATTERN = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")

# Binance error codes the simulator answers with.
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
PARAM_NOT_REQUIRED = -1106
BAD_SYMBOL = -1121
NEW_ORDER_REJECTED = -2010
UNKNOWN_ORDER = -2011
NO_SUCH_ORDER = -2013
WOULD_TRIGGER = -2021
REDUCE_ONLY_REJECTED = -2022
BAD_QTY = -4003
PRICE_TOO_LOW = -4013
BAD_TICK = -4014
BAD_STEP = -4023
BAD_LEVERAGE = -4028  # "Leverage 150 is not valid"
POSITION_SIDE_MISMATCH = -4061
DUPLICATE_CLIENT_ID = -4116
NOTIONAL_TOO_SMALL = -4164
BAD_BATCH_SIZE = -4082


def is_multiple(value: Decimal, unit: Decimal) -> bool:
    """Exact Decimal check; a zero unit means the venue does not restrict the value."""
    return unit == 0 or value % unit == 0


def would_trigger(order: OrderRequest, mark: Decimal) -> bool:
    """Whether a stop / take-profit order's condition holds at ``mark`` (mark price is the only price)."""
    stop = order.stop_price
    assert stop is not None
    buy = order.side is OrderSide.BUY
    if order.type is OrderType.STOP_MARKET:
        return mark >= stop if buy else mark <= stop
    if order.type is OrderType.TAKE_PROFIT_MARKET:
        return mark <= stop if buy else mark >= stop
    raise ValueError(f"{order.type} has no trigger")


def limit_crosses(order: OrderRequest, mark: Decimal) -> bool:
    """Whether a LIMIT order is marketable at ``mark``."""
    assert order.price is not None
    return mark <= order.price if order.side is OrderSide.BUY else mark >= order.price


def is_opening(order: OrderRequest) -> bool:
    """Hedge mode: whether the order's side opens its position side (BUY on LONG, SELL on SHORT)."""
    return order.side is Side(order.position_side).opening_order_side


def check_order(
    order: OrderRequest,
    rules: Mapping[str, SymbolRules],
    mark: Decimal | None,
    *,
    hedge_mode: bool,
    bounded_market: bool = False,
) -> None:
    """Raise ``Rejected`` with the code Binance would give; return quietly for a valid order."""
    if not CLIENT_ID_PATTERN.fullmatch(order.client_id):
        raise rejection(
            f"Illegal characters found in parameter 'newClientOrderId'; legal range is "
            f"'^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$': {order.client_id!r}",
            code=ILLEGAL_CHARS,
        )
    symbol_rules = rules.get(order.symbol)
    if symbol_rules is None:
        raise rejection(f"Invalid symbol {order.symbol!r}.", code=BAD_SYMBOL)
    allowed_sides = ("LONG", "SHORT") if hedge_mode else ("BOTH",)
    if order.position_side not in allowed_sides:
        raise rejection(
            f"Order's position side {order.position_side!r} does not match user's setting.",
            code=POSITION_SIDE_MISMATCH,
        )
    _check_params(order, bounded_market=bounded_market)
    if order.qty <= 0:
        raise rejection("Quantity less than or equal to zero.", code=BAD_QTY)
    if order.qty < symbol_rules.min_qty:
        raise rejection(f"Quantity {order.qty} less than min qty {symbol_rules.min_qty}.", code=BAD_QTY)
    if not is_multiple(order.qty, symbol_rules.step_size):
        raise rejection(f"Quantity {order.qty} not increased by step size {symbol_rules.step_size}.", code=BAD_STEP)
    for label, value in (("Price", order.price), ("Stop price", order.stop_price)):
        if value is None:
            continue
        if value <= 0:
            raise rejection(f"{label} {value} less than or equal to zero.", code=PRICE_TOO_LOW)
        if not is_multiple(value, symbol_rules.tick_size):
            raise rejection(f"{label} {value} not increased by tick size {symbol_rules.tick_size}.", code=BAD_TICK)
    closing = order.reduce_only
    if hedge_mode:
        opening = is_opening(order)
        if order.reduce_only and opening:
            raise rejection(
                "ReduceOnly Order is rejected: the order's side opens its position.", code=REDUCE_ONLY_REJECTED
            )
        closing = not opening
    if order.type is OrderType.MARKET and mark is None:
        raise rejection(f"No mark price for {order.symbol} yet: a market order cannot fill.", code=NEW_ORDER_REJECTED)
    reference = mark if order.type is OrderType.MARKET else (order.price or order.stop_price or mark)
    if not closing and reference is not None and order.qty * reference < symbol_rules.min_notional:
        raise rejection(
            f"Order's notional must be no smaller than {symbol_rules.min_notional} (unless you choose reduce only).",
            code=NOTIONAL_TOO_SMALL,
        )
    if order.stop_price is not None and mark is not None and would_trigger(order, mark):
        raise rejection(f"Order would immediately trigger (mark {mark}, stop {order.stop_price}).", code=WOULD_TRIGGER)


def _check_params(order: OrderRequest, *, bounded_market: bool = False) -> None:
    """Each type takes exactly its own price fields (-1102 missing, -1106 not required, as since 2026-10-08).

    ``bounded_market``: Lighter-style market orders, whose price (when given) is the worst acceptable one.
    """
    needs_price = order.type is OrderType.LIMIT
    may_price = needs_price or (bounded_market and order.type is OrderType.MARKET)
    needs_stop = order.type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
    for name, value, needed in (("price", order.price, needs_price), ("stopPrice", order.stop_price, needs_stop)):
        if needed and value is None:
            raise rejection(
                f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.", code=MANDATORY_PARAM
            )
        if not needed and value is not None and not (name == "price" and may_price):
            raise rejection(f"Parameter '{name}' sent when not required by {order.type}.", code=PARAM_NOT_REQUIRED)
