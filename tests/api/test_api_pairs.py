"""``POST /api/pairs``, ``/api/pairs/link``, ``/api/pairs/{id}/close`` and ``GET /api/pairs`` over HTTP with a fake
control: a bad body is refused naming the field and nothing reaches the control object; a good one arrives typed."""

from decimal import Decimal as D

import httpx
import pytest

from posmon.api import create_app
from posmon.api.openapi import openapi_schema
from posmon.control import PairLegRef
from posmon.domain.orders import Side
from posmon.domain.pairs import OnLegExit
from tests.api.test_api_fakes import FakeControl, served

GOOD = {"legs": [{"venue": "aster", "symbol": "BTC/USDT:USDT"}, {"venue": "lighter"}], "side": "long", "qty": "0.01"}


async def post(control: FakeControl, path: str, body: object) -> httpx.Response:
    async with (
        served(create_app(control, metrics_render=None, token=None)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        return await client.post(path, json=body)


async def test_a_pair_request_arrives_typed_with_its_rules():
    control = FakeControl()
    body = {
        **GOOD,
        "tp_usd": 50,
        "sl_percent": "1.5",
        "on_leg_exit": "protect",
        "max_leg_imbalance_pct": 2,
        "auto_rebalance": True,
    }
    answer = await post(control, "/api/pairs", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["legs"][1]["venue"] == "lighter"
    [(name, (request,))] = control.mutations()
    assert name == "open_pair"
    assert request.legs == (PairLegRef("aster", "BTC/USDT:USDT"), PairLegRef("lighter"))
    assert (request.side, request.qty, request.notional_usd) == (Side.LONG, D("0.01"), None)
    r = request.rules
    assert (r.tp_quote, r.sl_pct, r.on_leg_exit, r.max_leg_imbalance_pct, r.auto_rebalance) == (
        D(50),
        D("1.5"),
        OnLegExit.PROTECT,
        D(2),
        True,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "legs": [{"venue": "aster", "symbol": "BTCUSDT"}]}, "legs"),
        ({**GOOD, "legs": [{"venue": "aster"}, {"venue": "lighter"}]}, "legs[0].symbol"),
        ({**GOOD, "legs": [{"symbol": "BTCUSDT"}, {"venue": "lighter"}]}, "legs[0].venue"),
        ({**GOOD, "legs": [{"venue": "aster", "symbol": "BTCUSDT"}, {"venue": "aster"}]}, "legs[1].venue"),
        ({**GOOD, "legs": [{"venue": "aster", "symbol": "BTC USDT"}, {"venue": "lighter"}]}, "legs[0].symbol"),
        ({**GOOD, "legs": [{"venue": "aster", "symbol": "BTCUSDT", "x": 1}, {"venue": "lighter"}]}, "legs[0].x"),
        ({**GOOD, "side": "up"}, "side"),
        ({**GOOD, "qty": "-1"}, "qty"),
        ({**GOOD, "notional_usd": 500}, "qty"),  # both sizes
        ({k: v for k, v in GOOD.items() if k != "qty"}, "qty"),  # neither
        ({**GOOD, "on_leg_exit": "flee"}, "on_leg_exit"),
        ({**GOOD, "max_leg_imbalance_pct": 100}, "max_leg_imbalance_pct"),
        ({**GOOD, "auto_rebalance": "yes"}, "auto_rebalance"),
        ({**GOOD, "tp_usd": 0}, "tp_usd"),
        ({**GOOD, "leverage": 5}, "leverage"),
    ],
)
async def test_a_bad_pair_request_is_refused_naming_the_field_and_nothing_is_sent(body, field):
    control = FakeControl()
    answer = await post(control, "/api/pairs", body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert control.mutations() == []


async def test_link_needs_each_legs_symbol_and_takes_a_side():
    control = FakeControl()
    refused = await post(
        control, "/api/pairs/link", {"legs": [{"venue": "aster", "symbol": "BTCUSDT"}, {"venue": "lighter"}]}
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "legs[1].symbol")
    body = {"legs": [{"venue": "aster", "symbol": "BTCUSDT", "side": "LONG"}, {"venue": "lighter", "symbol": "BTC"}]}
    assert (await post(control, "/api/pairs/link", body)).status_code == 200
    [(name, (request,))] = control.mutations()
    assert name == "link_pair" and request.legs[0].side is Side.LONG and request.legs[1].side is None


async def test_close_takes_the_pairs_id_and_an_empty_body():
    control = FakeControl()
    assert (await post(control, "/api/pairs/abc/close", {})).json()["field"] == "id"
    assert (await post(control, "/api/pairs/4/close", {"now": True})).json()["field"] == "now"
    answer = await post(control, "/api/pairs/4/close", {})
    assert answer.status_code == 200 and answer.json()["status"] == "closing"
    assert control.mutations() == [("close_pair", (4,))]


def test_the_openapi_document_describes_the_pair_endpoints_from_the_same_table():
    doc = openapi_schema()
    assert set(doc["paths"]["/api/pairs"]) == {"get", "post"}
    assert {"/api/pairs/link", "/api/pairs/{id}/close"} <= set(doc["paths"])
    body = doc["components"]["schemas"]["PairRequest"]
    assert body["required"] == ["legs", "side"] and body["additionalProperties"] is False
    assert {"qty", "notional_usd", "on_leg_exit", "max_leg_imbalance_pct", "auto_rebalance"} <= set(body["properties"])
    assert "pairs" in doc["components"]["schemas"]["Status"]["properties"]
