"""Issue 11 at the operator API: what a web page, a careless client or a flood of commands can no longer do.

11.2 a browser page elsewhere cannot trade through the loopback API (Content-Type, Host, Origin);
11.3 a TP that could never be placed is refused before anything is sent;
11.1 concurrent identical commands are coalesced and the commands in flight are bounded;
11.10 a client vanishing mid-body, a body that never comes, a trailing slash, the OpenAPI document.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
import trio

from posmon.actors.messages import CloseTranches, ResumeMonitoring, StopMonitoring
from posmon.api import ApiSettings, create_app
from posmon.api.app import DEFAULT_BODY_TIMEOUT_SECONDS
from posmon.api.client import ApiClient
from posmon.api.server import hypercorn_config
from posmon.control import ControlError, DaemonControl, OpenRequest, check_exits
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import Risk
from posmon.exchange.venue import VenueTraits
from tests.api.test_api_fakes import TOKEN, FakeControl, served
from tests.harness import make_settings, running, settle

ORDER = {"symbol": "BTCUSDT", "size_usd": 5, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}


def app_for(control: FakeControl, **kw: Any):
    return create_app(control, metrics_render=None, token=kw.pop("token", None), **kw)


def in_process(control: FakeControl, host: str = "127.0.0.1:8787", **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(control, **kw)), base_url=f"http://{host}")


# ---- 11.2: a web page elsewhere cannot trade through the loopback API ------------------------------------------


async def test_the_issue_repro_a_cross_site_text_plain_short_from_a_rebound_host_is_refused_and_nothing_sent():
    control = FakeControl()
    async with served(app_for(control)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post(
            "/api/orders/short",
            content=json.dumps(ORDER).encode(),
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example", "Host": "evil.example"},
        )
    assert r.status_code == 403 and r.json()["field"] == "Host"
    assert control.calls == []


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "json",
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/api/orders/short",
        "/api/monitor/stop/BTCUSDT",
        "/api/monitor/resume/BTCUSDT",
        "/api/positions/BTCUSDT/close",
        "/api/tranches/1/close",
    ],
)
async def test_every_state_changing_route_demands_application_json(path, content_type):
    control = FakeControl()
    body = json.dumps(ORDER if "orders" in path else {}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    async with in_process(control) as c:
        r = await c.post(path, content=body, headers=headers)
    assert (r.status_code, r.json()["field"]) == (415, "Content-Type")
    assert control.calls == []


async def test_json_with_a_charset_parameter_is_json():
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.post(
            "/api/monitor/resume/BTCUSDT", content=b"{}", headers={"Content-Type": "Application/JSON; charset=utf-8"}
        )
    assert r.status_code == 200 and control.calls == [("resume_monitoring", ("BTCUSDT",))]


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8787",
        "127.0.0.1.evil.example",
        "localhost.evil",
        "10.1.2.3:8787",
        "",
        "[::1",
        "user@127.0.0.1",
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/monitor/status"), ("POST", "/api/orders/long"), ("GET", "/health")]
)
async def test_a_host_that_is_not_this_api_is_refused_on_every_route(host, method, path):
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, but the browser still sends it as Host."""
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.request(method, path, json=ORDER if method == "POST" else None, headers={"Host": host})
    assert (r.status_code, r.json()["field"]) == (403, "Host")
    assert control.calls == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8787", "localhost:8787", "LOCALHOST", "[::1]:8787", "127.0.0.2:9000", "localhost:9000"]
)
async def test_loopback_names_on_any_port_are_this_api(host):
    """The port is not compared: an SSH tunnel (``-L 9000:127.0.0.1:8787``) legitimately changes it."""
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.post("/api/orders/long", json=ORDER, headers={"Host": host})
    assert r.status_code == 200, r.text


