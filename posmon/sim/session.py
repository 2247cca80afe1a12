"""The embedded default venue: a simulated exchange replaying a real recording, with another trader on it.

``posmon run`` on the default config starts one of these in its nursery and hands
the daemon a ``SimVenue`` for it, exactly as it would hand it a live venue's
adapter. (``posmon demo`` plays a scripted session instead: ``posmon.demo``.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from posmon.config import Settings
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import price_levels, rules_for
from posmon.sim.paths import candles_to_ticks, fan_out, load_candles


def build_exchange(settings: Settings, *, clock: Callable[[], float] = time.time) -> SimExchange:
    return SimExchange(rules_for(settings.sim.symbols), hedge_mode=settings.daemon.hedge_mode, clock=clock)


def replay_paths(settings: Settings) -> dict[str, list]:
    """The recording rescaled to each symbol's price level, each symbol at its own offset."""
    ticks = candles_to_ticks(load_candles(settings.sim.recording))
    return fan_out(ticks, price_levels(settings.sim.symbols), settings.sim.seed)


def start_replay(
    settings: Settings,
    nursery: trio.Nursery,
    *,
    tick_seconds: float | None = None,
    trader: bool | None = None,
    clock: Callable[[], float] = time.time,
) -> SimExchange:
    """A simulated exchange replaying the recording (and, if enabled, another trader) in ``nursery``."""
    sim = settings.sim
    exchange = build_exchange(settings, clock=clock)
    paths = replay_paths(settings)
    # One step before anyone connects, so every symbol has a mark from the start.
    exchange.set_marks({s: p[0] for s, p in paths.items() if p})
    nursery.start_soon(
        exchange.replay,
        {s: p[1:] + p[:1] for s, p in paths.items()},
        tick_seconds if tick_seconds is not None else sim.tick_seconds,
    )
    if sim.trader_enabled if trader is None else trader:
        nursery.start_soon(exchange.run_trader, list(sim.symbols), sim.trader_interval_seconds, sim.seed)
    return exchange
