"""The Lighter simulator's REST side over loopback, with transactions signed by the real lighter-sdk signer."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from posmon.domain.orders import Side
from posmon.exchange.lighter.signer import ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL, ORDER_TIME_IN_FORCE_POST_ONLY
from posmon.sim.lighter import errors as e
from tests.sim.lighter.test_lighter_sim_helpers import ACCOUNT, KEY, D, make_sim, running

lighter_models = pytest.importorskip("lighter.models")


def _retamper(tx: tuple[int, str], **fields: Any) -> tuple[int, str]:
    info = json.loads(tx[1])
    info.update(fields)
    return tx[0], json.dumps(info)


async def test_signed_market_order_opens_a_position_and_is_filled():
    sim = make_sim()
    async with running(sim) as c:
        r = await c.order(market=0, coi=11, base=1000, price=301000, market_order=True)  # 0.1 ETH, worst 3010
        assert r.status_code == 200 and r.json()["code"] == 200 and r.json()["tx_hash"]
        position = (await c.positions())[0]
        assert (position["sign"], position["position"], position["avg_entry_price"]) == (1, "0.1000", "3000.00")
        (done,) = await c.inactive_orders(market=0)
        assert (done["client_order_index"], done["status"], done["filled_base_amount"]) == (11, "filled", "0.1000")
        assert done["order_index"] >= 2**48
        lighter_models.Order.from_dict(done)  # the SDK's own model accepts the shape
        assert await c.nonce() == 1


async def test_limit_rests_is_listed_and_cancels_by_client_or_exchange_index():
    sim = make_sim()
    async with running(sim) as c:
        assert (await c.order(market=1, coi=21, base=100, price=440000)).status_code == 200  # 0.001 BTC @ 44000
        assert (await c.order(market=1, coi=22, base=100, price=430000)).status_code == 200
        active = await c.active_orders(1)
        assert [(o["client_order_index"], o["status"], o["price"]) for o in active] == [
            (21, "open", "44000.0"), (22, "open", "43000.0")]  # fmt: skip
        r = await c.send(c.signer.cancel_order(market_index=1, order_index=21, nonce=await c.nonce()))
        assert r.status_code == 200, r.text
        by_index = active[1]["order_index"]
        r = await c.send(c.signer.cancel_order(market_index=1, order_index=by_index, nonce=await c.nonce()))
        assert r.status_code == 200, r.text
        assert await c.active_orders(1) == []
        assert {o["client_order_index"]: o["status"] for o in await c.inactive_orders(1)} == {
            21: "canceled", 22: "canceled"}  # fmt: skip
        r = await c.send(c.signer.cancel_order(market_index=1, order_index=21, nonce=await c.nonce()))
        assert r.status_code == 400 and r.json()["code"] == e.ORDER_NOT_FOUND


async def test_batch_with_consecutive_nonces_is_accepted_in_order():
    sim = make_sim()
    async with running(sim) as c:
        n = await c.nonce()
        batch = [c.sign_order(n, market=0, coi=31, price=290000), c.sign_order(n + 1, market=3, coi=32, base=100,
                 price=190000), c.signer.cancel_order(market_index=0, order_index=31, nonce=n + 2)]  # fmt: skip
        r = await c.send_batch(batch)
        assert r.status_code == 200, r.text
        assert len(r.json()["tx_hash"]) == 3
        assert await c.active_orders(0) == []
        assert [o["client_order_index"] for o in await c.active_orders(3)] == [32]
        assert await c.nonce() == n + 3


async def test_wrong_nonce_answers_21104_and_changes_nothing():
    sim = make_sim()
    async with running(sim) as c:
        for nonce in (5, 1):
            r = await c.send(c.sign_order(nonce, market=0, coi=41, market_order=True, price=310000))
            assert (r.status_code, r.json()) == (400, {"code": 21104, "message": "invalid nonce"})
        assert (await c.positions())[0]["sign"] == 0
        assert await c.nonce() == 0
        sim.force_nonce_error()
        r = await c.send(c.sign_order(0, market=0, coi=41, market_order=True, price=310000))
        assert r.json()["code"] == e.INVALID_NONCE
        assert (await c.send(c.sign_order(0, market=0, coi=41, market_order=True, price=310000))).status_code == 200


async def test_non_consecutive_batch_nonces_answer_21105_and_change_nothing():
    sim = make_sim()
    async with running(sim) as c:
        batch = [c.sign_order(0, coi=51, price=290000), c.sign_order(2, coi=52, price=290000)]
        r = await c.send_batch(batch)
        assert r.status_code == 400 and r.json()["code"] == e.BATCH_NONCE_GAP
        assert await c.active_orders(0) == [] and await c.nonce() == 0


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"MarketIndex": 9}, e.INVALID_MARKET),
        ({"ClientOrderIndex": 2**48}, e.INVALID_CLIENT_ORDER_INDEX),
        ({"BaseAmount": 1}, e.BELOW_MIN_AMOUNT),  # 0.0001 ETH < 0.0050
        ({"BaseAmount": 0}, e.INVALID_BASE_AMOUNT),  # 0 only with reduce-only
        ({"Price": 0}, e.INVALID_PRICE),
        ({"Type": 2, "TriggerPrice": 290000}, e.INVALID_ORDER_TYPE),  # conditional orders: not offered
        ({"TriggerPrice": 5}, e.INVALID_TRIGGER),
        ({"TimeInForce": 1}, e.INVALID_TIME_IN_FORCE),  # MARKET must be IOC
        ({"OrderExpiry": 1}, e.INVALID_EXPIRY),  # IOC needs expiry 0
        ({"AccountIndex": ACCOUNT + 1}, e.ACCOUNT_NOT_FOUND),
        ({"ApiKeyIndex": KEY + 1}, e.INVALID_API_KEY),
        ({"ExpiredAt": int(time.time() * 1000) - 1}, e.TX_EXPIRED),
        ({"Sig": ""}, e.INVALID_TX_INFO),
        ({"BaseAmount": "1000"}, e.INVALID_BASE_AMOUNT),
    ],
)
async def test_bad_fields_answer_a_clear_error_and_change_nothing(fields: dict[str, Any], code: int):
    sim = make_sim()
    async with running(sim) as c:
        tx = _retamper(c.sign_order(0, coi=61, market_order=True, price=310000), **fields)
        r = await c.send(tx)
        assert r.status_code == 400 and r.json()["code"] == code, r.text
        assert r.json()["message"]
        assert await c.nonce() == 0
        assert (await c.positions())[0]["sign"] == 0 and await c.inactive_orders() == []


async def test_duplicate_client_order_index_among_open_orders_is_refused():
    sim = make_sim()
    async with running(sim) as c:
        assert (await c.order(coi=71, price=290000)).status_code == 200
        r = await c.order(coi=71, price=280000)
        assert r.status_code == 400 and r.json()["code"] == e.DUPLICATE_CLIENT_ORDER_INDEX
        assert len(await c.active_orders(0)) == 1


async def test_reduce_only_never_opens_and_zero_amount_closes_the_whole_position():
    sim = make_sim()
    async with running(sim) as c:
        assert (await c.order(coi=81, is_ask=True, base=0, price=290000, market_order=True, reduce_only=True)
                ).status_code == 200  # fmt: skip
        assert (await c.positions())[0]["sign"] == 0
        assert (await c.inactive_orders())[0]["status"] == "canceled-reduce-only"
        await c.order(coi=82, base=1500, price=310000, market_order=True)
        # a reduce-only buy on a long would increase it: cancelled, position unchanged
        await c.order(coi=83, base=500, price=310000, market_order=True, reduce_only=True)
        assert (await c.positions())[0]["position"] == "0.1500"
        # more than held: clamped to the position, never flips it
        await c.order(coi=84, is_ask=True, base=5000, price=290000, market_order=True, reduce_only=True)
        assert (await c.positions())[0]["sign"] == 0
        await c.order(coi=85, is_ask=True, base=1000, price=290000, market_order=True)
        await c.order(coi=86, base=0, price=310000, market_order=True, reduce_only=True)
        assert (await c.positions())[0]["sign"] == 0


async def test_thin_liquidity_cancels_a_tight_close_and_fills_a_wider_one_at_the_slipped_price():
    sim = make_sim()
    async with running(sim) as c:
        await c.order(coi=91, base=1000, price=301000, market_order=True)
        sim.set_liquidity("ETH", "1")  # takers fill 1 % through the mark
        await c.order(coi=92, is_ask=True, base=1000, price=298500, market_order=True, reduce_only=True)  # 0.5 %
        assert (await c.positions())[0]["position"] == "0.1000"
        assert (await c.inactive_orders())[0]["status"] == "canceled-too-much-slippage"
        await c.order(coi=93, is_ask=True, base=1000, price=294000, market_order=True, reduce_only=True)  # 2 %
        position = (await c.positions())[0]
        assert position["sign"] == 0 and position["realized_pnl"] == "-3.000000"  # sold at 2970
        assert (await c.inactive_orders())[0]["status"] == "filled"
        assert sim.exchange.engine.mark("ETH") == D("3000.00")  # the mark itself did not move


async def test_post_only_crossing_is_cancelled_and_ioc_limit_fills_when_marketable():
    sim = make_sim()
    async with running(sim) as c:
        await c.order(coi=101, price=310000, tif=ORDER_TIME_IN_FORCE_POST_ONLY)
        assert (await c.inactive_orders())[0]["status"] == "canceled-post-only"
        await c.order(coi=102, price=310000, tif=ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL)
        assert (await c.positions())[0]["position"] == "0.1000"


async def test_resting_limit_fills_when_the_mark_runs_through_it_and_trades_are_listed():
    sim = make_sim()
    async with running(sim) as c:
        await c.order(market=0, coi=111, base=1000, price=295000)
        sim.exchange.set_marks({"ETH": D("2940")})
        position = (await c.positions())[0]
        assert (position["sign"], position["avg_entry_price"]) == (1, "2950.00")
        assert (await c.inactive_orders())[0]["status"] == "filled"
        r = await c.http.get("/api/v1/recentTrades", params={"market_id": 0, "limit": 10})
        (trade,) = r.json()["trades"]
        assert (trade["size"], trade["price"], trade["bid_account_id"]) == ("0.1000", "2950.00", ACCOUNT)
        lighter_models.Trade.from_dict(trade)


async def test_external_entry_shows_on_the_account_without_a_client_index():
    sim = make_sim()
    async with running(sim) as c:
        record = sim.external_entry("BTC", Side.SHORT, D("0.002"))
        position = (await c.positions())[1]
        assert (position["sign"], position["position"]) == (-1, "0.00200")
        (order,) = await c.inactive_orders(1)
        assert (order["order_index"], order["client_order_index"], order["status"]) == (record.order_index, 0,
                                                                                        "filled")  # fmt: skip


async def test_read_endpoints_match_the_sdk_models():
    sim = make_sim()
    async with running(sim) as c:
        r = await c.http.get("/api/v1/orderBookDetails", params={"market_id": 1})
        details = lighter_models.OrderBookDetails.from_dict(r.json())
        (btc,) = details.order_book_details
        assert (btc.symbol, btc.market_id, btc.size_decimals, btc.price_decimals) == ("BTC", 1, 5, 1)
        assert (btc.min_base_amount, btc.mark_price) == ("0.00020", "45000.0")
        every = (await c.http.get("/api/v1/orderBookDetails")).json()["order_book_details"]
        assert [(d["symbol"], d["market_id"]) for d in every] == [("ETH", 0), ("BTC", 1), ("DOGE", 3)]
        lighter_models.OrderBooks.from_dict((await c.http.get("/api/v1/orderBooks")).json())
        accounts = (await c.http.get("/api/v1/account", params={"by": "index", "value": ACCOUNT})).json()
        lighter_models.DetailedAccounts.from_dict(accounts)
        assert accounts["accounts"][0]["collateral"] == "100000.000000"
        r = await c.http.get("/api/v1/account", params={"by": "index", "value": 1})
        assert r.status_code == 400 and r.json()["code"] == e.ACCOUNT_NOT_FOUND
        lighter_models.NextNonce.from_dict((await c.http.get("/api/v1/nextNonce", params={
            "account_index": ACCOUNT, "api_key_index": KEY})).json())  # fmt: skip
        await c.order(market=0, coi=121, price=290000)
        book = (await c.http.get("/api/v1/orderBookOrders", params={"market_id": 0, "limit": 5})).json()
        lighter_models.OrderBookOrders.from_dict(book)
        assert book["bids"][0]["price"] == "2900.00" and book["asks"] == []


async def test_authenticated_reads_check_the_token():
    sim = make_sim()
    async with running(sim) as c:
        base = {"account_index": ACCOUNT, "market_id": 0}
        for auth in (None, "garbage", c.auth(deadline=time.time() - 10)):
            params = dict(base, **({"auth": auth} if auth else {}))
            r = await c.http.get("/api/v1/accountActiveOrders", params=params)
            assert r.status_code == 400 and r.json()["code"] == e.INVALID_AUTH
        r = await c.http.get("/api/v1/accountActiveOrders", params=base, headers={"Authorization": c.auth()})
        assert r.status_code == 200
        r = await c.http.get("/api/v1/accountActiveOrders", params=dict(base, account_index=ACCOUNT + 1,
                                                                         auth=c.auth()))  # fmt: skip
        assert r.status_code == 400


async def test_failures_before_and_after_executing():
    sim = make_sim()
    async with running(sim) as c:
        sim.fail_next("/api/v1/sendTx")
        r = await c.order(coi=131, price=310000, market_order=True)
        assert r.status_code == 503
        assert (await c.positions())[0]["sign"] == 0 and await c.nonce() == 0
        sim.fail_next("/api/v1/sendTx", after_execute=True)
        r = await c.order(coi=132, price=310000, market_order=True)
        assert r.status_code == 503
        assert (await c.positions())[0]["sign"] == 1 and await c.nonce() == 1  # it went in: look it up
        found = [o for o in await c.inactive_orders(0) if o["client_order_index"] == 132]
        assert found and found[0]["status"] == "filled"
        sim.fail_next("/api/v1/account", status=502)
        r = await c.http.get("/api/v1/account", params={"by": "index", "value": ACCOUNT})
        assert r.status_code == 502
        assert sim.counters.requests["POST /api/v1/sendTx"] == 2
        assert sim.counters.http_503 == 2
