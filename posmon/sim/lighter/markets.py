"""The simulated Lighter markets: ids, symbols, decimals and minimums like the real ones, and integer scaling.

Lighter sends sizes and prices as integers (``base_amount = size * 10**size_decimals``,
``price = price * 10**price_decimals``); the core engine trades Decimals. This module is the
one place that converts, so a wrong scale shows up as a wrong amount, never a silent rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from posmon.domain.orders import SymbolRules


@dataclass(frozen=True, slots=True)
class LighterMarket:
    """One perp market as orderBookDetails describes it."""

    market_id: int
    symbol: str
    size_decimals: int
    price_decimals: int
    min_base_amount: Decimal  # in base units (e.g. 0.0050 ETH)
    min_quote_amount: Decimal  # USDC notional
    base_price: Decimal  # where the replayed path starts
    default_imf: int = 500  # initial margin fraction in 1/10_000 (500 = 5 %, 20x)

    @property
    def min_imf(self) -> int:
        """The lowest initial margin fraction an UpdateLeverage may set: the market's highest leverage."""
        return self.default_imf // 2

    @property
    def max_leverage(self) -> int:
        return 10_000 // self.min_imf

    @property
    def size_unit(self) -> Decimal:
        return Decimal(1).scaleb(-self.size_decimals)

    @property
    def price_unit(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_decimals)

    def size(self, base_amount: int) -> Decimal:
        """Integer base amount -> size."""
        return Decimal(base_amount).scaleb(-self.size_decimals)

    def price(self, price: int) -> Decimal:
        """Integer price -> price."""
        return Decimal(price).scaleb(-self.price_decimals)

    def size_str(self, size: Decimal) -> str:
        return f"{size.quantize(self.size_unit):f}"

    def price_str(self, price: Decimal) -> str:
        return f"{price.quantize(self.price_unit):f}"

    def rules(self) -> SymbolRules:
        """Engine rules: one integer unit as step and tick; the Lighter minimums are checked by the simulator,
        which exempts reduce-only orders as the venue does."""
        return SymbolRules(self.symbol, tick_size=self.price_unit, step_size=self.size_unit,
                           min_qty=self.size_unit, min_notional=Decimal(0))  # fmt: skip


ETH = LighterMarket(0, "ETH", 4, 2, Decimal("0.0050"), Decimal("10"), Decimal("3000.00"))
BTC = LighterMarket(1, "BTC", 5, 1, Decimal("0.00020"), Decimal("10"), Decimal("45000.0"))
DOGE = LighterMarket(3, "DOGE", 0, 6, Decimal("10"), Decimal("10"), Decimal("0.200000"), default_imf=1000)

DEFAULT_MARKETS: tuple[LighterMarket, ...] = (ETH, BTC, DOGE)


def by_id(markets: Iterable[LighterMarket]) -> dict[int, LighterMarket]:
    return {m.market_id: m for m in markets}


def rules_for(markets: Iterable[LighterMarket]) -> dict[str, SymbolRules]:
    """Rules for a ``SimExchange`` trading these markets under their Lighter symbols."""
    return {m.symbol: m.rules() for m in markets}


def price_levels(markets: Iterable[LighterMarket]) -> dict[str, tuple[Decimal, Decimal]]:
    """(base price, tick) per symbol: what ``paths.fan_out`` takes."""
    return {m.symbol: (m.base_price, m.price_unit) for m in markets}


def select(symbols: Iterable[str], markets: Mapping[str, LighterMarket] | None = None) -> tuple[LighterMarket, ...]:
    """The default markets named by ``symbols``; an unknown name raises ``KeyError`` naming it."""
    known = markets if markets is not None else {m.symbol: m for m in DEFAULT_MARKETS}
    return tuple(known[s] for s in symbols)
