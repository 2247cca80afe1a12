"""Market-data endpoints: server time, exchange information, mark prices and funding.

Answers are built from the engine's rules and marks in the venue's shapes; the simulator
lists no spot markets and funds at a constant rate every 8 hours.
"""

from __future__ import annotations

from typing import Any

from posmon.sim.aster import params as p
from posmon.sim.aster.context import Ctx, optional_symbol
from posmon.sim.aster.errors import invalid
from posmon.sim.aster.filters import fmt
from posmon.sim.aster.frames import INTEREST_RATE, next_funding_ms
from posmon.sim.aster.sim import AsterSim


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
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": sim.limits.weight_per_minute,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": sim.limits.orders_per_minute},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
        "symbols": [sim.filters[s].to_json() for s in rules if s in sim.filters],
    }


def spot_exchange_info(ctx: Ctx) -> dict[str, Any]:
    """The simulator lists no spot markets (ccxt's ``load_markets`` asks anyway)."""
    return {
        "timezone": "UTC",
        "serverTime": ctx.sim.now_ms(),
        "rateLimits": [],
        "exchangeFilters": [],
        "assets": [],
        "symbols": [],
    }


def premium_index(ctx: Ctx) -> Any:
    sim = ctx.sim
    symbol = optional_symbol(sim, ctx.values)
    marks = {m.symbol: m for m in sim.exchange.mark_prices()}
    now_ms = sim.now_ms()

    def entry(name: str) -> dict[str, Any]:
        mark = marks.get(name)
        price = fmt(mark.price, sim.filters[name].tick_size) if mark else "0"
        return {
            "symbol": name,
            "markPrice": price,
            "indexPrice": price,
            "estimatedSettlePrice": price,
            "lastFundingRate": sim.funding_rate,
            "interestRate": INTEREST_RATE,
            "nextFundingTime": next_funding_ms(now_ms, sim.funding_interval_ms),
            "time": round(mark.time * 1000) if mark else now_ms,
        }

    if symbol is not None:
        return entry(symbol)
    return [entry(name) for name in sim.filters if name in marks]


def funding_rate(ctx: Ctx) -> list[dict[str, Any]]:
    """Funding history: the simulator funds at a constant rate every 8 hours."""
    sim = ctx.sim
    symbol = optional_symbol(sim, ctx.values)
    limit = p.integer(ctx.values, "limit") or 100
    if not 1 <= limit <= 1000:
        raise invalid("limit")
    interval = sim.funding_interval_ms
    last = next_funding_ms(sim.now_ms(), interval) - interval
    times = [last - i * interval for i in reversed(range(limit))]
    symbols = [symbol] if symbol is not None else list(sim.filters)
    rows = [
        {"symbol": s, "fundingRate": sim.funding_rate, "fundingTime": t, "markPrice": _mark_text(sim, s)}
        for t in times
        for s in symbols
    ]
    return rows[-limit:]


def _mark_text(sim: AsterSim, symbol: str) -> str:
    mark = sim.exchange.engine.mark(symbol)
    return fmt(mark, sim.filters[symbol].tick_size) if mark is not None else "0"
