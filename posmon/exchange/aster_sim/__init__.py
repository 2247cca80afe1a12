"""A loopback Aster USDT-M futures venue: the real REST paths, websocket streams and auth in front of a SimExchange.

Start it with ``await nursery.start(serve_aster_sim, AsterSim(exchange))``; it reports
``(rest_url, ws_url)``. Real clients (posmon's Aster adapter, ccxt's ``aster``) trade
against it with the default credentials in ``credentials``.
"""

from posmon.exchange.aster_sim.app import create_app
from posmon.exchange.aster_sim.credentials import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_SIGNER_ADDRESS,
    DEFAULT_SIGNER_PRIVATE_KEY,
    DEFAULT_USER_ADDRESS,
    ApiKey,
    ApiWallet,
)
from posmon.exchange.aster_sim.filters import SymbolFilters
from posmon.exchange.aster_sim.limits import RateLimitConfig
from posmon.exchange.aster_sim.server import serve_aster_sim
from posmon.exchange.aster_sim.sim import AsterSim, SimCounters, WsConfig

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