async def test_the_address_a_connection_arrived_on_and_allowed_hosts_are_accepted():
    control = FakeControl()
    # ASGI's ``server`` is the address the client connected to: here the transport's host, "10.0.0.5".
    async with in_process(control, host="10.0.0.5:8787") as c:
        own = await c.get("/api/monitor/status")
        other = await c.get("/api/monitor/status", headers={"Host": "10.0.0.6:8787"})
    async with in_process(control, allowed_hosts=["Posmon.Internal"]) as c:
        named = await c.get("/api/monitor/status", headers={"Host": "posmon.internal:8787"})
        unnamed = await c.get("/api/monitor/status", headers={"Host": "other.internal:8787"})
    assert (own.status_code, other.status_code, named.status_code, unnamed.status_code) == (200, 403, 200, 403)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://evil.example",
        "null",
        "http://localhost:3000",
        "http://127.0.0.1:8788",
        "file://",
        "http://127.0.0.1:8787/path",
        "garbage",
    ],
)
async def test_a_cross_origin_request_is_refused(origin):
    """Another page on this very machine (``localhost:3000``) is another origin too."""
    control = FakeControl()
    async with in_process(control) as c:
        post = await c.post("/api/orders/long", json=ORDER, headers={"Origin": origin})
        get = await c.get("/api/monitor/status", headers={"Origin": origin})
    assert (post.status_code, post.json()["field"]) == (403, "Origin")
    assert get.status_code == 403
    assert control.calls == []


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8787", "http://127.0.0.1:8787"),
        ("localhost:8787", "http://localhost:8787"),
        ("localhost", "http://localhost"),
        ("localhost", "http://localhost:80"),
        ("localhost:9000", "http://LOCALHOST:9000"),
        ("localhost:443", "https://localhost"),
    ],
)
async def test_a_same_origin_page_such_as_a_dashboard_keeps_working(host, origin):
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.post(
            "/api/orders/long", json=ORDER, headers={"Host": host, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
        )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_browser_saying_the_request_is_cross_site_is_refused_even_without_origin(site):
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.post("/api/orders/long", json=ORDER, headers={"Sec-Fetch-Site": site})
    assert (r.status_code, r.json()["field"]) == (403, "Sec-Fetch-Site") and control.calls == []


async def test_the_cli_client_sends_json_on_every_command_and_keeps_working():
    control = FakeControl()
    async with served(app_for(control, token=TOKEN)) as url:

        def commands() -> list[dict[str, Any]]:
            with ApiClient(url, TOKEN) as api:
                return [
                    api.stop("BTCUSDT"),
                    api.resume("BTCUSDT"),
                    api.close_position("BTCUSDT"),
                    api.close_tranche(1, "BTCUSDT"),
                    api.open("long", "BTCUSDT", D(5), 5, D(3), (D(1), D(2))),
                    api.status(),
                ]

        answers = await trio.to_thread.run_sync(commands)
    assert answers[1] == {"symbol": "BTCUSDT", "monitoring": True}
    assert [name for name, _ in control.calls] == [
        "stop_monitoring",
        "resume_monitoring",
        "close",
        "close",
        "open_position",
        "status",
    ]


# ---- 11.3: a TP that could never be placed is refused before anything is sent ------------------------------------


@pytest.mark.parametrize(
    ("path", "changes", "fld"),
    [
        ("/api/orders/short", {"sl_percent": 60, "rr_ratio": [1, 2]}, "rr_ratio"),  # TP 120 % below: negative
        ("/api/orders/short", {"sl_percent": 50, "rr_ratio": [1, 2]}, "rr_ratio"),  # TP exactly at zero
        ("/api/orders/long", {"rr_ratio": ["1e-18", "1e18"]}, "rr_ratio"),  # TP 3e36 % away
        ("/api/orders/short", {"rr_ratio": ["1e-18", "1e18"]}, "rr_ratio"),
        ("/api/orders/long", {"rr_ratio": [1, 101]}, "rr_ratio"),  # reward/risk above 100
        ("/api/orders/long", {"rr_ratio": [1000, 1]}, "rr_ratio"),  # below 1/100
        ("/api/orders/long", {"rr_ratio": [1, 1001]}, "rr_ratio"),
        ("/api/orders/long", {"sl_percent": "99.9999999999999999999"}, None),  # fine: under 100 (LONG SL above zero)
        ("/api/orders/long", {"sl_percent": "100"}, "sl_percent"),
    ],
)
async def test_an_unplaceable_tp_is_refused_naming_the_field_and_nothing_is_sent(path, changes, fld):
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.post(path, json={**ORDER, **changes})
    if fld is None:
        assert r.status_code == 200, r.text
        return
    assert (r.status_code, r.json()["field"]) == (422, fld), r.text
    assert control.calls == []


async def test_a_long_with_a_wide_tp_is_still_accepted():
    """Only the SHORT's TP runs out of room at 100 %: a LONG's TP 120 % above the entry is placeable."""
    control = FakeControl()
    async with in_process(control) as c:
        r = await c.post("/api/orders/long", json={**ORDER, "sl_percent": 60, "rr_ratio": [1, 2]})
    assert r.status_code == 200 and r.json()["tp_percent"] == "120"


def open_request(side: Side = Side.LONG, **kw: Any) -> OpenRequest:
    fields = {
        "symbol": "BTCUSDT",
        "side": side,
        "size_usd": D(900),
        "leverage": 5,
        "sl_pct": D(3),
        "rr_ratio": (D(1), D(2)),
    } | kw
    return OpenRequest(**fields)


@pytest.mark.parametrize(
    ("side", "sl", "rr", "fld"),
    [
        (Side.SHORT, D(60), (D(1), D(2)), "rr_ratio"),
        (Side.SHORT, D(3), (D("1e-18"), D("1e18")), "rr_ratio"),
        (Side.LONG, D(100), (D(1), D(2)), "sl_percent"),
    ],
)
async def test_the_daemon_refuses_an_unplaceable_tp_or_sl_before_sending_the_entry(
    tmp_path, autojump_clock, side, sl, rr, fld
):
    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")
        sent = h.exchange.orders_sent
        with pytest.raises(ControlError) as refused:
            await h.daemon.control.open_position(open_request(side, sl_pct=sl, rr_ratio=rr))
        await settle()
        assert (refused.value.field, refused.value.status) == (fld, 422)
        assert h.exchange.orders_sent == sent
        assert h.store.open_tranches("sim") == []


@dataclass(frozen=True, slots=True)
class PricedRules(SymbolRules):
    """Rules with the venue's price filter (Aster's PRICE_FILTER minPrice/maxPrice)."""

    min_price: D = D(0)
    max_price: D = D(0)


def test_exits_outside_the_venues_price_filter_are_refused_when_the_rules_carry_it():
    rules = PricedRules(
        "BTCUSDT", tick_size=D("0.1"), step_size=D("0.001"), min_price=D("556.8"), max_price=D("100000")
    )
    risk = Risk(tp_pct=D(200), sl_pct=D(3))
    with pytest.raises(ControlError) as tp_high:
        check_exits(Side.LONG, D(45000), risk, rules)  # TP 135,000 > 100,000
    with pytest.raises(ControlError) as sl_low:
        check_exits(Side.LONG, D(600), Risk(tp_pct=D(6), sl_pct=D(10)), rules)  # SL 540 < 556.8
    assert (tp_high.value.field, sl_low.value.field) == ("rr_ratio", "sl_percent")
    assert "100000" in str(tp_high.value)
    check_exits(Side.LONG, D(45000), Risk(tp_pct=D(100), sl_pct=D(3)), rules)  # TP 90,000: fine
    check_exits(Side.SHORT, D(45000), Risk(tp_pct=D("99.9"), sl_pct=D(3)), SymbolRules("X", D("0.1"), D(1)))


# ---- 11.1: operator commands cannot pile up in an actor's inbox ------------------------------------------------


@dataclass
class _Store:
    monitored: dict[str, bool] = field(default_factory=dict)

    def set_monitored(self, venue: str, symbol: str, on: bool) -> None:
        self.monitored[symbol] = on

    def open_tranches(self, venue: str, symbol: str | None = None) -> list[Any]:
        return []


class _Directory:
    """Both sides of each ``held`` symbol have an actor; its inbox is one channel per side nobody reads."""

    def __init__(self) -> None:
        self.unmonitored: set[str] = set()
        self.held = {"BTCUSDT"}
        self.channels = {side: trio.open_memory_channel[Any](1000) for side in Side}

    def __contains__(self, key: tuple[str, Side]) -> bool:
        return key[0] in self.held

    def inbox(self, symbol: str, side: Side) -> trio.MemorySendChannel[Any]:
        return self.channels[side][0]

    def queued(self) -> list[Any]:
        out = []
        for _, recv in self.channels.values():
            while True:
                try:
                    out.append(recv.receive_nowait())
                except trio.WouldBlock:
                    break
        return out


@dataclass
class _Venue:
    name: str = "sim"
    traits: VenueTraits = field(default_factory=VenueTraits)


@dataclass
class _Daemon:
    rules: dict[str, SymbolRules] = field(
        default_factory=lambda: {"BTCUSDT": SymbolRules("BTCUSDT", D("0.1"), D("0.001"))}
    )
    venue: _Venue = field(default_factory=_Venue)
    store: _Store = field(default_factory=_Store)
    directory: _Directory = field(default_factory=_Directory)


async def fire(n: int, call: Any) -> list[Any]:
    """``n`` concurrent calls; each outcome (a result or the exception) in a list."""
    outcomes: list[Any] = []

    async def one() -> None:
        try:
            outcomes.append(await call())
        except Exception as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return outcomes


async def test_300_concurrent_resumes_of_a_monitored_symbol_queue_nothing_in_its_actors():
    d = _Daemon()
    control = DaemonControl(d, clock=trio.current_time)
    outcomes = await fire(300, lambda: control.resume_monitoring("BTCUSDT"))
    assert outcomes == [None] * 300
    assert d.directory.queued() == []


async def test_300_concurrent_resumes_of_a_stopped_symbol_send_one_resume_per_side():
    d = _Daemon()
    d.directory.unmonitored.add("BTCUSDT")
    control = DaemonControl(d, clock=trio.current_time)
    outcomes = await fire(300, lambda: control.resume_monitoring("BTCUSDT"))
    assert outcomes == [None] * 300
    assert d.directory.queued() == [ResumeMonitoring(), ResumeMonitoring()]
    assert d.store.monitored == {"BTCUSDT": True} and d.directory.unmonitored == set()


async def answer_stops(d: _Daemon, answers: list[list[int]]) -> list[Any]:
    """Play the actors: answer each ``StopMonitoring`` as it arrives (a stop asks one side after the other)."""
    seen: list[Any] = []
    for ids in answers:
        await trio.testing.wait_all_tasks_blocked()
        messages = d.directory.queued()
        seen += messages
        for m in messages:
            await m.reply_to.send(ids)
    await trio.testing.wait_all_tasks_blocked()
    return seen + d.directory.queued()


async def test_identical_stops_in_flight_share_one_message_per_side_and_one_answer(autojump_clock):
    d = _Daemon()
    control = DaemonControl(d, clock=trio.current_time, reply_timeout=30)
    outcomes: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def stop() -> None:
            outcomes.append(await control.stop_monitoring("BTCUSDT"))

        for _ in range(300):
            nursery.start_soon(stop)
        messages = await answer_stops(d, [[1, 2], [3]])
    assert [type(m) for m in messages] == [StopMonitoring, StopMonitoring]
    assert len(outcomes) == 300 and {tuple(o.tranche_ids) for o in outcomes} == {(1, 2, 3)}


async def test_commands_in_flight_beyond_the_bound_are_refused_busy_with_retry_after(autojump_clock):
    d = _Daemon()
    control = DaemonControl(d, clock=trio.current_time, reply_timeout=30, max_outstanding=2)
    d.rules |= {s: SymbolRules(s, D("0.01"), D("0.001")) for s in ("ETHUSDT", "XRPUSDT")}
    d.directory.held |= {"ETHUSDT", "XRPUSDT"}
    results: list[tuple[str, list[int]]] = []

    async def stop(symbol: str) -> None:
        results.append((symbol, (await control.stop_monitoring(symbol)).tranche_ids))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop, "BTCUSDT")  # each waits for its actors' answers: two commands in flight
        nursery.start_soon(stop, "ETHUSDT")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ControlError) as busy:
            await control.stop_monitoring("XRPUSDT")
        for _ in range(5):
            nursery.start_soon(stop, "BTCUSDT")  # identical to one in flight: joins it, not refused
        messages = await answer_stops(d, [[1], [1]])
    assert len(messages) == 4  # BTCUSDT and ETHUSDT, both sides, once each
    assert (busy.value.status, busy.value.retry_after) == (503, 1.0)
    assert sorted(results) == [("BTCUSDT", [1, 1])] * 6 + [("ETHUSDT", [1, 1])]
    d.directory.held.discard("XRPUSDT")
    assert (await control.stop_monitoring("XRPUSDT")).tranche_ids == []  # the bound was released


