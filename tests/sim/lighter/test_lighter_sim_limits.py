"""Standard-tier behaviour of the Lighter simulator: 60 requests a rolling minute, 200/300 ms order latency."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel

from posmon.sim.lighter import PREMIUM, STANDARD, UNLIMITED
from posmon.sim.lighter import errors as e
from posmon.sim.lighter.errors import LighterError
from posmon.sim.lighter.limits import RateLimiter
from tests.sim.lighter.test_lighter_sim_helpers import ACCOUNT, KEY, D, make_signer, make_sim, running


def _admitted(limiter: RateLimiter, path: str, n: int, now: float) -> int:
    for i in range(n):
        try:
            limiter.admit("127.0.0.1", path, now)
        except LighterError as exc:
            assert exc.status == 429 and exc.code == e.TOO_MANY_REQUESTS and exc.retry_after
            return i
    return n


def test_standard_allows_60_requests_a_rolling_minute_and_fewer_of_heavy_endpoints():
    limiter = RateLimiter(STANDARD)
    assert _admitted(limiter, "/api/v1/sendTx", 100, now=0.0) == 60
    assert _admitted(limiter, "/api/v1/account", 1, now=59.9) == 0
    assert _admitted(limiter, "/api/v1/account", 100, now=60.0) == 60  # the first minute rolled out
    assert _admitted(RateLimiter(STANDARD), "/api/v1/recentTrades", 100, now=0.0) == 40  # 24000 / 600


def test_premium_spends_weight_and_unlimited_never_refuses():
    assert _admitted(RateLimiter(PREMIUM), "/api/v1/account", 100, now=0.0) == 80  # 24000 / 300
    assert _admitted(RateLimiter(PREMIUM), "/api/v1/sendTx", 5000, now=0.0) == 4000
    assert _admitted(RateLimiter(UNLIMITED), "/api/v1/account", 5000, now=0.0) == 5000


async def test_standard_tier_answers_429_past_its_budget_over_http():
    sim = make_sim(tier=STANDARD)
    async with running(sim) as c:
        params = {"account_index": ACCOUNT, "api_key_index": KEY}
        codes = [(await c.http.get("/api/v1/nextNonce", params=params)).status_code for _ in range(61)]
        assert codes == [200] * 60 + [429]
        r = await c.http.get("/api/v1/account", params={"by": "index", "value": ACCOUNT})
        assert r.status_code == 429 and r.json() == {"code": 23000, "message": "Too Many Requests!"}
        assert int(r.headers["Retry-After"]) >= 1
        assert sim.counters.requests["GET /api/v1/nextNonce"] == 61 and sim.counters.http_429 == 2


async def test_standard_tier_delays_takers_300ms_and_makers_200ms_in_arrival_order(autojump_clock: Any):
    sim = make_sim(tier=STANDARD)
    signer = make_signer()
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        start = trio.current_time()
        taker = signer.create_order(market_index=0, client_order_index=1, base_amount=1000, price=310000,
                                    is_ask=False, order_type=1, time_in_force=0, reduce_only=False, trigger_price=0,
                                    order_expiry=0, nonce=0)  # fmt: skip
        answer = sim.submit([taker], batch=False)
        assert answer["predicted_execution_time_ms"] == sim.now_ms() + 300
        maker = signer.create_order(market_index=1, client_order_index=2, base_amount=100, price=440000,
                                    is_ask=False, order_type=0, time_in_force=1, reduce_only=False, trigger_price=0,
                                    order_expiry=-1, nonce=1)  # fmt: skip
        sim.submit([maker], batch=False)
        cancel = signer.cancel_order(market_index=1, order_index=2, nonce=2)  # the maker is still queued
        sim.submit([cancel], batch=False)
        await trio.sleep(0.299)
        assert sim.account.signed_position("ETH") == 0 and sim.account.open_orders() == []
        await trio.sleep_until(start + 0.3)
        await trio.lowlevel.checkpoint()
        assert sim.account.signed_position("ETH") == D("0.1")
        await trio.sleep(0.01)
        assert sim.account.open_orders() == []  # created then cancelled, in the order sent
        assert [o.status for o in sim.account.inactive_orders(1)] == ["canceled"]
        nursery.cancel_scope.cancel()


async def test_standard_tier_batch_of_50_closes_costs_one_request(autojump_clock: Any):
    sim = make_sim(tier=STANDARD)
    async with running(sim) as c:
        base = await c.nonce()
        for i in range(2):
            assert (await c.order(market=3, coi=100 + i, base=2500, price=210000, market_order=True)).status_code == 200
        await trio.sleep(1)
        n = await c.nonce()
        closes = [c.sign_order(n + i, market=3, coi=200 + i, base=100, price=190000, is_ask=True, market_order=True,
                               reduce_only=True) for i in range(50)]  # fmt: skip
        r = await c.send_batch(closes)
        assert r.status_code == 200, r.text
        assert len(r.json()["tx_hash"]) == 50
        await trio.sleep(1)
        assert sim.account.signed_position("DOGE") == 0
        assert n == base + 2
        assert sim.counters.requests["POST /api/v1/sendTxBatch"] == 1


@pytest.mark.parametrize("n", [51])
async def test_a_batch_larger_than_50_is_refused(n: int):
    sim = make_sim()
    async with running(sim) as c:
        batch = [c.sign_order(i, coi=300 + i, price=290000) for i in range(n)]
        r = await c.send_batch(batch)
        assert r.status_code == 400 and r.json()["code"] == e.BATCH_TOO_LARGE
        assert await c.nonce() == 0


async def test_a_delayed_request_answers_late_on_the_trio_clock(autojump_clock: Any):
    sim = make_sim()
    async with running(sim) as c:
        sim.delay_next("/api/v1/nextNonce", 3.0)
        start = trio.current_time()
        assert await c.nonce() == 0
        assert trio.current_time() - start >= 3.0
