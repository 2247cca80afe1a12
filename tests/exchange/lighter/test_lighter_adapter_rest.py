"""``LighterVenue`` over the wire (REST) against a strict fake of Lighter behind ``httpx.MockTransport``.

Asserts on what Lighter received (signed fields, nonces, batches) and on the typed results and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest

from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, PositionState, Side
from posmon.exchange.errors import (
    AuthRejected,
    GiveUp,
    NonceExpired,
    OrderNotFound,
    OutcomeUnknown,
    PrecisionRejected,
    RateLimited,
    Rejected,
)
from posmon.exchange.lighter.venue import LighterVenue
from tests.exchange.lighter.test_lighter_adapter_fakes import NOW, FakeLighter, FakeSigner, order_json, settings

D = Decimal


@asynccontextmanager
async def venue_on(fake: FakeLighter, **kw: Any) -> AsyncIterator[LighterVenue]:
    async with LighterVenue.open(
        settings(**kw), signer=FakeSigner(), transport=fake.transport(), clock=lambda: NOW, sign_in_thread=False
    ) as venue:
        yield venue


def close(cid: str = "pm-7-C2", **kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "client_id": cid,
        "symbol": "BTC",
        "side": OrderSide.SELL,
        "position_side": "BOTH",
        "type": OrderType.MARKET,
        "qty": D("0.01"),
        "price": D("59400.0"),
        "reduce_only": True,
    }
    return OrderRequest(**{**base, **kw})


async def test_open_loads_markets_and_the_nonce() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        assert venue.rules["BTC"].tick_size == D("0.1") and venue.rules["ETH"].step_size == D("0.0001")
        assert venue.market_id("ETH") == 0 and venue.symbol_for(1) == "BTC" and venue.symbol_for("1") == "BTC"
        assert venue.symbol_for("ETH") == "ETH"
        traits = venue.traits
        assert (traits.emulated_exits, traits.hedge_mode(True), await venue.position_mode()) == (True, False, False)
        assert fake.nonce_fetches == 1


async def test_market_close_is_a_bounded_ioc_accepted_as_new_with_nothing_filled() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        (state,) = await venue.place_orders([close()])
        assert not isinstance(state, Exception)
        assert (state.status, state.filled_qty, state.client_id) == (OrderStatus.NEW, D(0), "pm-7-C2")
        ((tx_type, tx),) = fake.txs
        assert tx_type == 14
        assert tx == {
            "MarketIndex": 1,
            "ClientOrderIndex": venue.ids.index("pm-7-C2"),
            "BaseAmount": 1000,
            "Price": 594000,
            "IsAsk": 1,
            "Type": 1,
            "TimeInForce": 0,
            "ReduceOnly": 1,
            "TriggerPrice": 0,
            "OrderExpiry": 0,
            "Nonce": 100,
        }
        await venue.place_orders([close("pm-7-C3")])
        assert fake.txs[-1][1]["Nonce"] == 101 and fake.nonce_fetches == 1  # counted locally


async def test_limit_is_good_till_time_with_the_28_day_expiry() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        await venue.place_orders(
            [close("pm-1-E1", type=OrderType.LIMIT, side=OrderSide.BUY, reduce_only=False, price=D("58000.5"))]
        )
        tx = fake.txs[0][1]
        assert (tx["Type"], tx["TimeInForce"], tx["OrderExpiry"], tx["Price"], tx["IsAsk"]) == (0, 1, -1, 580005, 0)


async def test_refused_locally_in_place_and_the_rest_goes_as_one_consecutive_batch() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        results = await venue.place_orders(
            [
                close("pm-1-C1", price=None),  # a MARKET without a worst price: never sent
                close("pm-2-C1"),
                close("pm-3-S1", type=OrderType.STOP_MARKET, stop_price=D("59000")),  # native conditionals are off
                close("pm-4-C1", qty=D("0.000001")),  # off the step
                close("someone-else"),
                close("pm-5-C1", position_side="LONG"),
                close("pm-6-C1", symbol="NOPE"),
                close("pm-8-C1"),
            ]
        )
        assert [type(r) for r in results] == [
            GiveUp,
            type(results[1]),
            GiveUp,
            PrecisionRejected,
            Rejected,
            GiveUp,
            Rejected,
            type(results[1]),
        ]
        assert "worst acceptable price" in str(results[0]) and "native_conditional_orders" in str(results[2])
        assert [tx["Nonce"] for _, tx in fake.txs] == [100, 101]
        assert sum(r.url.path == "/api/v1/sendTxBatch" for r in fake.requests) == 1


async def test_native_stop_when_opted_in_carries_trigger_and_a_bounded_worst_price() -> None:
    fake = FakeLighter()
    async with venue_on(fake, native_conditional_orders=True) as venue:
        (r,) = await venue.place_orders(
            [close("pm-3-S1", type=OrderType.STOP_MARKET, stop_price=D("59000"), price=None)]
        )
        assert not isinstance(r, Exception)
        tx = fake.txs[0][1]
        assert (tx["Type"], tx["TriggerPrice"], tx["Price"], tx["TimeInForce"]) == (2, 590000, 584100, 0)


async def test_nonce_error_raises_and_the_next_send_fetches_the_nonce_again() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        fake.nonce = 150  # another sender used the key
        with pytest.raises(NonceExpired):
            await venue.place_orders([close()])
        (r,) = await venue.place_orders([close()])
        assert not isinstance(r, Exception)
        assert fake.txs[0][1]["Nonce"] == 150 and fake.nonce_fetches == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (httpx.Response(503, text="upstream"), OutcomeUnknown),
        (httpx.Response(500, json={"code": 500, "message": "internal"}), OutcomeUnknown),
        (httpx.ReadTimeout("slow"), OutcomeUnknown),
        (httpx.ConnectError("refused"), OutcomeUnknown),
        (httpx.Response(429, json={"code": 429, "message": "too many"}, headers={"Retry-After": "7"}), RateLimited),
        (httpx.Response(400, json={"code": 21105, "message": "not consecutive"}), NonceExpired),
        (httpx.Response(200, text="garbage"), OutcomeUnknown),
    ],
)
async def test_unknown_outcomes_raise_for_the_call_and_force_a_nonce_refetch(fault: Any, error: type) -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        fake.faults.append(fault)
        with pytest.raises(error) as err:
            await venue.place_orders([close()])
        if error is RateLimited:
            assert err.value.retry_after == 7
        await venue.place_orders([close()])
        assert fake.nonce_fetches == 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"code": 21120, "message": "invalid order price"}, Rejected),
        ({"code": 21108, "message": "invalid PublicKey, please run changePubKey"}, AuthRejected),
    ],
)
async def test_business_refusals_come_back_in_place(body: dict, error: type) -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        fake.faults.append(httpx.Response(400, json=body))
        results = await venue.place_orders([close("pm-1-C1"), close("pm-2-C1")])
        assert all(type(r) is error and r.code == body["code"] for r in results)  # type: ignore[union-attr]


async def test_query_finds_active_then_inactive_orders_and_raises_when_lighter_never_saw_it() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        await venue.place_orders([close("pm-1-E1", type=OrderType.LIMIT, reduce_only=False)])
        live = await venue.query_order("BTC", "pm-1-E1")
        assert (live.status, live.side, live.type, live.qty) == (
            OrderStatus.NEW,
            OrderSide.SELL,
            OrderType.LIMIT,
            D("0.01"),
        )
        assert fake.requests[-1].headers["authorization"] == f"token-until-{int(NOW + 3600)}"
        tx = {
            "ClientOrderIndex": venue.ids.index("pm-2-C1"),
            "MarketIndex": 1,
            "BaseAmount": 1000,
            "Price": 594000,
            "IsAsk": 1,
            "Type": 1,
            "TimeInForce": 0,
            "ReduceOnly": 1,
        }
        fake.inactive.append(
            {**order_json(tx, status="canceled-too-much-slippage", filled="0.004"), "filled_quote_amount": "237.6"}
        )
        ended = await venue.query_order("BTC", "pm-2-C1")
        assert (ended.status, ended.filled_qty, ended.avg_price) == (OrderStatus.EXPIRED, D("0.004"), D("59400"))
        with pytest.raises(OrderNotFound):
            await venue.query_order("BTC", "pm-9-C1")
        with pytest.raises(OrderNotFound):
            await venue.query_order("BTC", "not-ours")


async def test_cancel_sends_only_orders_known_to_be_live() -> None:
    fake = FakeLighter()
    async with venue_on(fake) as venue:
        await venue.place_orders([close("pm-1-E1", type=OrderType.LIMIT, reduce_only=False)])
        results = await venue.cancel_orders("BTC", ["pm-1-E1", "pm-5-E1"])
        assert not isinstance(results[0], Exception) and results[0].status is OrderStatus.NEW  # accepted, not final
        assert isinstance(results[1], OrderNotFound)
        tx_type, tx = fake.txs[-1]
        assert (tx_type, tx["Index"], tx["MarketIndex"], tx["Nonce"]) == (15, venue.ids.index("pm-1-E1"), 1, 101)


async def test_positions_and_open_orders_of_every_market() -> None:
    fake = FakeLighter()
    fake.positions = [
        {
            "market_id": 1,
            "symbol": "BTC",
            "sign": -1,
            "position": "0.02",
            "avg_entry_price": "60000.0",
            "open_order_count": 1,
        },
        {"market_id": 0, "symbol": "ETH", "sign": 1, "position": "0", "avg_entry_price": "0", "open_order_count": 0},
    ]
    async with venue_on(fake) as venue:
        assert await venue.positions() == [PositionState("BTC", Side.SHORT, D("0.02"), D("60000.0"))]
        assert await venue.positions("ETH") == []
        await venue.place_orders([close("pm-1-E1", type=OrderType.LIMIT, reduce_only=False)])
        (o,) = await venue.open_orders()
        assert o.client_id == "pm-1-E1"
        assert [m.symbol for m in await venue.mark_prices()] == ["BTC", "ETH"]
