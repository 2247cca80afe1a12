"""``InstanceControl`` and ``InstanceReadiness`` (``posmon.cluster.api``) over stand-in account daemons, through the
real ``create_app``; and ``Metrics.forget``, which drops an account's gauges when its lease goes elsewhere. The
real processes: ``test_instance_api.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from posmon.api.app import create_app
from posmon.cluster.api import InstanceControl, InstanceReadiness
from posmon.control import AccountView, StatusReport
from posmon.metrics import Metrics, render
from posmon.readiness import Readiness


@dataclass
class FakeAccountControl:
    """One account daemon's control: its status, and the commands it was sent."""

    name: str
    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def status(self) -> StatusReport:
        view = AccountView(self.name, "ready", f"watching {self.name}", "exchange", [], None, ["ETHUSDT"], 0)
        return StatusReport(True, self.name, 0.0, [], [], ["ETHUSDT"], accounts=[view])

    async def resume_monitoring(self, symbol: str, *, venue: str | None = None) -> None:
        self.calls.append(("resume", symbol))


@dataclass
class FakeDaemon:
    control: FakeAccountControl
    readiness: Readiness = field(default_factory=Readiness)


def app_of(control: InstanceControl) -> httpx.AsyncClient:
    app = create_app(
        control,  # type: ignore[arg-type]
        metrics_render=None,
        token=None,
        readiness=InstanceReadiness(control),
        describe=control.describe,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8787")


async def test_a_standby_is_ready_as_a_standby_and_refuses_commands_naming_where_to_go() -> None:
    control = InstanceControl("c", ["main", "lite"])
    async with app_of(control) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "state": "ready", "instance": "c", "role": "standby", "accounts": {}}
        status = (await client.get("/api/monitor/status")).json()
        assert status["accounts"] == [] and status["extra"]["role"] == "standby"
        refused = await client.post("/api/monitor/resume/BTCUSDT?venue=main", json={})
        assert refused.status_code == 409 and "posmon cluster status" in refused.json()["error"]
        unknown = await client.post("/api/monitor/resume/BTCUSDT?venue=other", json={})
        assert unknown.status_code == 422 and unknown.json()["field"] == "venue"


async def test_held_accounts_starting_then_ready_and_commands_routed_by_account() -> None:
    control = InstanceControl("a", ["main", "lite"])
    main, lite = FakeDaemon(FakeAccountControl("main")), FakeDaemon(FakeAccountControl("lite"))
    control.starting("main")
    control.starting("lite")
    async with app_of(control) as client:
        starting = await client.get("/ready")
        assert starting.status_code == 503
        assert starting.json()["accounts"] == {"lite": "starting", "main": "starting"}
        assert (await client.get("/health")).status_code == 200
        status = (await client.get("/api/monitor/status")).json()
        assert status["extra"]["accounts"]["main"] == {"status": 503, "error": "account starting", "retry_after": 5.0}
        busy = await client.post("/api/monitor/resume/BTCUSDT?venue=main", json={})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"

        control.started("main", main)  # type: ignore[arg-type]
        control.started("lite", lite)  # type: ignore[arg-type]
        main.readiness.set_ready("watching main")
        assert (await client.get("/ready")).status_code == 503  # lite still starting
        lite.readiness.set_ready("watching lite")
        assert (await client.get("/ready")).json()["accounts"] == {"lite": "ready", "main": "ready"}

        status = (await client.get("/api/monitor/status")).json()
        assert [a["venue"] for a in status["accounts"]] == ["lite", "main"]
        assert status["unmonitored"] == ["lite:ETHUSDT", "main:ETHUSDT"]
        assert status["extra"]["accounts"]["main"]["venue"] == "main"

        assert (await client.post("/api/monitor/resume/BTCUSDT?venue=lite", json={})).status_code == 200
        assert lite.control.calls == [("resume", "BTCUSDT")] and main.control.calls == []
        several = await client.post("/api/monitor/resume/BTCUSDT", json={})
        assert several.status_code == 422 and "several accounts" in several.json()["error"]
        pair = await client.post(
            "/api/pairs/link",
            json={"legs": [{"venue": "main", "symbol": "BTCUSDT"}, {"venue": "lite", "symbol": "BTC"}]},
        )
        assert pair.status_code == 409

        control.released("lite")  # handed over: not ready-blocking, and refused as elsewhere
        assert (await client.get("/ready")).json()["accounts"] == {"main": "ready"}
        gone = await client.post("/api/monitor/resume/BTC?venue=lite", json={})
        assert gone.status_code == 409
        assert (await client.post("/api/monitor/resume/BTCUSDT", json={})).status_code == 200  # the one held
        assert main.control.calls == [("resume", "BTCUSDT")]

        control.starting("lite")  # taken again: starting afresh, /ready goes back to 503 until it is up
        assert (await client.get("/ready")).status_code == 503


async def test_forget_drops_an_account_s_gauges_and_frame_age_but_keeps_counters() -> None:
    metrics = Metrics(strict=True)
    for venue in ("main", "lite"):
        metrics.set("price_stream_up", 0, venue=venue)
        metrics.set("price_last_frame", trio.current_time(), venue=venue)
        metrics.inc("orders", venue=venue, type="LIMIT", result="placed")
    metrics.forget("main")
    text = render(metrics)[0].decode()
    assert 'posmon_price_stream_up{venue="lite"} 0.0' in text
    assert 'posmon_price_stream_up{venue="main"}' not in text
    assert 'posmon_price_last_frame_age_seconds{venue="main"}' not in text
    assert 'posmon_price_last_frame_age_seconds{venue="lite"}' in text
    assert 'posmon_orders_total{result="placed",type="LIMIT",venue="main"} 1.0' in text
    metrics.set("price_stream_up", 1, venue="main")  # taken again: reported anew
    assert 'posmon_price_stream_up{venue="main"} 1.0' in render(metrics)[0].decode()
