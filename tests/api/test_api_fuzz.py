"""Property tests of the operator API (issue 11): hostile bodies and headers never reach the control object.

In-process (httpx's ASGI transport) against the recording ``FakeControl``: what reaches ``control.calls`` is
what would reach an exchange. Example counts: 250 generated bodies plus the issue's 2, 200 header sets (452
requests, a few seconds).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from posmon.api import create_app
from posmon.api.validation import MAX_LEVERAGE, MAX_RR, MIN_RR
from posmon.control import OpenRequest
from posmon.domain.orders import Side
from tests.api.test_api_fakes import TOKEN, FakeControl

GOOD = {"symbol": "BTCUSDT", "size_usd": 100, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}
ORDER_PATHS = {"/api/orders/long": Side.LONG, "/api/orders/short": Side.SHORT}
OTHER_PATHS = [
    "/api/monitor/stop/BTCUSDT",
    "/api/monitor/resume/BTCUSDT",
    "/api/positions/BTCUSDT/close",
    "/api/tranches/1/close",
]


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
    )


# Values a careless or hostile client sends: out of range, absurd magnitudes, wrong types, near-misses.
HOSTILE_NUMBERS = st.sampled_from(
    [
        0,
        -1,
        100,
        101,
        125,
        126,
        10**40,
        -(10**40),
        "0",
        "-0",
        "1e999999999",
        "1e-999999999",
        "-1e-18",
        "1e18",
        "1e-18",
        "NaN",
        "Infinity",
        "-Infinity",
        "1_000",
        " 5",
        "5 ",
        "0x10",
        "1e",
        ".5",
        "5.",
        "²",
        "٣",
        "1,5",
        "99.99999999999999999999",
        "100.0",
        "1E+2",
        True,
        False,
        None,
        [],
        {},
        "",
        "3",
        50,
        "60",
        "0.001",
    ]
)
HOSTILE_RR = st.sampled_from([["1e-18", "1e18"], [1, 101], [1000, 1], [1, 100], ["0.01", "1000"], [1, 2], [3, 1]])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
FIELD_VALUES = HOSTILE_NUMBERS | JSON_VALUES | st.decimals(allow_nan=False, allow_infinity=False).map(str)


@st.composite
def order_bodies(draw: st.DrawFn) -> bytes:
    """A good order with some fields replaced, dropped or added, or arbitrary JSON, or arbitrary bytes."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    body: dict[str, Any] = dict(GOOD)
    for name in draw(st.lists(st.sampled_from([*GOOD, "extra"]), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["replace", "replace", "drop"]))
        if action == "drop":
            body.pop(name, None)
        elif name == "rr_ratio" and draw(st.booleans()):
            body[name] = draw(HOSTILE_RR | st.lists(FIELD_VALUES, min_size=0, max_size=3))
        else:
            body[name] = draw(FIELD_VALUES)
    return json.dumps(body).encode()


def assert_placeable(request: OpenRequest, side: Side) -> None:
    """What the control object may be asked: exact Decimals within every bound the API documents."""
    assert request.side is side
    assert re.fullmatch(r"[A-Z0-9][A-Z0-9._-]{0,39}", request.symbol)
    assert all(isinstance(v, Decimal) and v.is_finite() for v in (request.size_usd, request.sl_pct, *request.rr_ratio))
    assert request.size_usd > 0 and 1 <= request.leverage <= MAX_LEVERAGE
    assert 0 < request.sl_pct < 100
    risk, reward = request.rr_ratio
    assert risk > 0 and reward > 0 and MIN_RR <= reward / risk <= MAX_RR
    if side is Side.SHORT:
        assert request.tp_pct < 100  # the TP stays above zero


