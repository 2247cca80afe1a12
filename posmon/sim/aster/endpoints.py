"""The REST endpoint table: every method and path the simulator serves, with its security and weight.

Weights are the venue's (``exchangeInfo`` publishes the per-minute limits they count
against); ``orders`` says how many orders a request counts for the ORDERS limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from posmon.sim.aster import account, market_data, trading
from posmon.sim.aster.auth import Security
from posmon.sim.aster.context import Ctx

Handler = Callable[[Ctx], Any]
Weight = Callable[[Mapping[str, str]], int]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method on one or more paths (the v1 path and its v3 mirror), with its security and weight."""

    method: str
    paths: tuple[str, ...]
    security: Security
    handler: Handler
    weight: Weight
    orders: Weight


def _fixed(n: int) -> Weight:
    return lambda _values: n


def _v(path: str, *, v1: str = "v1") -> tuple[str, ...]:
    """The venue path under ``/fapi/<v1>`` and its v3 mirror."""
    return (f"/fapi/{v1}/{path}", f"/fapi/v3/{path}")


def _open_orders_weight(values: Mapping[str, str]) -> int:
    return 1 if values.get("symbol") else 40


S, N, U = Security.SIGNED, Security.NONE, Security.USER_STREAM
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _v("ping"), N, market_data.ping, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("time"), N, market_data.server_time, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("exchangeInfo"), N, market_data.exchange_info, _fixed(1), _fixed(0)),
    Endpoint("GET", ("/api/v3/exchangeInfo",), N, market_data.spot_exchange_info, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("premiumIndex"), N, market_data.premium_index, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("fundingRate"), N, market_data.funding_rate, _fixed(1), _fixed(0)),
    Endpoint("POST", _v("order"), S, trading.new_order, _fixed(1), _fixed(1)),
    Endpoint("DELETE", _v("order"), S, trading.cancel_order, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("order"), S, trading.query_order, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("openOrder"), S, trading.open_order, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("openOrders"), S, trading.open_orders, _open_orders_weight, _fixed(0)),
    Endpoint("POST", _v("batchOrders"), S, trading.batch_orders, _fixed(5), trading.batch_size),
    Endpoint("DELETE", _v("batchOrders"), S, trading.cancel_batch, _fixed(1), _fixed(0)),
    Endpoint("DELETE", _v("allOpenOrders"), S, trading.cancel_all, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("positionRisk", v1="v2"), S, account.position_risk, _fixed(5), _fixed(0)),
    Endpoint("GET", _v("balance", v1="v2"), S, account.balance, _fixed(5), _fixed(0)),
    Endpoint("GET", _v("positionSide/dual"), S, account.position_mode, _fixed(30), _fixed(0)),
    Endpoint("POST", _v("positionSide/dual"), S, account.change_position_mode, _fixed(1), _fixed(0)),
    Endpoint("GET", _v("leverageBracket"), S, account.leverage_bracket, _fixed(1), _fixed(0)),
    Endpoint("POST", _v("leverage"), S, account.change_leverage, _fixed(1), _fixed(0)),
    Endpoint("POST", _v("listenKey"), U, account.new_listen_key, _fixed(1), _fixed(0)),
    Endpoint("PUT", _v("listenKey"), U, account.keepalive_listen_key, _fixed(1), _fixed(0)),
    Endpoint("DELETE", _v("listenKey"), U, account.close_listen_key, _fixed(1), _fixed(0)),
)