async def test_a_busy_daemon_answers_503_with_retry_after_over_http():
    control = FakeControl()
    control.refusal = ControlError("the daemon is busy", status=503, retry_after=1.0)
    async with in_process(control) as c:
        r = await c.post("/api/monitor/resume/BTCUSDT", json={})
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")


async def test_a_close_of_tranches_already_closing_sends_nothing_again(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        sent: list[Any] = []
        real_inbox = h.daemon.directory.inbox

        def counting_inbox(symbol: str, side: Side, **kw: Any) -> Any:
            inbox = real_inbox(symbol, side, **kw)

            class Spy:
                async def send(self, msg: Any) -> None:
                    sent.append(msg)
                    await inbox.send(msg)

            return Spy()

        h.daemon.directory.inbox = counting_inbox  # type: ignore[method-assign]
        await fire(300, lambda: h.daemon.control.close("BTCUSDT"))
        await settle()
        await fire(300, lambda: h.daemon.control.resume_monitoring("BTCUSDT"))
        await settle()
        assert len([m for m in sent if isinstance(m, CloseTranches)]) == 1
        assert [m for m in sent if isinstance(m, ResumeMonitoring)] == []
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None


# ---- 11.10: small ones -------------------------------------------------------------------------------------------


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8787"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8787),
    }


