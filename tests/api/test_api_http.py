"""Every endpoint over a real loopback socket (hypercorn's trio worker, port 0) against a recording fake control."""

import logging
from decimal import Decimal

import httpx
import pytest
import trio

from posmon.api import ApiSettings, create_app, serve_api
from posmon.config import ConfigError
from posmon.domain.orders import Side
from posmon.plan_fields import PLAN_FIELD_NAMES
from posmon.readiness import Readiness
from tests.api.test_api_fakes import NOW, TOKEN, FakeControl, served

ORDER = {"symbol": "DOGE", "size_usd": 5, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}
ENDPOINTS = [
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/api/monitor/status"),
    ("POST", "/api/orders/long"),
    ("POST", "/api/orders/short"),
    ("POST", "/api/monitor/stop/BTCUSDT"),
    ("POST", "/api/monitor/resume/BTCUSDT"),
    ("POST", "/api/positions/BTCUSDT/close"),
    ("POST", "/api/tranches/1/close"),
    ("GET", "/api/history"),
]


def render_metrics() -> tuple[bytes, str]:
    return b"# TYPE posmon_open_tranches gauge\nposmon_open_tranches 2.0\n", "text/plain; version=0.0.4"


def app_for(control: FakeControl, token: str | None = None, **kw):
    return create_app(control, metrics_render=kw.pop("metrics_render", render_metrics), token=token, **kw)


async def test_status_lists_streams_and_every_tranche_with_exact_decimals():
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/api/monitor/status")
    assert r.status_code == 200
    s = r.json()
    assert (s["running"], s["venue"], s["unmonitored"], s["extra"]) == (True, "aster", ["ETHUSDT"], {"note": "1.5"})
    assert s["streams"] == [
        {"name": "price", "up": True, "last_frame_age_seconds": 0.4},
        {"name": "user", "up": False, "last_frame_age_seconds": None},
    ]
    first, second = s["tranches"]
    assert first == {
        "id": 1,
        "venue": "aster",
        "symbol": "BTCUSDT",
        "side": "LONG",
        "index": 0,
        "entry": "60000.1",
        "qty": "0.002",
        "tp": "63600.106",
        "sl": "58200.097",
        "opened_at": NOW - 120,
        "max_hold_seconds": 3600,
        "timeout_at": NOW + 3480,
        "remaining_seconds": 3480.0,
        "mark": "60100",
        "unrealized_pnl": "0.1998",
        "closing": None,
        "exits": "exchange",
        "exits_live": True,
        "exit_orders": {"tp": "LIVE", "sl": "LIVE"},
        "plan": None,  # one TP, one SL
        "instrument": None,  # the fake names no instrument (a daemon: "BTC/USDT:USDT", test_api_instruments)
    }
    assert second["side"] == "SHORT"


@pytest.mark.parametrize(
    ("path", "side", "tp", "sl"),
    [
        ("/api/orders/long", Side.LONG, "106", "97"),
        ("/api/orders/short", Side.SHORT, "94", "103"),
    ],
)
async def test_open_answers_the_entry_and_exits_at_sl_3_and_tp_6_percent(path, side, tp, sl):
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post(path, json=ORDER)
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["symbol"], a["side"], a["status"], a["entry_price"], a["qty"], a["tranche_id"]) == (
        "DOGE",
        side.value,
        "FILLED",
        "100",
        "0.5",
        7,
    )
    assert Decimal(a["tp"]) == Decimal(tp) and Decimal(a["sl"]) == Decimal(sl)
    assert (a["sl_percent"], a["tp_percent"]) == ("3", "6")
    [(name, (request,))] = control.calls
    assert name == "open_position" and request.side is side and request.tp_pct == 6


async def test_an_entry_not_filled_yet_answers_202_without_exits():
    control = FakeControl(fill=False)
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/api/orders/long", json=ORDER)
    assert r.status_code == 202
    assert (r.json()["status"], r.json()["entry_price"], r.json()["tp"]) == ("PENDING", None, None)


@pytest.mark.parametrize("status", [404, 409, 422, 503])
async def test_a_refusal_by_the_daemon_answers_its_status_and_field(status):
    control = FakeControl()
    control.refuse("DOGE is not listed on aster", field="symbol", status=status)
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/api/orders/long", json=ORDER)
    assert r.status_code == status
    assert r.json() == {"error": "DOGE is not listed on aster", "field": "symbol"}


async def test_a_crash_in_the_control_answers_500_and_the_api_keeps_serving(caplog):
    control = FakeControl()

    async def broken(_symbol):
        raise RuntimeError("boom")

    control.stop_monitoring = broken  # type: ignore[method-assign]
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/api/monitor/stop/BTCUSDT", json={})
        after = await c.get("/api/monitor/status")
    assert r.status_code == 500 and r.json() == {"error": "internal error; see the daemon's log", "field": None}
    assert after.status_code == 200
    assert "boom" in caplog.text


