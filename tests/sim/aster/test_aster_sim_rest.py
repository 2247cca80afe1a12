"""The Aster simulator's REST surface over real loopback HTTP: orders, batches, queries, filters, faults."""

from __future__ import annotations

import httpx
import orjson
import pytest
import trio

from posmon.domain.orders import Side
from posmon.sim.aster import AsterSim, RateLimitConfig
from tests.sim.aster.test_aster_sim_helpers import (
    D,
    ManualClock,
    V1Client,
    V3Client,
    body,
    limit_order,
    make_exchange,
    running,
)


async def test_v1_signed_limit_order_round_trip_rests_then_fills_on_the_book():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    sim = AsterSim(exchange)
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        placed = await client.signed("POST", "/fapi/v1/order", limit_order(newClientOrderId="tp-1"))
        assert placed.status_code == 200, placed.text
        order = body(placed)
        assert order["status"] == "NEW" and order["clientOrderId"] == "tp-1"
        assert isinstance(order["orderId"], int)
        assert (order["price"], order["origQty"], order["executedQty"]) == ("44000.0", "0.010", "0")
        assert (order["timeInForce"], order["type"], order["positionSide"]) == ("GTC", "LIMIT", "LONG")
        assert order["reduceOnly"] is False and order["workingType"] == "CONTRACT_PRICE"

        by_id = await client.signed(
            "GET", "/fapi/v1/order", [("symbol", "BTCUSDT"), ("orderId", str(order["orderId"]))]
        )
        assert body(by_id)["clientOrderId"] == "tp-1"
        open_now = await client.signed("GET", "/fapi/v1/openOrders", [("symbol", "BTCUSDT")])
        assert [o["clientOrderId"] for o in body(open_now)] == ["tp-1"]

        clock.advance(5)
        exchange.set_mark("BTCUSDT", D("43990"))
        filled = body(
            await client.signed("GET", "/fapi/v1/order", [("symbol", "BTCUSDT"), ("origClientOrderId", "tp-1")])
        )
        assert (filled["status"], filled["executedQty"], filled["avgPrice"]) == ("FILLED", "0.010", "44000.0")
        assert filled["updateTime"] == round(clock.now * 1000) > filled["time"]
        gone = await client.signed("GET", "/fapi/v1/openOrder", [("symbol", "BTCUSDT"), ("origClientOrderId", "tp-1")])
        assert (gone.status_code, body(gone)["code"]) == (400, -2013)
        positions = body(await client.signed("GET", "/fapi/v2/positionRisk", [("symbol", "BTCUSDT")]))
        long = next(p for p in positions if p["positionSide"] == "LONG")
        assert (long["positionAmt"], long["entryPrice"]) == ("0.010", "44000")
        assert next(p for p in positions if p["positionSide"] == "SHORT")["positionAmt"] == "0"


async def test_v3_eip712_signed_order_round_trip_and_cancel():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    sim = AsterSim(exchange)
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V3Client(http, clock)
        placed = await client.signed(
            "POST",
            "/fapi/v3/order",
            [
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("positionSide", "LONG"),
                ("type", "STOP_MARKET"),
                ("quantity", "0.010"),
                ("stopPrice", "40000"),
                ("workingType", "MARK_PRICE"),
                ("newClientOrderId", "sl-1"),
                ("newOrderRespType", "RESULT"),
            ],
        )
        assert placed.status_code == 200, placed.text
        assert body(placed)["status"] == "NEW" and body(placed)["workingType"] == "MARK_PRICE"
        assert exchange.engine.query("BTCUSDT", "sl-1").stop_price == D("40000")

        cancelled = await client.signed(
            "DELETE", "/fapi/v3/order", [("symbol", "BTCUSDT"), ("orderId", str(body(placed)["orderId"]))]
        )
        assert cancelled.status_code == 200, cancelled.text
        assert body(cancelled)["status"] == "CANCELED"
        again = await client.signed("DELETE", "/fapi/v3/order", [("symbol", "BTCUSDT"), ("origClientOrderId", "sl-1")])
        assert body(again)["code"] == -2011