async def test_a_client_that_disconnects_mid_body_is_not_logged_as_an_error_or_a_500(caplog):
    caplog.set_level(logging.DEBUG)
    control = FakeControl()
    app = app_for(control)
    incoming = [{"type": "http.request", "body": b'{"symbol": "BTC', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(http_scope("POST", "/api/orders/long", [(b"content-type", b"application/json")]), receive, send)
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert 500 not in statuses
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text and "500" not in caplog.text
    assert control.calls == []


async def test_a_body_that_never_arrives_is_answered_408_within_the_body_timeout(autojump_clock):
    control = FakeControl()
    app = app_for(control)
    first = [{"type": "http.request", "body": b'{"symbol"', "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if first:
            return first.pop()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    start = trio.current_time()
    with trio.fail_after(75):  # the issue's figure: the old code waited for as long as the client kept quiet
        await app(http_scope("POST", "/api/orders/long", [(b"content-type", b"application/json")]), receive, send)
    assert trio.current_time() - start == pytest.approx(DEFAULT_BODY_TIMEOUT_SECONDS)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [408]
    assert control.calls == []


def test_the_server_drops_a_silent_connection_well_before_75_seconds():
    """Hypercorn applies ``read_timeout`` to every read: headers or a body that never come free the socket."""
    config = hypercorn_config(ApiSettings())
    assert config.read_timeout is not None and config.read_timeout <= 30
    assert config.keep_alive_timeout <= config.read_timeout  # an idle keep-alive is not cut short by it


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/monitor/status/"), ("GET", "/health/"), ("POST", "/api/monitor/resume/BTCUSDT/")]
)
async def test_a_trailing_slash_answers_like_the_path_without_it(method, path):
    control = FakeControl()
    async with in_process(control) as c:
        slashed = await c.request(method, path, json={} if method == "POST" else None)
        plain = await c.request(method, path.rstrip("/"), json={} if method == "POST" else None)
    assert slashed.status_code == plain.status_code == 200
    assert slashed.json() == plain.json()


def patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "pattern"] + [p for v in node.values() for p in patterns(v)]
    if isinstance(node, list):
        return [p for v in node for p in patterns(v)]
    return []


async def test_openapi_declares_bearer_optional_on_loopback_without_a_token_and_required_with_one():
    async with in_process(FakeControl()) as c:
        open_doc = (await c.get("/openapi.json")).json()
    async with in_process(FakeControl(), token=TOKEN) as c:
        locked = (await c.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert {} in open_doc["security"] and {"bearer": []} in open_doc["security"]
    assert locked["security"] == [{"bearer": []}]
    assert "token" in open_doc["info"]["description"] and "loopback" in open_doc["info"]["description"]


async def test_openapi_patterns_are_anchored_and_numeric_strings_carry_ranges():
    async with in_process(FakeControl()) as c:
        doc = (await c.get("/openapi.json")).json()
    found = patterns(doc)
    assert len(found) >= 5
    assert all(p.startswith("^") and p.endswith("$") for p in found), found
    order = doc["components"]["schemas"]["OrderRequest"]["properties"]
    for name in ("size_usd", "sl_percent"):
        number, string = order[name]["oneOf"]
        assert "minimum" in number and ("maximum" in number or "exclusiveMaximum" in number)
        assert string["pattern"].startswith("^")
    assert not re.fullmatch(order["sl_percent"]["oneOf"][1]["pattern"], "100")
    assert not re.fullmatch(order["size_usd"]["oneOf"][1]["pattern"], "0")