@pytest.mark.parametrize("symbol", ["BTCUSDT", "7"])
async def test_stop_and_resume_monitoring_by_symbol_or_market_id(symbol):
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        stopped = await c.post(f"/api/monitor/stop/{symbol.lower()}", json={})
        resumed = await c.post(f"/api/monitor/resume/{symbol}", json={})
    assert stopped.status_code == 200 and resumed.status_code == 200
    assert stopped.json()["monitoring"] is False and resumed.json() == {"symbol": symbol, "monitoring": True}
    if symbol == "BTCUSDT":
        assert stopped.json()["tranche_ids"] == [1, 2]
    assert control.calls == [("stop_monitoring", (symbol,)), ("resume_monitoring", (symbol,))]


async def test_close_a_whole_position_or_one_side():
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        everything = await c.post("/api/positions/BTCUSDT/close", json={})
        short = await c.post("/api/positions/BTCUSDT/close", json={"side": "short"})
        long_ = await c.post("/api/positions/BTCUSDT/close?side=LONG", json={})
    assert everything.status_code == 200
    assert everything.json() == {
        "closing": [
            {"symbol": "BTCUSDT", "side": "LONG", "tranche_ids": [1]},
            {"symbol": "BTCUSDT", "side": "SHORT", "tranche_ids": [2]},
        ]
    }
    assert short.json() == {"closing": [{"symbol": "BTCUSDT", "side": "SHORT", "tranche_ids": [2]}]}
    assert long_.json()["closing"][0]["side"] == "LONG"
    assert control.calls == [
        ("close", ("BTCUSDT", None, None)),
        ("close", ("BTCUSDT", Side.SHORT, None)),
        ("close", ("BTCUSDT", Side.LONG, None)),
    ]


async def test_closing_a_symbol_with_nothing_open_answers_404():
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/api/positions/ETHUSDT/close", json={})
    assert r.status_code == 404 and r.json()["field"] == "symbol"


async def test_close_one_tranche_found_in_the_status_or_named_with_its_symbol():
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        looked_up = await c.post("/api/tranches/2/close", json={})
        named = await c.post("/api/tranches/1/close", json={"symbol": "BTCUSDT"})
        unknown = await c.post("/api/tranches/99/close", json={})
    assert looked_up.json() == {"closing": [{"symbol": "BTCUSDT", "side": "SHORT", "tranche_ids": [2]}]}
    assert named.json() == {"closing": [{"symbol": "BTCUSDT", "side": "LONG", "tranche_ids": [1]}]}
    assert unknown.status_code == 404 and unknown.json()["field"] == "id"
    assert control.mutations() == [("close", ("BTCUSDT", Side.SHORT, 2)), ("close", ("BTCUSDT", None, 1))]


async def test_health_is_200_while_running_and_503_when_stopped():
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        up = await c.get("/health")
        control.running = False
        down = await c.get("/health")
    assert (up.status_code, up.json()) == (200, {"status": "ok", "state": "ready"})
    assert (down.status_code, down.json()) == (503, {"status": "stopped", "state": "ready"})