async def test_market_order_ack_shows_new_but_the_order_filled():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        params = [
            ("symbol", "ETHUSDT"),
            ("side", "SELL"),
            ("positionSide", "SHORT"),
            ("type", "MARKET"),
            ("quantity", "0.100"),
            ("newClientOrderId", "e-1"),
        ]
        ack = body(await client.signed("POST", "/fapi/v1/order", params))
        assert (ack["status"], ack["executedQty"]) == ("NEW", "0")
        query = [("symbol", "ETHUSDT"), ("origClientOrderId", "e-1")]
        result = body(await client.signed("GET", "/fapi/v1/order", query))
        assert (result["status"], result["avgPrice"], result["cumQuote"]) == ("FILLED", "3000.00", "300")
    assert exchange.engine.position("ETHUSDT", Side.SHORT).qty == D("0.1")


async def test_batch_place_answers_in_request_order_with_the_bad_item_in_place():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        items = [
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "positionSide": "LONG",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.010",
                "price": "44000",
                "newClientOrderId": "b-1",
            },
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "positionSide": "LONG",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.010",
                "price": "44000.05",
                "newClientOrderId": "b-2",
            },  # finer than the tick
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "positionSide": "LONG",
                "type": "STOP_MARKET",
                "quantity": "0.010",
                "stopPrice": "40000",
                "price": "39000",
                "newClientOrderId": "b-3",
            },  # price: -1106
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "positionSide": "SHORT",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.010",
                "price": "46000",
                "newClientOrderId": "b-4",
            },
        ]
        response = await client.signed("POST", "/fapi/v1/batchOrders", [("batchOrders", orjson.dumps(items).decode())])
        assert response.status_code == 200, response.text
        answers = body(response)
        assert [a.get("clientOrderId", a.get("code")) for a in answers] == ["b-1", -1111, -1106, "b-4"]
        assert "tick" not in answers[2]["msg"] and "stopPrice" not in answers[2]["msg"]
        assert response.headers["X-MBX-ORDER-COUNT-1M"] == "4"
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "5"
    assert [o.client_id for o in exchange.engine.open_orders("BTCUSDT")] == ["b-1", "b-4"]


async def test_batch_of_more_than_five_is_refused_whole():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        item = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "positionSide": "LONG",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.010",
            "price": "44000",
        }
        response = await V1Client(http, clock).signed(
            "POST", "/fapi/v1/batchOrders", [("batchOrders", orjson.dumps([item] * 6).decode())]
        )
        assert (response.status_code, body(response)["code"]) == (400, -4082)
    assert exchange.engine.open_orders() == []


async def test_cancel_batch_by_client_ids_and_order_ids_with_unknown_ones_in_place():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V3Client(http, clock)
        ids = []
        for n, price in enumerate(("44000", "43900", "43800")):
            placed = await client.signed("POST", "/fapi/v3/order", limit_order(price, newClientOrderId=f"c-{n}"))
            ids.append(body(placed)["orderId"])
        by_client = await client.signed(
            "DELETE", "/fapi/v3/batchOrders", [("symbol", "BTCUSDT"), ("origClientOrderIdList", '["c-0","nope"]')]
        )
        assert [a.get("status", a.get("code")) for a in body(by_client)] == ["CANCELED", -2011]
        by_id = await client.signed(
            "DELETE",
            "/fapi/v3/batchOrders",
            [("symbol", "BTCUSDT"), ("orderIdList", orjson.dumps([ids[1], 999]).decode())],
        )
        assert [a.get("clientOrderId", a.get("code")) for a in body(by_id)] == ["c-1", -2011]
        too_many = await client.signed(
            "DELETE",
            "/fapi/v3/batchOrders",
            [("symbol", "BTCUSDT"), ("orderIdList", orjson.dumps(list(range(11))).decode())],
        )
        assert body(too_many)["code"] == -4032
    assert [o.client_id for o in exchange.engine.open_orders()] == ["c-2"]


async def test_cancel_all_open_orders_answers_the_string_code_200():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        for n in range(3):
            await client.signed("POST", "/fapi/v1/order", limit_order(str(44000 - n * 100)))
        response = await client.signed("DELETE", "/fapi/v1/allOpenOrders", [("symbol", "BTCUSDT")])
        assert response.status_code == 200
        assert body(response) == {"code": "200", "msg": "The operation of cancel all open order is done."}
    assert exchange.engine.open_orders() == []


