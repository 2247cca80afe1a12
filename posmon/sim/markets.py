"""Symbol filters and price levels for the simulated venue.

A handful of real-looking markets, plus made-up but deterministic rules for any
other name, so a benchmark can ask for hundreds of symbols without a table.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple

from posmon.domain.orders import SymbolRules


class Market(NamedTuple):
    rules: SymbolRules
    base_price: Decimal


def _market(symbol: str, tick: str, step: str, base: str, min_notional: str = "5") -> Market:
    rules = SymbolRules(
        symbol=symbol,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        min_notional=Decimal(min_notional),
    )
    return Market(rules, Decimal(base))


DEFAULT_MARKETS: MappingProxyType[str, Market] = MappingProxyType(
    {
        m.rules.symbol: m
        for m in (
            _market("BTCUSDT", "0.1", "0.001", "45000"),
            _market("ETHUSDT", "0.01", "0.001", "3000"),
            _market("XRPUSDT", "0.0001", "0.1", "1.0"),
            _market("SOLUSDT", "0.01", "0.01", "150"),
            _market("DOGEUSDT", "0.00001", "1", "0.2"),
            _market("BNBUSDT", "0.01", "0.01", "600"),
        )
    }
)


def market(symbol: str) -> Market:
    """The known market, or made-up rules (tick 0.01, step 0.001, base 100) for any other name."""
    known = DEFAULT_MARKETS.get(symbol)
    return known if known is not None else _market(symbol, "0.01", "0.001", "100")


def rules_for(symbols: Iterable[str]) -> dict[str, SymbolRules]:
    return {s: market(s).rules for s in symbols}


def price_levels(symbols: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]]:
    """(base price, tick size) per symbol: the shape ``paths.fan_out`` takes."""
    return {s: (market(s).base_price, market(s).rules.tick_size) for s in symbols}
