"""Rate limits of the Aster simulator: weight and order counts per minute window, 429, then the 418 ban."""

from __future__ import annotations

import httpx

from posmon.sim.aster import AsterSim, RateLimitConfig
from tests.sim.aster.test_aster_sim_helpers import (
    BASE_TIME,
    ManualClock,
    V1Client,
    body,
    limit_order,
    make_exchange,
    running,
)


async def test_every_answer_carries_the_used_weight_and_order_count_of_the_window():
    clock = ManualClock(BASE_TIME - BASE_TIME % 60)  # the start of a minute window
    sim = AsterSim(make_exchange(clock=clock))
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        first = await http.get("/fapi/v1/ping")
        assert (first.headers["X-MBX-USED-WEIGHT-1M"], first.headers["X-MBX-ORDER-COUNT-1M"]) == ("1", "0")
        placed = await client.signed("POST", "/fapi/v1/order", limit_order())
        assert (placed.headers["X-MBX-USED-WEIGHT-1M"], placed.headers["X-MBX-ORDER-COUNT-1M"]) == ("2", "1")
        refused = await client.signed("POST", "/fapi/v1/order", limit_order(price="1.05"))
        assert refused.status_code == 400
        assert (refused.headers["X-MBX-USED-WEIGHT-1M"], refused.headers["X-MBX-ORDER-COUNT-1M"]) == ("3", "2")
        everything = await client.signed("GET", "/fapi/v1/openOrders")  # no symbol: weight 40
        assert everything.headers["X-MBX-USED-WEIGHT-1M"] == "43"
        positions = await client.signed("GET", "/fapi/v2/positionRisk")
        assert positions.headers["X-MBX-USED-WEIGHT-1M"] == "48"
        clock.advance(60)
        assert (await http.get("/fapi/v1/time")).headers["X-MBX-USED-WEIGHT-1M"] == "1"  # a new window
    assert (sim.counters.peak_weight, sim.counters.peak_orders) == (48, 2)
    assert sim.counters.requests["POST /fapi/v1/order"] == 2
    assert sim.counters.requests["GET /fapi/v2/positionRisk"] == 1


async def test_over_the_weight_limit_429_then_418_ban_for_who_keeps_sending():
    clock = ManualClock(BASE_TIME - BASE_TIME % 60 + 10)
    sim = AsterSim(make_exchange(clock=clock), limits=RateLimitConfig(weight_per_minute=3, ban_seconds=120))
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        for _ in range(3):
            assert (await http.get("/fapi/v1/ping")).status_code == 200
        limited = await http.get("/fapi/v1/ping")
        assert limited.status_code == 429
        assert body(limited)["code"] == -1003
        assert limited.headers["Retry-After"] == "50"  # until the window ends
        assert limited.headers["X-MBX-USED-WEIGHT-1M"] == "4"
        banned = await http.get("/fapi/v1/time")
        assert banned.status_code == 418 and body(banned)["code"] == -1003
        assert banned.headers["Retry-After"] == "120"
        clock.advance(60)  # a new window, but the ban still runs
        assert (await http.get("/fapi/v1/ping")).status_code == 418
        clock.advance(61)
        assert (await http.get("/fapi/v1/ping")).status_code == 200
    assert (sim.counters.rate_limited, sim.counters.banned) == (1, 2)


async def test_over_the_order_limit_answers_429_too_many_orders():
    clock = ManualClock(BASE_TIME - BASE_TIME % 60)
    exchange = make_exchange(clock=clock)
    sim = AsterSim(exchange, limits=RateLimitConfig(orders_per_minute=2))
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        for n in range(2):
            assert (await client.signed("POST", "/fapi/v1/order", limit_order(str(44000 - n)))).status_code == 200
        refused = await client.signed("POST", "/fapi/v1/order", limit_order("43000"))
        assert (refused.status_code, body(refused)["code"]) == (429, -1015)
        assert refused.headers["X-MBX-ORDER-COUNT-1M"] == "3"
    assert len(exchange.engine.open_orders()) == 2
