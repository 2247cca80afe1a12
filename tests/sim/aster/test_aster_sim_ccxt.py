"""ccxt's own ``aster`` class trades against the simulator: an independent client of the same protocol.

ccxt is synchronous here (its requests session), so it runs in a worker thread while the
server runs in the test's trio loop; it signs v3 only, with user == signer.
"""

from __future__ import annotations

from typing import Any

import ccxt
import pytest
import trio

from posmon.sim.aster import DEFAULT_SIGNER_PRIVATE_KEY, AsterSim
from tests.sim.aster.test_aster_sim_helpers import D, make_exchange, running


def make_ccxt(rest: str) -> Any:
    exchange = ccxt.aster(
        {
            "privateKey": DEFAULT_SIGNER_PRIVATE_KEY,
            "options": {"builderFee": False},
            "enableRateLimit": False,
            "timeout": 10_000,
        }
    )
    exchange.urls["api"] = {
        "fapiPublic": f"{rest}/fapi",
        "fapiPrivate": f"{rest}/fapi",
        "sapiPublic": f"{rest}/api",
        "sapiPrivate": f"{rest}/api",
    }
    return exchange


def scenario(client: Any) -> dict[str, Any]:
    """What a ccxt user does: markets, orders (single and batch), queries, cancels, positions, funding."""
    seen: dict[str, Any] = {}
    markets = client.load_markets()
    seen["market"] = markets["BTC/USDT:USDT"]
    seen["mode"] = client.fetch_position_mode()
    order = client.create_order(
        "BTC/USDT:USDT", "limit", "buy", 0.01, 44000, {"positionSide": "LONG", "newClientOrderId": "ccxt-1"}
    )
    seen["order"] = order
    seen["batch"] = client.create_orders(
        [
            {
                "symbol": "BTC/USDT:USDT",
                "type": "limit",
                "side": "buy",
                "amount": 0.01,
                "price": 43900,
                "params": {"positionSide": "LONG"},
            },
            {
                "symbol": "BTC/USDT:USDT",
                "type": "limit",
                "side": "buy",
                "amount": 0.01,
                "price": 43800,
                "params": {"positionSide": "LONG"},
            },
        ]
    )
    seen["open"] = client.fetch_open_orders("BTC/USDT:USDT")
    seen["cancelled"] = client.cancel_order(order["id"], "BTC/USDT:USDT")
    seen["cancel_all"] = client.cancel_all_orders("BTC/USDT:USDT")
    seen["open_after"] = client.fetch_open_orders("BTC/USDT:USDT")
    client.create_order("ETH/USDT:USDT", "market", "sell", 0.1, None, {"positionSide": "SHORT"})
    seen["positions"] = client.fetch_positions()
    seen["funding"] = client.fetch_funding_rate("BTC/USDT:USDT")
    try:
        client.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 60000, {"positionSide": "LONG"})
    except ccxt.BaseError as exc:
        seen["refused"] = exc
    return seen


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_ccxt_aster_trades_against_the_simulator():
    exchange = make_exchange()
    sim = AsterSim(exchange)
    async with running(sim) as (rest, _ws):
        seen = await trio.to_thread.run_sync(scenario, make_ccxt(rest))
    assert seen["market"]["precision"]["price"] == 0.1 and seen["market"]["limits"]["cost"]["min"] == 5
    assert seen["mode"]["hedged"] is True
    assert seen["order"]["clientOrderId"] == "ccxt-1" and seen["order"]["status"] == "open"
    assert [o["status"] for o in seen["batch"]] == ["open", "open"]
    assert {o["clientOrderId"] for o in seen["open"]} >= {"ccxt-1"} and len(seen["open"]) == 3
    assert seen["cancelled"]["status"] == "canceled"
    assert seen["open_after"] == []
    [short] = [p for p in seen["positions"] if p["symbol"] == "ETH/USDT:USDT"]
    assert short["side"] == "short" and short["contracts"] == 0.1
    assert seen["funding"]["markPrice"] == 45000
    assert isinstance(seen["refused"], ccxt.BaseError) and "-4016" in str(seen["refused"])
    assert exchange.engine.open_orders() == []
    assert sim.counters.requests["GET /api/v3/exchangeInfo"] >= 1
    assert sim.counters.requests["GET /fapi/v3/leverageBracket"] == 1
    assert D(str(short["entryPrice"])) == D("3000")
