"""The operator API of an instance holding several accounts (issue 17, ``posmon.cluster.api``): real ``posmon run``
processes on one PostgreSQL store, an Aster and a Lighter account on simulators of their own.

One instance holding both: ``/metrics`` carries each account's series under its own label and the lease gauges,
``/health`` and ``/ready`` answer 200 once both accounts are ready, the status lists both and commands go to the
account named. After a second instance takes one account over and a third joins holding nothing: the first answers
409 for the account it gave away, the third is ready as a standby and refuses commands with 409. Every wait is
bounded and waits for a condition.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from decimal import Decimal as D
from typing import Any

import trio

from posmon.domain.orders import Side
from posmon.store.postgres import PgStore
from tests.helpers.shard_cluster import ShardCluster, aster_and_lighter, read_account, serve_all

LEASE, RENEW = 2.0, 0.5
ACCOUNTS = ("aster_one", "lighter_one")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(status, decoded body) of one request to the instance's API (JSON, or the text of /metrics)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method="GET" if body is None else "POST"
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get_content_type()
    except OSError:
        return 0, None  # not listening yet
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


async def call(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return await trio.to_thread.run_sync(_call, port, path, body)


async def until(port: int, path: str, check: Any, within: float = 90.0) -> tuple[int, Any]:
    """The first answer ``check(status, body)`` accepts, asked again every 50 ms (bounded)."""
    with trio.fail_after(within):
        while True:
            status, body = await call(port, path)
            if check(status, body):
                return status, body
            await trio.sleep(0.05)


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name`` carrying ``labels`` (among others), None when absent."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return None


async def test_an_instance_serves_the_accounts_it_holds_and_a_standby_says_so(tmp_path, postgres, nursery):
    venues = aster_and_lighter(*ACCOUNTS)
    urls = await serve_all(venues, nursery)
    url = postgres.new_store_url()
    PgStore.open(url).close()
    ports = {name: _free_port() for name in ("a", "b", "c")}
    cluster = ShardCluster(
        tmp_path, url, venues, urls, names=("a", "b", "c"), lease=LEASE, renew=RENEW, api_ports=ports
    )
    lighter = venues["lighter_one"]
    base = lighter.base_price("BTC")

    async def marks() -> None:  # Lighter's mark stream keeps ticking, as a live venue's does
        while True:
            lighter.set_marks({"BTC": base})
            await trio.sleep(0.25)

    nursery.start_soon(marks)
    a = ports["a"]
    try:
        cluster.start("a")
        await cluster.until_split({"a": 2})
        both = {n: "ready" for n in ACCOUNTS}
        _, ready = await until(a, "/ready", lambda s, b: s == 200 and b["accounts"] == both)
        assert ready["role"] == "active" and ready["status"] == "ok", ready
        status, health = await call(a, "/health")
        assert status == 200 and health["status"] == "ok" and health["instance"] == "a", health

        venues["aster_one"].entry("BTCUSDT", Side.LONG, D("100"))
        venues["aster_one"].entry("BTCUSDT", Side.SHORT, D("100"))
        lighter.entry("BTC", Side.LONG, D("100"))
        with trio.fail_after(90):
            while not all(read_account(url, n).tranches for n in ACCOUNTS):  # noqa: ASYNC110 - other processes
                await trio.sleep(0.05)
        await cluster.until_protected()

        # Each account's gauges under its own label, neither overwriting the other; the lease gauges per account.
        def book_gauges(status: int, text: Any) -> bool:
            return (
                status == 200
                and sample(text, "posmon_open_tranches", venue="aster_one") == 2
                and sample(text, "posmon_open_tranches", venue="lighter_one") == 1
            )

        _, metrics = await until(a, "/metrics", book_gauges)
        for name in ACCOUNTS:
            assert sample(metrics, "posmon_price_stream_up", venue=name) is not None, name  # 0 while reconnecting
            assert sample(metrics, "posmon_lease_owner", account=name) == 1, name
            assert sample(metrics, "posmon_lease_age_seconds", account=name) is not None, name
        assert sample(metrics, "posmon_cluster_live_instances") == 1
        assert sample(metrics, "posmon_build_info") == 1

        status, report = await call(a, "/api/monitor/status")
        assert status == 200, report
        assert [v["venue"] for v in report["accounts"]] == list(ACCOUNTS)
        assert {(t["venue"], t["symbol"]) for t in report["tranches"]} == {
            ("aster_one", "BTCUSDT"),
            ("lighter_one", "BTC"),
        }
        assert report["extra"]["role"] == "active" and report["extra"]["instance"] == "a"
        assert set(report["extra"]["accounts"]) == set(ACCOUNTS)
        assert report["extra"]["accounts"]["lighter_one"]["venue"] == "lighter_one"

        # Commands go to the account named; unnamed with two held, or unknown, is refused naming venue.
        assert await call(a, "/api/monitor/resume/BTCUSDT?venue=aster_one", {}) == (
            200,
            {"symbol": "BTCUSDT", "monitoring": True},
        )
        status, refused = await call(a, "/api/monitor/resume/BTCUSDT", {})
        assert status == 422 and refused["field"] == "venue" and "several accounts" in refused["error"], refused
        status, refused = await call(a, "/api/monitor/resume/BTC?venue=nobody", {})
        assert (status, refused["field"]) == (422, "venue"), refused
        legs = [{"venue": "aster_one", "symbol": "BTCUSDT"}, {"venue": "lighter_one", "symbol": "BTC"}]
        status, refused = await call(a, "/api/pairs/link", {"legs": legs})
        assert status == 409 and "one daemon" in refused["error"], refused

        # b joins: a hands one account over. a then answers 409 for the account it no longer holds.
        cluster.start("b")
        split = await cluster.until_split({"a": 1, "b": 1})
        gone = split["b"][0]
        kept = split["a"][0]
        await until(a, "/ready", lambda s, b: s == 200 and list(b["accounts"]) == [kept])
        status, report = await call(a, "/api/monitor/status")
        assert [v["venue"] for v in report["accounts"]] == [kept], report
        symbol = venues[gone].symbols[0]
        status, refused = await call(a, f"/api/monitor/resume/{symbol}?venue={gone}", {})
        assert status == 409 and "posmon cluster status" in refused["error"], refused
        await until(ports["b"], "/ready", lambda s, b: s == 200 and list(b["accounts"]) == [gone])
        # a no longer reports the streams of the account it gave away (they would alert as down), b does.
        status, metrics = await call(a, "/metrics")
        assert sample(metrics, "posmon_price_stream_up", venue=gone) is None
        assert sample(metrics, "posmon_price_last_frame_age_seconds", venue=gone) is None
        assert sample(metrics, "posmon_price_stream_up", venue=kept) is not None
        assert sample(metrics, "posmon_lease_owner", account=gone) == 0
        await until(
            ports["b"],
            "/metrics",
            lambda s, m: s == 200 and sample(m, "posmon_price_stream_up", venue=gone) is not None,
        )

        # c joins holding nothing: alive and ready as a standby (a health check must not restart it).
        cluster.start("c")
        status, ready = await until(ports["c"], "/ready", lambda s, _b: s != 0)
        assert status == 200 and ready["role"] == "standby" and ready["accounts"] == {}, ready
        status, report = await call(ports["c"], "/api/monitor/status")
        assert status == 200 and report["accounts"] == [] and report["extra"]["role"] == "standby", report
        status, refused = await call(ports["c"], f"/api/monitor/resume/{symbol}?venue={gone}", {})
        assert status == 409 and "stands by" in refused["error"], refused
        status, metrics = await call(ports["c"], "/metrics")
        assert status == 200 and sample(metrics, "posmon_build_info") == 1
        assert sample(metrics, "posmon_lease_owner", account=gone) in (None, 0)
        assert (await trio.to_thread.run_sync(cluster.split)).get("c") is None
        assert not cluster.violations()
    finally:
        with trio.CancelScope(shield=True):
            await cluster.stop_all()
