"""The embedded Lighter venue: a one-way ``SimExchange`` on the Lighter markets, replaying the recording.

``posmon run`` with ``venue = "lighter"`` and no URLs starts one of these and serves it with
``serve_lighter_sim``, as ``venues.start_embedded_aster`` does for Aster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import trio

from posmon.sim.exchange import SimExchange
from posmon.sim.lighter.markets import DEFAULT_MARKETS, LighterMarket, price_levels, rules_for
from posmon.sim.lighter.sim import LighterSim
from posmon.sim.paths import DEFAULT_RECORDING, candles_to_ticks, fan_out, load_candles
from posmon.sim.serving import serve


def build_exchange(markets: Iterable[LighterMarket] = DEFAULT_MARKETS, *,
                   clock: Callable[[], float] = time.time) -> SimExchange:  # fmt: skip
    """A one-way ``SimExchange`` listing the markets under their Lighter symbols, each at its base price."""
    markets = tuple(markets)
    exchange = SimExchange(rules_for(markets), hedge_mode=False, clock=clock)
    exchange.set_marks({m.symbol: m.base_price for m in markets})
    return exchange


def start_replay(
    nursery: trio.Nursery,
    markets: Iterable[LighterMarket] = DEFAULT_MARKETS,
    *,
    tick_seconds: float = 1.0,
    seed: int | str = 0,
    recording: str = DEFAULT_RECORDING,
    clock: Callable[[], float] = time.time,
) -> SimExchange:
    """An exchange whose marks follow the packaged recording (rescaled per market) in ``nursery``."""
    markets = tuple(markets)
    exchange = SimExchange(rules_for(markets), hedge_mode=False, clock=clock)
    paths = fan_out(candles_to_ticks(load_candles(recording)), price_levels(markets), seed)
    exchange.set_marks({s: p[0] for s, p in paths.items() if p})
    nursery.start_soon(exchange.replay, {s: p[1:] + p[:1] for s, p in paths.items()}, tick_seconds)
    return exchange


async def start_embedded_lighter(
    nursery: trio.Nursery,
    markets: Iterable[LighterMarket] = DEFAULT_MARKETS,
    *,
    tick_seconds: float = 1.0,
    seed: int | str = 0,
    clock: Callable[[], float] = time.time,
    sim_options: dict | None = None,
) -> tuple[LighterSim, str, str]:
    """A replaying Lighter simulator served on loopback in ``nursery``: (sim, rest_url, ws_url)."""
    markets = tuple(markets)
    exchange = start_replay(nursery, markets, tick_seconds=tick_seconds, seed=seed, clock=clock)
    sim = LighterSim(exchange, markets=markets, **(sim_options or {}))
    rest_url, ws_url = await nursery.start(serve, sim)
    return sim, rest_url, ws_url