async def test_exchange_info_publishes_filters_and_the_configured_rate_limits():
    clock = ManualClock()
    sim = AsterSim(make_exchange(clock=clock), limits=RateLimitConfig(weight_per_minute=600, orders_per_minute=50))
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        info = body(await http.get("/fapi/v1/exchangeInfo"))
        v3 = body(await http.get("/fapi/v3/exchangeInfo"))
    assert info["symbols"] == v3["symbols"]
    assert {(r["rateLimitType"], r["interval"], r["intervalNum"], r["limit"]) for r in info["rateLimits"]} == {
        ("REQUEST_WEIGHT", "MINUTE", 1, 600),
        ("ORDERS", "MINUTE", 1, 50),
    }
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"] == {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.1",
        "maxPrice": "1000000",
        "tickSize": "0.1",
    }
    assert filters["LOT_SIZE"]["stepSize"] == "0.001" and filters["LOT_SIZE"]["minQty"] == "0.001"
    assert filters["MARKET_LOT_SIZE"]["maxQty"] == "100000"
    assert filters["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "notional": "5"}
    assert filters["PERCENT_PRICE"] == {
        "filterType": "PERCENT_PRICE",
        "multiplierUp": "1.1500",
        "multiplierDown": "0.8500",
        "multiplierDecimal": 4,
    }
    assert (btc["baseAsset"], btc["quoteAsset"], btc["contractType"], btc["status"]) == (
        "BTC",
        "USDT",
        "PERPETUAL",
        "TRADING",
    )


async def test_order_rules_refuse_with_the_venue_codes():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)

        async def code(params: list[tuple[str, str]]) -> int:
            response = await client.signed("POST", "/fapi/v1/order", params)
            assert response.status_code == 400, response.text
            return body(response)["code"]

        assert await code(limit_order(reduceOnly="true")) == -1106  # hedge mode: positionSide closes by itself
        assert await code(limit_order(stopPrice="43000")) == -1106
        assert await code([p for p in limit_order() if p[0] != "timeInForce"]) == -1102
        assert await code(limit_order(price="44000.01")) == -1111
        assert await code(limit_order(qty="0.0105")) == -1111
        assert await code(limit_order(price="60000")) == -4016  # above mark * 1.15
        assert await code(limit_order(qty="0.0001")) == -1111
        assert await code(limit_order(qty="0.000")) == -4003
        assert await code(limit_order(qty="0.001", price="4000")) == -4164
        assert await code(limit_order(newClientOrderId="bad id!")) == -1100
        assert await code(limit_order(newClientOrderId="x" * 37)) == -4015
        assert await code(limit_order(position_side="BOTH")) == -4061
        assert (
            await code(
                [
                    ("symbol", "BTCUSDT"),
                    ("side", "SELL"),
                    ("positionSide", "LONG"),
                    ("type", "STOP_MARKET"),
                    ("quantity", "0.010"),
                    ("stopPrice", "40000"),
                    ("timeInForce", "IOC"),
                ]
            )
            == -1115
        )  # *_MARKET types take GTC only
        assert (
            await code(
                [
                    ("symbol", "BTCUSDT"),
                    ("side", "SELL"),
                    ("positionSide", "LONG"),
                    ("type", "STOP_MARKET"),
                    ("quantity", "0.010"),
                    ("stopPrice", "46000"),
                ]
            )
            == -2021
        )
        post_only = [(k, "GTX" if k == "timeInForce" else v) for k, v in limit_order("46000", side="BUY")]
        assert await code(post_only) == -5022  # would take at once
        assert await code([*limit_order(), ("symbol", "BTCUSDT")]) == -1101
        assert await code([(k, "XRPUSDT" if k == "symbol" else v) for k, v in limit_order()]) == -1121
    assert exchange.engine.open_orders() == []


async def test_503_after_execute_leaves_the_order_placed():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    sim = AsterSim(exchange)
    sim.fail_next("/fapi/v1/order", method="POST", after_execute=True)
    sim.fail_next("/fapi/v1/openOrders")
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        unknown = await client.signed("POST", "/fapi/v1/order", limit_order(newClientOrderId="maybe"))
        assert unknown.status_code == 503
        assert body(unknown) == {
            "code": -1007,
            "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        }
        before = await client.signed("GET", "/fapi/v1/openOrders", [("symbol", "BTCUSDT")])
        assert before.status_code == 503  # failed before executing: nothing to show
        found = await client.signed("GET", "/fapi/v1/order", [("symbol", "BTCUSDT"), ("origClientOrderId", "maybe")])
        assert body(found)["status"] == "NEW"
    assert sim.counters.http_503 == 2


async def test_exchange_level_outcome_unknown_maps_to_503_and_delay_fault_still_answers(autojump_clock):
    exchange = make_exchange()
    sim = AsterSim(exchange)
    exchange.fail_next("place_orders", after_execute=True)
    sim.delay_next("/fapi/v1/time", 30.0)
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest, timeout=60) as http:
        client = V1Client(http, sim.now)
        response = await client.signed("POST", "/fapi/v1/order", limit_order(newClientOrderId="x-1"))
        assert (response.status_code, body(response)["code"]) == (503, -1007)
        assert exchange.engine.query("BTCUSDT", "x-1").status.value == "NEW"
        start = trio.current_time()
        delayed = await http.get("/fapi/v1/time")
        assert delayed.status_code == 200 and trio.current_time() - start >= 30.0


