"""Lighter markets: metadata from ``orderBookDetails`` and exact Decimal <-> integer scaling.

Lighter signs integers: ``base_amount = size * 10**size_decimals`` and ``price = price * 10**price_decimals``.
A value off that grid is refused (``OffGrid``) rather than rounded here: rounding is the domain's job and
must go in the safe direction, which only the caller knows. The signer takes the price as a uint32 and the
base amount as an int64, so larger values are refused too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from posmon.domain.orders import SymbolRules
from posmon.exchange import fields
from posmon.exchange.events import MalformedMessage

__all__ = ["MAX_BASE_AMOUNT", "MAX_PRICE", "Market", "MarketTable", "OffGrid", "parse_order_book_details"]

MAX_PRICE = 2**32 - 1  # the signer's Price / TriggerPrice are uint32
MAX_BASE_AMOUNT = 2**63 - 1  # BaseAmount is an int64
SETTLE_ASSET = "USDC"  # every Lighter perpetual is quoted and margined in USDC


class OffGrid(ValueError):
    """A price or size that is not a whole number of the market's units (or does not fit the signer's field)."""


@dataclass(frozen=True, slots=True)
class Market:
    """One perpetual market: its id, symbol, integer scales and order minimums."""

    market_id: int
    symbol: str
    size_decimals: int
    price_decimals: int
    min_base_amount: Decimal = Decimal(0)
    min_quote_amount: Decimal = Decimal(0)
    status: str = "active"

    @property
    def rules(self) -> SymbolRules:
        """The market's filters; its assets: a Lighter perpetual is named by its base and priced and settled in
        USDC (orderBookDetails gives only asset ids), so ``BTC`` is ``BTC/USDC:USDC`` as ccxt names it."""
        return SymbolRules(
            symbol=self.symbol,
            tick_size=Decimal(1).scaleb(-self.price_decimals),
            step_size=Decimal(1).scaleb(-self.size_decimals),
            min_qty=self.min_base_amount,
            min_notional=self.min_quote_amount,
            base_asset=self.symbol,
            quote_asset=SETTLE_ASSET,
            settle_asset=SETTLE_ASSET,
        )

    def base_amount(self, qty: Decimal) -> int:
        """``qty`` in base units; refuses negatives, values off the step and values beyond int64."""
        return _scaled(qty, self.size_decimals, MAX_BASE_AMOUNT, f"{self.symbol} size")

    def price_units(self, price: Decimal) -> int:
        """``price`` in price units; refuses values off the tick, zero/negative and beyond uint32."""
        units = _scaled(price, self.price_decimals, MAX_PRICE, f"{self.symbol} price")
        if units == 0:
            raise OffGrid(f"{self.symbol} price {price} is not positive")
        return units

    def qty_of(self, base_amount: int) -> Decimal:
        return Decimal(base_amount).scaleb(-self.size_decimals)

    def price_of(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.price_decimals)


def _scaled(value: Decimal, decimals: int, limit: int, what: str) -> int:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise OffGrid(f"{what} {value!r} is not a finite Decimal")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise OffGrid(f"{what} {value} is not a multiple of {Decimal(1).scaleb(-decimals)}")
    units = int(scaled)
    if units < 0 or units > limit:
        raise OffGrid(f"{what} {value} is outside 0 .. {Decimal(limit).scaleb(-decimals)}")
    return units


@dataclass(frozen=True, slots=True)
class MarketTable:
    """Every listed perpetual by symbol and by id, plus those left out and why."""

    by_symbol: Mapping[str, Market]
    by_id: Mapping[int, Market]
    skipped: Mapping[str, str]

    @classmethod
    def of(cls, markets: list[Market], skipped: Mapping[str, str] | None = None) -> MarketTable:
        return cls(
            MappingProxyType({m.symbol: m for m in markets}),
            MappingProxyType({m.market_id: m for m in markets}),
            MappingProxyType(dict(skipped or {})),
        )

    def symbol_of(self, market_id: int) -> str | None:
        market = self.by_id.get(market_id)
        return market.symbol if market is not None else None


def parse_order_book_details(data: Any) -> MarketTable:
    """``GET /api/v1/orderBookDetails``: perpetual markets (spot ones are ignored); unusable entries are skipped."""
    answer = fields.as_object(data, "orderBookDetails answer")
    items = fields.required(answer, "order_book_details")
    if not isinstance(items, list):
        raise MalformedMessage(f"'order_book_details' is not a list: {fields.show(items)}")
    markets: list[Market] = []
    skipped: dict[str, str] = {}
    for item in items:
        entry = fields.as_object(item, "order book detail")
        symbol = fields.text(entry, "symbol")
        if entry.get("market_type", "perp") != "perp":
            continue
        try:
            markets.append(_market(symbol, entry))
        except MalformedMessage as exc:
            skipped[symbol] = str(exc)
    return MarketTable.of(markets, skipped)


def _market(symbol: str, entry: dict[str, Any]) -> Market:
    return Market(
        market_id=_int(entry, "market_id", 0, 2**16),
        symbol=symbol,
        size_decimals=_int(entry, "size_decimals", 0, 18),
        price_decimals=_int(entry, "price_decimals", 0, 18),
        min_base_amount=_non_negative(entry, "min_base_amount"),
        min_quote_amount=_non_negative(entry, "min_quote_amount"),
        status=fields.text(entry, "status") if "status" in entry else "active",
    )


def _int(entry: dict[str, Any], key: str, low: int, high: int) -> int:
    value = fields.required(entry, key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MalformedMessage(f"field {key!r} is not an integer in {low}..{high}: {value!r}")
    return value


def _non_negative(entry: dict[str, Any], key: str) -> Decimal:
    if key not in entry:
        return Decimal(0)
    value = fields.decimal(entry, key)
    if value < 0:
        raise MalformedMessage(f"field {key!r} is negative: {value}")
    return value
