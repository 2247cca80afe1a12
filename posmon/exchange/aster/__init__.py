"""The Aster (asterdex.com) USDT-M futures adapter: ``AsterVenue`` over the real REST API and websockets.

Modules: ``settings`` (the ``[aster]`` table), ``signing`` (v1 HMAC, v3 EIP-712), ``errors`` (status/code
-> typed errors), ``codec`` (JSON <-> domain types), ``rest`` (typed REST calls), ``stream`` (websockets),
``venue`` (the ``Venue`` protocol). The common entry points are re-exported here.
"""

from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.venue import AsterVenue

__all__ = ["AsterSettings", "AsterVenue"]
