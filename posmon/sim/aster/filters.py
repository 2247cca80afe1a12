"""Symbol filters as ``exchangeInfo`` publishes them, and the checks the venue runs before matching.

The engine knows tick, step, min qty and min notional; the venue publishes and enforces
more (price bounds, max quantities, a mark-price band, open-order caps). Those extras
live here with venue-like defaults so a client meets every filter it would meet live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from posmon.domain.orders import SymbolRules
from posmon.sim.aster import errors as e
from posmon.sim.aster.errors import ApiError

ZERO = Decimal(0)


def fmt(value: Decimal | None, unit: Decimal | None = None) -> str:
    """A decimal string in plain notation, padded to ``unit``'s decimals when that loses nothing; zero is "0"."""
    if value is None or value == 0:
        return "0"
    if unit is not None and unit != 0:
        exponent = unit.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < 0:
            padded = value.quantize(Decimal(1).scaleb(exponent))
            if padded == value:
                return format(padded, "f")
    return "0" if value == 0 else format(value.normalize(), "f")


def decimals(unit: Decimal) -> int:
    exponent = unit.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """Everything ``exchangeInfo`` says about trading one symbol."""

    symbol: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    multiplier_up: Decimal = Decimal("1.1500")
    multiplier_down: Decimal = Decimal("0.8500")
    multiplier_decimal: int = 4
    max_num_orders: int = 200
    max_num_algo_orders: int = 100

    @classmethod
    def from_rules(cls, rules: SymbolRules, **overrides: Any) -> SymbolFilters:
        """Venue-like bounds around the engine's rules; any field can be overridden."""
        min_qty = rules.min_qty or rules.step_size
        base = cls(
            symbol=rules.symbol,
            tick_size=rules.tick_size,
            min_price=rules.tick_size,
            max_price=Decimal(1_000_000),
            step_size=rules.step_size,
            min_qty=min_qty,
            max_qty=Decimal(1_000_000),
            market_step_size=rules.step_size,
            market_min_qty=min_qty,
            market_max_qty=Decimal(100_000),
            min_notional=rules.min_notional,
        )
        return replace(base, **overrides)

    @property
    def base_asset(self) -> str:
        return self.symbol[:-4] if self.symbol.endswith("USDT") else self.symbol

    def to_json(self) -> dict[str, object]:
        """One entry of ``exchangeInfo.symbols``."""
        return {
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base_asset,
            "quoteAsset": "USDT",
            "marginAsset": "USDT",
            "pricePrecision": decimals(self.tick_size),
            "quantityPrecision": decimals(self.step_size),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.1500",
            "liquidationFee": "0.010000",
            "marketTakeBound": "0.30",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.min_price),
                    "maxPrice": fmt(self.max_price),
                    "tickSize": fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(self.min_qty),
                    "maxQty": fmt(self.max_qty),
                    "stepSize": fmt(self.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(self.market_min_qty),
                    "maxQty": fmt(self.market_max_qty),
                    "stepSize": fmt(self.market_step_size),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": self.max_num_orders},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": self.max_num_algo_orders},
                {"filterType": "MIN_NOTIONAL", "notional": fmt(self.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": fmt(self.multiplier_up, Decimal("0.0001")),
                    "multiplierDown": fmt(self.multiplier_down, Decimal("0.0001")),
                    "multiplierDecimal": self.multiplier_decimal,
                },
            ],
            # The Aster docs spell this key "OrderType", Binance and ccxt "orderTypes": publish both.
            "OrderType": list(ORDER_TYPES),
            "orderTypes": list(ORDER_TYPES),
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "HIDDEN"],
        }

    # ---- checks -------------------------------------------------------------------------------------------------

    def check_price(self, value: Decimal, *, stop: bool) -> None:
        """PRICE_FILTER for ``price`` or ``stopPrice`` (-4001/-4006 sign, -1111 precision, bounds, -4014 tick)."""
        if value <= 0:
            raise ApiError(e.STOP_PRICE_TOO_LOW if stop else -4001, None if stop else "Price less than 0.")
        if _too_precise(value, self.tick_size):
            raise ApiError(e.BAD_PRECISION)
        if self.min_price and value < self.min_price:
            raise ApiError(e.PRICE_BELOW_MIN)
        if self.max_price and value > self.max_price:
            raise ApiError(e.STOP_PRICE_TOO_HIGH if stop else e.PRICE_TOO_HIGH)
        if self.tick_size and (value - self.min_price) % self.tick_size != 0:
            raise ApiError(e.BAD_TICK)

    def check_qty(self, qty: Decimal, *, market: bool) -> None:
        """LOT_SIZE, or MARKET_LOT_SIZE for orders that execute at market."""
        step, low, high = (
            (self.market_step_size, self.market_min_qty, self.market_max_qty)
            if market
            else (self.step_size, self.min_qty, self.max_qty)
        )
        if qty <= 0:
            raise ApiError(e.QTY_TOO_LOW)
        if _too_precise(qty, step):
            raise ApiError(e.BAD_PRECISION)
        if qty < low:
            raise ApiError(e.QTY_BELOW_MIN)
        if high and qty > high:
            raise ApiError(e.QTY_ABOVE_MAX)
        if step and (qty - low) % step != 0:
            raise ApiError(e.BAD_STEP)

    def check_percent_price(self, price: Decimal, buy: bool, mark: Decimal | None) -> None:
        """PERCENT_PRICE: a BUY at most mark * up, a SELL at least mark * down (skipped without a mark)."""
        if mark is None:
            return
        if buy and price > mark * self.multiplier_up:
            raise ApiError(e.PRICE_ABOVE_MULTIPLIER_UP)
        if not buy and price < mark * self.multiplier_down:
            raise ApiError(e.PRICE_BELOW_MULTIPLIER_DOWN)


ORDER_TYPES = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")


def _too_precise(value: Decimal, unit: Decimal) -> bool:
    """More decimals than the unit has: the venue's -1111 rather than a plain off-tick."""
    if unit == 0:
        return False
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and -exponent > decimals(unit)


def filters_for(
    rules: Mapping[str, SymbolRules], overrides: Mapping[str, SymbolFilters] | None = None
) -> dict[str, SymbolFilters]:
    """Filters for every engine symbol: the given ones where present, venue-like defaults otherwise."""
    given = dict(overrides or {})
    return {s: given.get(s) or SymbolFilters.from_rules(r) for s, r in rules.items()}
