"""Lighter-protocol simulator: REST and websocket on loopback over the core matching engine.

```python
exchange = build_exchange()                      # one-way SimExchange listing ETH (0), BTC (1), DOGE (3)
sim = LighterSim(exchange)                       # default account/key from credentials.py
rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)   # http://127.0.0.1:P, ws://127.0.0.1:P/stream
```
"""

from posmon.sim.lighter.limits import PREMIUM, STANDARD, UNLIMITED, Tier
from posmon.sim.lighter.markets import BTC, DEFAULT_MARKETS, DOGE, ETH, LighterMarket
from posmon.sim.lighter.session import build_exchange, start_embedded_lighter, start_replay
from posmon.sim.lighter.sim import LighterSim, SimCounters, WsConfig
from posmon.sim.serving import serve as serve_lighter_sim

__all__ = [
    "BTC",
    "DEFAULT_MARKETS",
    "DOGE",
    "ETH",
    "PREMIUM",
    "STANDARD",
    "UNLIMITED",
    "LighterMarket",
    "LighterSim",
    "SimCounters",
    "Tier",
    "WsConfig",
    "build_exchange",
    "serve_lighter_sim",
    "start_embedded_lighter",
    "start_replay",
]