async def test_position_mode_reads_and_changes_only_when_flat():
    clock = ManualClock()
    exchange = make_exchange(clock=clock, hedge_mode=False)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V3Client(http, clock)
        assert body(await client.signed("GET", "/fapi/v3/positionSide/dual")) == {"dualSidePosition": False}
        same = await client.signed("POST", "/fapi/v3/positionSide/dual", [("dualSidePosition", "false")])
        assert body(same)["code"] == -4059
        changed = await client.signed("POST", "/fapi/v3/positionSide/dual", [("dualSidePosition", "true")])
        assert body(changed) == {"code": 200, "msg": "success"}
        assert exchange.hedge_mode and exchange.engine.hedge_mode
        await client.signed(
            "POST",
            "/fapi/v3/order",
            [
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("positionSide", "LONG"),
                ("type", "MARKET"),
                ("quantity", "0.010"),
            ],
        )
        blocked = await client.signed("POST", "/fapi/v3/positionSide/dual", [("dualSidePosition", "false")])
        assert body(blocked)["code"] == -4068


async def test_premium_index_and_leverage_bracket_answer_the_venue_shapes():
    clock = ManualClock()
    async with running(AsterSim(make_exchange(clock=clock))) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        one = body(await http.get("/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"}))
        assert one["symbol"] == "BTCUSDT" and one["markPrice"] == "45000.0"
        assert one["nextFundingTime"] % (8 * 3600 * 1000) == 0
        assert {e["symbol"] for e in body(await http.get("/fapi/v3/premiumIndex"))} == {"BTCUSDT", "ETHUSDT"}
        bad = await http.get("/fapi/v1/premiumIndex", params={"symbol": "NOPE"})
        assert (bad.status_code, body(bad)["code"]) == (400, -1121)
        brackets = body(await V3Client(http, clock).signed("GET", "/fapi/v3/leverageBracket"))
        assert {b["symbol"] for b in brackets} == {"BTCUSDT", "ETHUSDT"}
        assert body(await http.get("/api/v3/exchangeInfo"))["symbols"] == []


async def test_ioc_limit_that_cannot_trade_expires_and_a_crossing_one_fills():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        resting = [(k, "IOC" if k == "timeInForce" else v) for k, v in limit_order("44000")]
        expired = body(await client.signed("POST", "/fapi/v1/order", [*resting, ("newOrderRespType", "RESULT")]))
        assert (expired["status"], expired["timeInForce"], expired["executedQty"]) == ("EXPIRED", "IOC", "0")
        crossing = [(k, "IOC" if k == "timeInForce" else v) for k, v in limit_order("45100")]
        filled = body(await client.signed("POST", "/fapi/v1/order", [*crossing, ("newOrderRespType", "RESULT")]))
        assert (filled["status"], filled["avgPrice"]) == ("FILLED", "45000.0")
    assert exchange.engine.open_orders() == []


async def test_stalled_request_that_executed_leaves_the_client_timing_out_with_the_order_placed(autojump_clock):
    exchange = make_exchange()
    sim = AsterSim(exchange)
    sim.stall_next("/fapi/v1/order", method="POST", after_execute=True)
    sim.stall_next("/fapi/v1/openOrders")
    async with running(sim) as (rest, _ws), httpx.AsyncClient(base_url=rest, timeout=5) as http:
        client = V1Client(http, sim.now)
        with pytest.raises(httpx.ReadTimeout):
            await client.signed("POST", "/fapi/v1/order", limit_order(newClientOrderId="ghost"))
        assert exchange.engine.query("BTCUSDT", "ghost").status.value == "NEW"

        async def release_soon() -> None:
            await trio.sleep(1)
            sim.release_stalled()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_soon)
            held = await client.signed("GET", "/fapi/v1/openOrders")
        assert [o["clientOrderId"] for o in body(held)] == ["ghost"]
