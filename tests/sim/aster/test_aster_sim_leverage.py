"""The Aster simulator's ``POST /fapi/v1/leverage`` (and its v3 mirror) over loopback HTTP: the venue's answer,
its -4028 refusal, and the leverage showing in positionRisk and leverageBracket."""

from __future__ import annotations

import httpx
import pytest

from posmon.sim.aster import AsterSim
from posmon.sim.engine import DEFAULT_LEVERAGE, DEFAULT_MAX_LEVERAGE
from tests.sim.aster.test_aster_sim_helpers import ManualClock, V1Client, V3Client, body, make_exchange, running


async def test_change_leverage_answers_the_venue_shape_and_shows_in_position_risk():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        before = body(await client.signed("GET", "/fapi/v2/positionRisk", [("symbol", "BTCUSDT")]))
        assert {p["leverage"] for p in before} == {str(DEFAULT_LEVERAGE)}

        answer = await client.signed("POST", "/fapi/v1/leverage", [("symbol", "BTCUSDT"), ("leverage", "7")])
        assert answer.status_code == 200, answer.text
        assert body(answer) == {"leverage": 7, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}

        after = body(await client.signed("GET", "/fapi/v2/positionRisk", [("symbol", "BTCUSDT")]))
        assert {p["leverage"] for p in after} == {"7"}
        v3 = body(
            await V3Client(http, clock).signed("POST", "/fapi/v3/leverage", [("symbol", "ETHUSDT"), ("leverage", "3")])
        )
        assert v3["leverage"] == 3
        brackets = body(await client.signed("GET", "/fapi/v1/leverageBracket", [("symbol", "BTCUSDT")]))
        assert brackets["brackets"][0]["initialLeverage"] == DEFAULT_MAX_LEVERAGE
    assert (exchange.engine.leverage("BTCUSDT"), exchange.engine.leverage("ETHUSDT")) == (7, 3)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([("symbol", "BTCUSDT"), ("leverage", "0")], -4028),
        ([("symbol", "BTCUSDT"), ("leverage", str(DEFAULT_MAX_LEVERAGE + 1))], -4028),
        ([("symbol", "BTCUSDT")], -1102),
        ([("symbol", "BTCUSDT"), ("leverage", "five")], -1102),
        ([("symbol", "NOPEUSDT"), ("leverage", "5")], -1121),
    ],
)
async def test_a_bad_leverage_is_refused_with_the_venue_code_and_changes_nothing(params, code):
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        refused = await V1Client(http, clock).signed("POST", "/fapi/v1/leverage", params)
    assert (refused.status_code, body(refused)["code"]) == (400, code)
    if code == -4028:
        assert "is not valid" in body(refused)["msg"]
    assert exchange.engine.leverage("BTCUSDT") == DEFAULT_LEVERAGE and not exchange.engine.history