async def test_health_answers_503_when_the_daemon_does_not_answer_in_time(autojump_clock):
    control = FakeControl(status_hangs=True)
    app = app_for(control, health_timeout_seconds=5.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        start = trio.current_time()
        r = await c.get("/health")
    assert (r.status_code, r.json()) == (503, {"status": "unresponsive", "state": "ready"})
    assert trio.current_time() - start == pytest.approx(5.0)


async def test_ready_is_503_while_starting_then_200_and_health_reports_the_state():
    control = FakeControl()
    readiness = Readiness()
    async with served(app_for(control, readiness=readiness)) as url, httpx.AsyncClient(base_url=url) as c:
        starting, alive = await c.get("/ready"), await c.get("/health")
        readiness.set_ready("watching aster")
        ready, health = await c.get("/ready"), await c.get("/health")
        control.running = False
        stopped = await c.get("/ready")
    assert (starting.status_code, starting.json()) == (503, {"status": "starting", "state": "starting"})
    assert (alive.status_code, alive.json()) == (200, {"status": "ok", "state": "starting"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "state": "ready"})
    assert (health.status_code, health.json()) == (200, {"status": "ok", "state": "ready"})
    assert (stopped.status_code, stopped.json()) == (503, {"status": "stopped", "state": "ready"})


async def test_ready_answers_503_when_a_ready_daemon_wedges(autojump_clock):
    readiness = Readiness()
    readiness.set_ready("watching aster")
    app = app_for(FakeControl(status_hangs=True), health_timeout_seconds=5.0, readiness=readiness)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        r = await c.get("/ready")
    assert (r.status_code, r.json()) == (503, {"status": "unresponsive", "state": "ready"})


async def test_health_answers_503_when_status_fails():
    control = FakeControl()
    control.refuse("actors are restarting", status=503)
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/health")
    assert (r.status_code, r.json()) == (503, {"status": "error", "state": "ready"})


async def test_metrics_are_served_in_prometheus_text_or_404_when_not_enabled():
    async with served(app_for(FakeControl())) as url, httpx.AsyncClient(base_url=url) as c:
        on = await c.get("/metrics")
    async with served(app_for(FakeControl(), metrics_render=None)) as url, httpx.AsyncClient(base_url=url) as c:
        off = await c.get("/metrics")
    assert on.status_code == 200 and on.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "posmon_open_tranches 2.0" in on.text
    assert off.status_code == 404 and "error" in off.json()


async def test_openapi_lists_every_endpoint_with_its_request_body_fields():
    async with served(app_for(FakeControl())) as url, httpx.AsyncClient(base_url=url) as c:
        doc = (await c.get("/openapi.json")).json()
    paths = doc["paths"]
    for method, path in [*ENDPOINTS, ("GET", "/health"), ("GET", "/ready")]:
        template = path.replace("BTCUSDT", "{symbol}").replace("/1/", "/{id}/")
        assert method.lower() in paths[template], template
    order = doc["components"]["schemas"]["OrderRequest"]
    required = ["leverage", "rr_ratio", "size_usd", "sl_percent", "symbol"]
    # the exit plan's fields and the venue (required only by a daemon running several) are optional
    assert sorted(order["properties"]) == sorted([*required, *PLAN_FIELD_NAMES, "venue"])
    assert sorted(order["required"]) == required and order["additionalProperties"] is False
    assert paths["/api/orders/long"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OrderRequest"
    )
    assert list(doc["components"]["schemas"]["PositionClose"]["properties"]) == ["side", "venue"]
    assert list(doc["components"]["schemas"]["TrancheClose"]["properties"]) == ["symbol", "venue"]


# ---- the bearer token (an app with a token behaves as it does when bound off loopback) ---------------------------


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_but_health_needs_the_token(method, path):
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url, httpx.AsyncClient(base_url=url) as c:
        missing = await c.request(method, path, json=ORDER if "orders" in path else None)
        wrong = await c.request(method, path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
        basic = await c.request(method, path, headers={"Authorization": f"Basic {TOKEN}"})
    for r in (missing, wrong, basic):
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["field"] == "Authorization" and TOKEN not in r.text
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert control.calls == []


async def test_the_right_token_is_accepted_and_health_needs_none():
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url, httpx.AsyncClient(base_url=url) as c:
        status = await c.get("/api/monitor/status", headers={"Authorization": f"Bearer {TOKEN}"})
        opened = await c.post("/api/orders/long", json=ORDER, headers={"authorization": f"bearer {TOKEN}"})
        health = await c.get("/health")
        ready = await c.get("/ready")
    assert (status.status_code, opened.status_code, health.status_code, ready.status_code) == (200, 200, 200, 200)
    assert health.json() == ready.json() == {"status": "ok", "state": "ready"}


async def test_a_bad_body_without_the_token_is_refused_for_the_token_first():
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/api/orders/long", content=b"{not json")
    assert r.status_code == 401 and control.calls == []


async def test_the_token_never_appears_in_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url, httpx.AsyncClient(base_url=url) as c:
        await c.get("/api/monitor/status", headers={"Authorization": f"Bearer {TOKEN}"})
        await c.post("/api/orders/long", json=ORDER, headers={"Authorization": f"Bearer {TOKEN}"})
        await c.get("/api/monitor/status", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert "api POST /api/orders/long -> 200" in caplog.text
    assert TOKEN not in caplog.text


# ---- serving ---------------------------------------------------------------------------------------------------


async def test_a_port_in_use_stops_start_up_naming_api_port():
    async with served(app_for(FakeControl())) as url:
        port = int(url.rsplit(":", 1)[1])
        async with trio.open_nursery() as nursery:
            with pytest.raises(ConfigError, match=r"api\.port: cannot listen on 127\.0\.0\.1:"):
                await nursery.start(serve_api, app_for(FakeControl()), ApiSettings(port=port))


async def test_a_disabled_api_reports_no_address_and_serves_nothing():
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_api, app_for(FakeControl()), ApiSettings(enabled=False))
    assert url is None
