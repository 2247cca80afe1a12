"""A simulated Binance-compatible futures venue: matching engine, price paths, wire frames, streams.

Import the pieces from their modules (``engine``, ``paths``, ``markets``, ``wire``,
``exchange``, ``venue``); the common entry points are re-exported here.
"""

from posmon.sim.engine import MatchingEngine
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue

__all__ = ["MatchingEngine", "SimExchange", "SimVenue", "rules_for"]
