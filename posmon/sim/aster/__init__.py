"""A loopback Aster USDT-M futures venue: the real REST paths, websocket streams and auth in front of a SimExchange.

Start it with ``await nursery.start(serve_aster_sim, AsterSim(exchange))``; it reports
``(rest_url, ws_url)``. Real clients (posmon's Aster adapter, ccxt's ``aster``) trade
against it with the default credentials in ``credentials``.
"""

from posmon.sim.aster.app import create_app
from posmon.sim.aster.credentials import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_SIGNER_ADDRESS,
    DEFAULT_SIGNER_PRIVATE_KEY,
    DEFAULT_USER_ADDRESS,
    ApiKey,
    ApiWallet,
)
from posmon.sim.aster.filters import SymbolFilters
from posmon.sim.aster.limits import RateLimitConfig
from posmon.sim.aster.sim import AsterSim, SimCounters, WsConfig
from posmon.sim.serving import serve as serve_aster_sim

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_SIGNER_ADDRESS",
    "DEFAULT_SIGNER_PRIVATE_KEY",
    "DEFAULT_USER_ADDRESS",
    "ApiKey",
    "ApiWallet",
    "AsterSim",
    "RateLimitConfig",
    "SimCounters",
    "SymbolFilters",
    "WsConfig",
    "create_app",
    "serve_aster_sim",
]
