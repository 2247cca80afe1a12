"""Bad requests are refused naming the field, and nothing reaches the control object (so nothing an exchange).

These run the app in-process (httpx's ASGI transport): validation needs no sockets.
"""

from decimal import Decimal

import httpx
import orjson
import pytest

from posmon.api import create_app
from posmon.api.app import MAX_BODY_BYTES
from posmon.domain.orders import Side
from tests.api.test_api_fakes import FakeControl

GOOD = {"symbol": "BTCUSDT", "size_usd": 100, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}


def client(control: FakeControl) -> httpx.AsyncClient:
    """Sends raw bodies labelled as JSON, as every client must (the content type itself is tested elsewhere)."""
    app = create_app(control, metrics_render=None, token=None)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8787",
        headers={"Content-Type": "application/json"},
    )


def with_(**changes):
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not ...}


BAD_ORDERS = [
    # (body, status, field)
    (with_(symbol=...), 422, "symbol"),
    (with_(symbol=""), 422, "symbol"),
    (with_(symbol="BTC USDT"), 422, "symbol"),
    (with_(symbol="BTC/USDT"), 422, "symbol"),
    (with_(symbol=7), 422, "symbol"),
    (with_(symbol="X" * 41), 422, "symbol"),
    (with_(size_usd=...), 422, "size_usd"),
    (with_(size_usd=0), 422, "size_usd"),
    (with_(size_usd=-5), 422, "size_usd"),
    (with_(size_usd="lots"), 422, "size_usd"),
    (with_(size_usd="NaN"), 422, "size_usd"),
    (with_(size_usd="Infinity"), 422, "size_usd"),
    (with_(size_usd="1e40"), 422, "size_usd"),
    (with_(size_usd=True), 422, "size_usd"),
    (with_(size_usd=None), 422, "size_usd"),
    (with_(leverage=...), 422, "leverage"),
    (with_(leverage=0), 422, "leverage"),
    (with_(leverage=126), 422, "leverage"),
    (with_(leverage=2.5), 422, "leverage"),
    (with_(leverage="5"), 422, "leverage"),
    (with_(leverage=True), 422, "leverage"),
    (with_(sl_percent=...), 422, "sl_percent"),
    (with_(sl_percent=0), 422, "sl_percent"),
    (with_(sl_percent=100), 422, "sl_percent"),
    (with_(sl_percent=-1), 422, "sl_percent"),
    (with_(rr_ratio=...), 422, "rr_ratio"),
    (with_(rr_ratio=[1]), 422, "rr_ratio"),
    (with_(rr_ratio=[1, 2, 3]), 422, "rr_ratio"),
    (with_(rr_ratio=[0, 2]), 422, "rr_ratio"),
    (with_(rr_ratio=[1, -2]), 422, "rr_ratio"),
    (with_(rr_ratio="1:2"), 422, "rr_ratio"),
    (with_(rr_ratio={"risk": 1, "reward": 2}), 422, "rr_ratio"),
    (with_(side="LONG"), 422, "side"),
    (with_(extra=1), 422, "extra"),
]


@pytest.mark.parametrize("path", ["/api/orders/long", "/api/orders/short"])
@pytest.mark.parametrize(("body", "status", "field"), BAD_ORDERS)
async def test_a_bad_order_field_is_refused_by_name_and_nothing_is_placed(path, body, status, field):
    control = FakeControl()
    async with client(control) as c:
        r = await c.post(path, content=orjson.dumps(body))
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert field in r.json()["error"]
    assert control.calls == []


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"", 400, "body"),
        (b"{", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b'"symbol"', 400, "body"),
        (b"\xff\xfe{}", 400, "body"),
        (b'{"symbol": "BTCUSDT", "size_usd": NaN, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}', 400, "body"),
        (
            b'{"symbol": "BTCUSDT", "symbol": "ETHUSDT", "size_usd": 1, "leverage": 5, "sl_percent": 3, '
            b'"rr_ratio": [1, 2]}',
            422,
            "symbol",
        ),
        (b"[" * 50_000, 400, "body"),
        (b" " * (MAX_BODY_BYTES + 1), 413, "body"),
    ],
)
async def test_a_malformed_body_is_refused_and_nothing_is_placed(raw, status, field):
    control = FakeControl()
    async with client(control) as c:
        r = await c.post("/api/orders/long", content=raw)
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert control.calls == []


async def test_numbers_are_parsed_exactly_never_through_binary_floats():
    control = FakeControl()
    raw = b'{"symbol": "btcusdt", "size_usd": 100.1, "leverage": 5, "sl_percent": "0.3", "rr_ratio": [1.5, 4.5]}'
    async with client(control) as c:
        r = await c.post("/api/orders/short", content=raw)
    assert r.status_code == 200, r.text
    [(name, (request,))] = control.calls
    assert name == "open_position"
    assert (request.symbol, request.side) == ("BTCUSDT", Side.SHORT)
    assert request.size_usd == Decimal("100.1") and str(request.size_usd) == "100.1"
    assert (request.leverage, request.sl_pct, request.rr_ratio) == (5, Decimal("0.3"), (Decimal("1.5"), Decimal("4.5")))
    assert r.json()["tp_percent"] == "0.9"


async def test_tp_percent_is_answered_without_trailing_zeros():
    async with client(FakeControl()) as c:
        r = await c.post("/api/orders/long", json={**GOOD, "sl_percent": 3, "rr_ratio": [3, 1]})
    assert (r.json()["sl_percent"], r.json()["tp_percent"]) == ("3", "1")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/monitor/stop/BTC%20USDT", b"", 422, "symbol"),
        ("POST", "/api/monitor/stop/BTCUSDT", b'{"force": true}', 422, "force"),
        ("POST", "/api/monitor/resume/BTC$", b"", 422, "symbol"),
        ("POST", "/api/positions/BTCUSDT/close", b'{"side": "UP"}', 422, "side"),
        ("POST", "/api/positions/BTCUSDT/close?side=UP", b"", 422, "side"),
        ("POST", "/api/positions/BTCUSDT/close?side=LONG", b'{"side": "SHORT"}', 422, "side"),
        ("POST", "/api/positions/BTCUSDT/close", b'{"tranche": 1}', 422, "tranche"),
        ("POST", "/api/positions/BTCUSDT/close", b"{oops", 400, "body"),
        ("POST", "/api/tranches/abc/close", b"", 422, "id"),
        ("POST", "/api/tranches/-1/close", b"", 422, "id"),
        ("POST", "/api/tranches/1/close", b'{"symbol": ""}', 422, "symbol"),
        ("POST", "/api/tranches/1/close", b'{"side": "LONG"}', 422, "side"),
    ],
)
async def test_bad_close_and_monitor_requests_are_refused_by_name(method, path, body, status, field):
    control = FakeControl()
    async with client(control) as c:
        r = await c.request(method, path, content=body)
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert control.calls == []


async def test_unknown_paths_and_wrong_methods_answer_json():
    control = FakeControl()
    async with client(control) as c:
        missing = await c.get("/api/nothing")
        wrong = await c.get("/api/orders/long")
    assert missing.status_code == 404 and missing.json()["field"] is None
    assert wrong.status_code == 405 and "error" in wrong.json()
    assert control.calls == []
