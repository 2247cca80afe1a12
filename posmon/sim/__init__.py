"""The simulated world, a layer beside the venue adapters in ``posmon.exchange``.

The core is a simulated Binance-compatible futures venue: matching engine, price paths, wire frames,
streams (``engine``, ``paths``, ``markets``, ``wire``, ``exchange``, ``session``) and ``venue``, the
in-process ``SimVenue``. In front of it stand the two protocol simulators, ``aster`` and ``lighter``,
served on loopback; what they share lives here once: ``serving`` (the ``ProtocolSim`` base, websocket
connections, hypercorn on a free port), ``faults`` (scripted failures, for the engine's calls and for
HTTP requests) and ``counters``. The common entry points are re-exported here.
"""

from posmon.sim.engine import MatchingEngine
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue

__all__ = ["MatchingEngine", "SimExchange", "SimVenue", "rules_for"]