def client(control: FakeControl, token: str | None = None) -> httpx.AsyncClient:
    app = create_app(control, metrics_render=None, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8787")


@fuzz(250)
@given(path=st.sampled_from([*ORDER_PATHS, *OTHER_PATHS]), body=order_bodies())
@example(path="/api/orders/short", body=json.dumps({**GOOD, "sl_percent": 60}).encode())  # the TP -587
@example(path="/api/orders/long", body=json.dumps({**GOOD, "rr_ratio": ["1e-18", "1e18"]}).encode())
async def test_hostile_bodies_get_a_4xx_and_only_placeable_orders_reach_the_control(path: str, body: bytes) -> None:
    """250 generated bodies (+2 from the issue): mutated orders (hostile numbers, wrong types, missing and extra
    keys), arbitrary JSON, bytes."""
    control = FakeControl()
    async with client(control) as c:
        r = await c.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"error", "field"}
        assert control.mutations() == []
        return
    for name, args in control.mutations():
        if name == "open_position":
            assert_placeable(args[0], ORDER_PATHS[path])


GOOD_HOSTS = ["127.0.0.1:8787", "localhost:8787", "[::1]:8787", "localhost", "127.0.0.1"]
BAD_HOSTS = st.sampled_from(
    [
        "evil.example",
        "evil.example:8787",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "127.0.0.1@evil.example",
        "evil.example#127.0.0.1",
        "[::1",
        "",
        " ",
        "10.0.0.1",
        "0.0.0.0:8787",
        "localhost:notaport",
    ]
) | ASCII.map(lambda t: "evil-" + t)
BAD_ORIGINS = st.sampled_from(
    [
        "https://evil.example",
        "null",
        "http://localhost:3000",
        "http://127.0.0.1:8788",
        "https://127.0.0.1.evil.example",
        "file://",
        "",
    ]
) | ASCII.map(lambda t: "x-" + t)
BAD_TYPES = st.sampled_from(
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/jsonx",
        "text/json",
        "",
        "application/json-seq",
    ]
) | ASCII.map(lambda t: "x-" + t)


@st.composite
def header_sets(draw: st.DrawFn) -> tuple[dict[str, str], int]:
    """Headers with each one good or hostile, and the status the first hostile one must cause (200 if none)."""
    headers: dict[str, str] = {}
    expected: list[int] = []
    host = draw(st.sampled_from(GOOD_HOSTS))
    if draw(st.booleans()):
        headers["Host"] = host
    else:
        headers["Host"] = host = draw(BAD_HOSTS)
        expected.append(403)
    origin_kind = draw(st.sampled_from(["none", "same", "bad"]))
    if origin_kind == "same" and 403 not in expected:
        headers["Origin"] = f"http://{host}"
    elif origin_kind == "bad":
        headers["Origin"] = draw(BAD_ORIGINS)
        expected.append(403)
    site = draw(st.sampled_from([None, "same-origin", "none", "cross-site", "same-site"]))
    if site is not None:
        headers["Sec-Fetch-Site"] = site
        if site in ("cross-site", "same-site"):
            expected.append(403)
    auth = draw(st.sampled_from(["good", "missing", "wrong", "basic"]))
    if auth == "good":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif auth != "missing":
        headers["Authorization"] = (
            f"Bearer {draw(ASCII.filter(lambda t: t.strip() != TOKEN))}" if auth == "wrong" else f"Basic {TOKEN}"
        )
        expected.append(401)
    else:
        expected.append(401)
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "application/json; charset=utf-8"]))
    elif draw(st.booleans()):
        headers["Content-Type"] = draw(BAD_TYPES)
        expected.append(415)
    else:
        expected.append(415)  # none at all
    return headers, (sorted(expected, key=[403, 401, 415].index)[0] if expected else 200)


@fuzz(200)
@given(path=st.sampled_from([*ORDER_PATHS, *OTHER_PATHS]), case=header_sets())
async def test_hostile_headers_are_refused_in_order_and_send_nothing(
    path: str, case: tuple[dict[str, str], int]
) -> None:
    """200 header sets over a token-protected API: Host, Origin, Sec-Fetch-Site, Authorization, Content-Type.

    Refusals come in a fixed order (403 for a foreign page, then 401, then 415) and none calls the control.
    """
    headers, expected = case
    control = FakeControl()
    body = json.dumps(GOOD if path in ORDER_PATHS else {}).encode()
    async with client(control, TOKEN) as c:
        r = await c.post(path, content=body, headers=headers)
    assert r.status_code == expected, (headers, r.text)
    if expected != 200:
        assert control.calls == []
        assert TOKEN not in r.text
