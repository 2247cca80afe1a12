"""Parsing and field checks of signed transactions (``tx_info`` JSON), pure and stateless.

What needs the account (nonces, open orders, positions) is checked by the simulator; here only
what one transaction says on its own: types, ranges, the Type/TimeInForce/expiry/trigger combinations
the venue accepts, and the integer scaling against the market. Signatures are not verified
(that needs lighter-go's Poseidon2/Schnorr code): ``Sig`` must merely be present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posmon.exchange.lighter.signer import (
    ORDER_TIME_IN_FORCE_GOOD_TILL_TIME,
    ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
    ORDER_TIME_IN_FORCE_POST_ONLY,
    ORDER_TYPE_LIMIT,
    ORDER_TYPE_MARKET,
    TX_TYPE_CANCEL_ORDER,
    TX_TYPE_CREATE_ORDER,
    TX_TYPE_UPDATE_LEVERAGE,
)
from posmon.sim.lighter import errors as e
from posmon.sim.lighter.errors import LighterError
from posmon.sim.lighter.markets import LighterMarket

MAX_CLIENT_ORDER_INDEX = 2**48 - 1
MIN_ORDER_INDEX = 2**48
MAX_PRICE = 2**32 - 1
MAX_BASE_AMOUNT = 2**48 - 1
SUPPORTED_TX_TYPES = frozenset({TX_TYPE_CREATE_ORDER, TX_TYPE_CANCEL_ORDER, TX_TYPE_UPDATE_LEVERAGE})


@dataclass(frozen=True, slots=True)
class Header:
    """What every transaction carries."""

    tx_type: int
    account_index: int
    api_key_index: int
    nonce: int
    expired_at: int  # ms


@dataclass(frozen=True, slots=True)
class CreateOrder:
    header: Header
    market_index: int
    client_order_index: int
    base_amount: int
    price: int
    is_ask: bool
    order_type: int
    time_in_force: int
    reduce_only: bool
    trigger_price: int
    order_expiry: int


@dataclass(frozen=True, slots=True)
class CancelOrder:
    header: Header
    market_index: int
    index: int  # exchange order index (>= 2**48) or client order index


@dataclass(frozen=True, slots=True)
class UpdateLeverage:
    header: Header
    market_index: int
    initial_margin_fraction: int
    margin_mode: int


Tx = CreateOrder | CancelOrder | UpdateLeverage


def parse(tx_type: int, tx_info: str, markets: Mapping[int, LighterMarket], now_ms: int | None) -> Tx:
    """One transaction, field-checked; ``now_ms`` (wall clock) checks ``ExpiredAt`` unless None."""
    if tx_type not in SUPPORTED_TX_TYPES:
        raise LighterError(e.INVALID_TX_TYPE, f"tx_type {tx_type} is not supported by the simulator "
                           f"(supported: {sorted(SUPPORTED_TX_TYPES)})")  # fmt: skip
    try:
        info = json.loads(tx_info)
    except (TypeError, ValueError) as exc:
        raise LighterError(e.INVALID_TX_INFO, f"tx_info is not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise LighterError(e.INVALID_TX_INFO, "tx_info must be a JSON object")
    if not info.get("Sig"):
        raise LighterError(e.INVALID_TX_INFO, "tx_info has no Sig")
    header = Header(tx_type, _int(info, "AccountIndex", 0), _int(info, "ApiKeyIndex", 0, 254),
                    _int(info, "Nonce", 0), _int(info, "ExpiredAt", 0))  # fmt: skip
    if now_ms is not None and header.expired_at <= now_ms:
        raise LighterError(e.TX_EXPIRED, f"transaction expired at {header.expired_at} (now {now_ms})")
    market_index = _int(info, "MarketIndex", 0)
    if market_index not in markets:
        raise LighterError(e.INVALID_MARKET, f"MarketIndex {market_index} is not a market (known: {sorted(markets)})")
    if tx_type == TX_TYPE_CANCEL_ORDER:
        return CancelOrder(header, market_index, _int(info, "Index", 1))
    if tx_type == TX_TYPE_UPDATE_LEVERAGE:
        market = markets[market_index]
        imf = _int(info, "InitialMarginFraction", 1, 10_000, code=e.INVALID_LEVERAGE)
        if imf < market.min_imf:
            raise LighterError(e.INVALID_LEVERAGE, f"InitialMarginFraction {imf} is below {market.symbol}'s minimum "
                               f"{market.min_imf}: leverage above {market.max_leverage}x is not allowed")  # fmt: skip
        mode = _int(info, "MarginMode", 0, 1, code=e.INVALID_LEVERAGE)
        return UpdateLeverage(header, market_index, imf, mode)
    return _create_order(header, info, markets[market_index], now_ms)


def _create_order(header: Header, info: dict[str, Any], market: LighterMarket, now_ms: int | None) -> CreateOrder:
    order = CreateOrder(
        header=header,
        market_index=market.market_id,
        client_order_index=_int(info, "ClientOrderIndex", 0, MAX_CLIENT_ORDER_INDEX, code=e.INVALID_CLIENT_ORDER_INDEX),
        base_amount=_int(info, "BaseAmount", 0, MAX_BASE_AMOUNT, code=e.INVALID_BASE_AMOUNT),
        price=_int(info, "Price", 1, MAX_PRICE, code=e.INVALID_PRICE),
        is_ask=bool(_int(info, "IsAsk", 0, 1)),
        order_type=_int(info, "Type", 0, 6, code=e.INVALID_ORDER_TYPE),
        time_in_force=_int(info, "TimeInForce", 0, 2, code=e.INVALID_TIME_IN_FORCE),
        reduce_only=bool(_int(info, "ReduceOnly", 0, 1)),
        trigger_price=_int(info, "TriggerPrice", 0, MAX_PRICE, code=e.INVALID_TRIGGER),
        order_expiry=_int(info, "OrderExpiry", -1, code=e.INVALID_EXPIRY),
    )
    if order.order_type not in (ORDER_TYPE_LIMIT, ORDER_TYPE_MARKET):
        raise LighterError(e.INVALID_ORDER_TYPE, f"order Type {order.order_type}: the simulator takes LIMIT (0) and "
                           "MARKET (1) only; conditional orders are emulated by posmon")  # fmt: skip
    if order.trigger_price != 0:
        raise LighterError(e.INVALID_TRIGGER, "TriggerPrice must be 0 for LIMIT and MARKET orders")
    ioc = order.time_in_force == ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
    if order.order_type == ORDER_TYPE_MARKET and not ioc:
        raise LighterError(e.INVALID_TIME_IN_FORCE, "a MARKET order needs TimeInForce IMMEDIATE_OR_CANCEL (0)")
    if ioc and order.order_expiry != 0:
        raise LighterError(e.INVALID_EXPIRY, "an IMMEDIATE_OR_CANCEL order needs OrderExpiry 0")
    resting = order.time_in_force in (ORDER_TIME_IN_FORCE_GOOD_TILL_TIME, ORDER_TIME_IN_FORCE_POST_ONLY)
    if resting and (order.order_expiry <= 0 or (now_ms is not None and order.order_expiry <= now_ms)):
        raise LighterError(e.INVALID_EXPIRY, f"OrderExpiry {order.order_expiry} must be a future time in ms")
    if order.base_amount == 0 and not order.reduce_only:
        raise LighterError(e.INVALID_BASE_AMOUNT, "BaseAmount 0 is only allowed on a reduce-only order "
                           "(where it means the whole position)")  # fmt: skip
    if not order.reduce_only:
        size, price = market.size(order.base_amount), market.price(order.price)
        if size < market.min_base_amount:
            raise LighterError(e.BELOW_MIN_AMOUNT, f"BaseAmount {order.base_amount} is {size} {market.symbol}, "
                               f"below the minimum {market.min_base_amount} (size_decimals "
                               f"{market.size_decimals})")  # fmt: skip
        if size * price < market.min_quote_amount:
            raise LighterError(e.BELOW_MIN_AMOUNT, f"order value {size * price} USDC is below the minimum "
                               f"{market.min_quote_amount} (price_decimals {market.price_decimals})")  # fmt: skip
    return order


def _int(info: Mapping[str, Any], key: str, low: int, high: int | None = None, *, code: int = e.INVALID_TX_INFO) -> int:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LighterError(code, f"{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise LighterError(code, f"{key} {value} is out of range ({bounds})")
    return value
