"""``GET /api/history``: the contract the dashboard codes against, its filters, and its refusals."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_api_fakes import NOW, FakeControl, served
from tests.api.test_api_http import app_for

ROW_KEYS = [
    "id", "venue", "symbol", "side", "index", "entry", "exit_price", "qty", "exit_reason",
    "realized_pnl", "fees", "net_pnl", "opened_at", "closed_at", "hold_seconds",
]  # fmt: skip


async def get(control: FakeControl, query: str = "") -> httpx.Response:
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        return await c.get("/api/history" + query)


async def test_history_answers_closed_tranches_with_exact_decimals_and_totals():
    r = await get(FakeControl())
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["tranches", "realized_pnl", "fees", "net_pnl"]
    tp, sl = body["tranches"]
    assert list(tp) == ROW_KEYS
    assert tp == {
        "id": 3,
        "venue": "aster",
        "symbol": "BTCUSDT",
        "side": "LONG",
        "index": 0,
        "entry": "60000.1",
        "exit_price": "60600",
        "qty": "0.002",
        "exit_reason": "TP",
        "realized_pnl": "1.1998",
        "fees": "0.048",
        "net_pnl": "1.1518",
        "opened_at": NOW - 1800,
        "closed_at": NOW - 420,
        "hold_seconds": 1380.0,
    }
    assert (sl["exit_reason"], sl["realized_pnl"], sl["closed_at"]) == ("SL", "-1.2002", NOW - 360)
    assert (body["realized_pnl"], body["fees"], body["net_pnl"]) == ("-0.0004", "0.096", "-0.0964")


@pytest.mark.parametrize(
    ("query", "call"),
    [
        ("", (None, None, None)),
        ("?since=1700000000&symbol=btcusdt&limit=5", (1_700_000_000.0, "BTCUSDT", 5)),
        ("?since=2023-11-14T22:13:20Z", (1_700_000_000.0, None, None)),
        ("?since=&symbol=", (None, None, None)),
    ],
)
async def test_filters_are_parsed_before_the_control_object_is_asked(query, call):
    control = FakeControl()
    assert (await get(control, query)).status_code == 200
    assert control.calls == [("history", call)]


async def test_limit_keeps_the_most_recent():
    body = (await get(FakeControl(), "?limit=1")).json()
    assert [t["id"] for t in body["tranches"]] == [4]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
        ("?symbol=BTC%20USDT", "symbol"),
        ("?until=5", "until"),
        ("?limit=1&limit=2", "limit"),
    ],
)
async def test_bad_input_is_refused_400_naming_the_field_and_nothing_is_asked(query, field):
    control = FakeControl()
    r = await get(control, query)
    assert r.status_code == 400
    assert r.json()["field"] == field and r.json()["error"]
    assert control.calls == []


async def test_the_schema_documents_the_endpoint_and_its_row():
    r = await get(FakeControl())
    async with served(app_for(FakeControl())) as url, httpx.AsyncClient(base_url=url) as c:
        doc = (await c.get("/openapi.json")).json()
    op = doc["paths"]["/api/history"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["since", "symbol", "limit", "venue"]
    assert doc["components"]["schemas"]["ClosedTranche"]["required"] == ROW_KEYS
    assert list(r.json()["tranches"][0]) == ROW_KEYS
