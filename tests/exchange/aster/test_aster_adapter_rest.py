"""``AsterVenue`` over the wire (REST): against a strict fake of Aster's API behind ``httpx.MockTransport``.

Each test asserts on what the venue received (paths, parameters, signatures checked by the fake) and on the
typed results and errors the daemon gets back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio

from posmon.actors.gateway import OrderGateway
from posmon.actors.messages import PlaceOrders
from posmon.config import ConfigError
from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, PositionState, Side, WorkingType
from posmon.exchange.aster.rest import AsterRest
from posmon.exchange.aster.venue import AsterVenue
from posmon.exchange.errors import (
    AuthRejected,
    Banned,
    ClockSkew,
    GiveUp,
    NonceExpired,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    WouldTriggerImmediately,
)
from posmon.exchange.events import MarkPrice
from posmon.metrics import Metrics
from tests.exchange.aster.test_aster_adapter_fakes import (
    API_SECRET,
    NOW,
    PRIVATE_KEY,
    SIGNER,
    USER,
    FakeAster,
    settings,
)

D = Decimal


@asynccontextmanager
async def venue_on(fake: FakeAster, **overrides: Any) -> AsyncIterator[AsterVenue]:
    async with AsterVenue.open(
        settings(fake.auth, **overrides), transport=fake.transport(), clock=lambda: NOW
    ) as venue:
        yield venue


def limit(cid: str = "pm-1-E-1", **kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "client_id": cid,
        "symbol": "BTCUSDT",
        "side": OrderSide.BUY,
        "position_side": "LONG",
        "type": OrderType.LIMIT,
        "qty": D("0.010"),
        "price": D("42000.50"),
    }
    return OrderRequest(**{**base, **kw})


def stop(cid: str = "pm-1-S-1", **kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "client_id": cid,
        "symbol": "BTCUSDT",
        "side": OrderSide.SELL,
        "position_side": "LONG",
        "type": OrderType.STOP_MARKET,
        "qty": D("0.010"),
        "stop_price": D("38000"),
        "working_type": WorkingType.MARK_PRICE,
    }
    return OrderRequest(**{**base, **kw})


# --- opening ------------------------------------------------------------------------------------------------


async def test_open_syncs_the_clock_and_loads_rules_and_limits_from_exchange_info() -> None:
    fake = FakeAster(skew_ms=1234)
    async with venue_on(fake) as venue:
        assert venue.name == "aster"
        assert (venue.limits.weight_per_minute, venue.limits.orders_per_minute) == (1800, 900)
        assert set(venue.rules) == {"BTCUSDT", "DOGEUSDT"}
        assert venue.rest.clock.offset_ms == 1234
    assert [(s.method, s.path) for s in fake.seen] == [("GET", "/fapi/v1/time"), ("GET", "/fapi/v1/exchangeInfo")]
    assert all("X-MBX-APIKEY" not in s.headers and not s.text for s in fake.seen)


async def test_configured_symbols_restrict_the_rules() -> None:
    async with venue_on(FakeAster(), symbols=["DOGEUSDT", "NOSUCHUSDT"]) as venue:
        assert set(await venue.load_rules()) == {"DOGEUSDT"}


async def test_open_refuses_an_unfilled_embedded_simulator_url() -> None:
    with pytest.raises(ConfigError, match=r"aster\.ws_url"):
        async with venue_on(FakeAster(), ws_url=""):
            pass


# --- placing ------------------------------------------------------------------------------------------------


async def test_single_limit_order_is_one_signed_post_with_exactly_its_parameters() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        [state] = await venue.place_orders([limit()])
    [call] = fake.calls("POST", "/fapi/v1/order")
    assert call.in_body and call.text.startswith(
        "symbol=BTCUSDT&side=BUY&positionSide=LONG&type=LIMIT&timeInForce=GTC&quantity=0.01&price=42000.5"
        f"&newClientOrderId=pm-1-E-1&recvWindow=5000&timestamp={int(NOW * 1000)}&signature="
    )
    assert state.client_id == "pm-1-E-1" and state.status is OrderStatus.NEW and state.price == D("42000.5")


async def test_stop_market_in_hedge_mode_sends_no_time_in_force_and_no_reduce_only() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        [state] = await venue.place_orders([stop(reduce_only=True)])
    params = fake.calls("POST", "/order")[0].params
    assert "timeInForce" not in params and "reduceOnly" not in params
    assert (params["stopPrice"], params["workingType"]) == ("38000", "MARK_PRICE")
    assert state.type is OrderType.STOP_MARKET and state.stop_price == D("38000")


async def test_one_way_mode_close_is_reduce_only() -> None:
    fake = FakeAster(hedge_mode=False)
    async with venue_on(fake) as venue:
        [state] = await venue.place_orders([stop(position_side="BOTH", reduce_only=True)])
    assert fake.calls("POST", "/order")[0].params["reduceOnly"] == "true"
    assert state.reduce_only


async def test_several_orders_go_in_one_batch_call_and_refusals_come_back_in_place() -> None:
    fake = FakeAster(
        refuse={
            "pm-1-T-2": (-2022, "ReduceOnly Order is rejected."),
            "pm-1-S-3": (-2021, "Order would immediately trigger."),
        }
    )
    orders = [limit("pm-1-E-1"), limit("pm-1-T-2", side=OrderSide.SELL), stop("pm-1-S-3"), stop("pm-1-S-4")]
    async with venue_on(fake) as venue:
        results = await venue.place_orders(orders)
    assert len(fake.calls("POST", "/batchOrders")) == 1 and not fake.calls("POST", "/fapi/v1/order")
    assert [type(r) for r in results] == [type(results[0]), GiveUp, WouldTriggerImmediately, type(results[0])]
    assert results[0].client_id == "pm-1-E-1" and results[3].client_id == "pm-1-S-4"  # type: ignore[union-attr]
    assert results[1].code == -2022 and "batchOrders" in results[1].request  # type: ignore[union-attr]


async def test_more_than_five_orders_are_refused_without_a_call() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        calls = len(fake.seen)
        with pytest.raises(Rejected) as info:
            await venue.place_orders([limit(f"pm-1-E-{i}") for i in range(6)])
    assert info.value.code == -4082 and len(fake.seen) == calls


async def test_single_refusal_is_returned_in_place_not_raised() -> None:
    fake = FakeAster(refuse={"pm-1-E-1": (-2019, "Margin is insufficient.")})
    async with venue_on(fake) as venue:
        [result] = await venue.place_orders([limit()])
    assert isinstance(result, GiveUp) and result.code == -2019


async def test_an_item_with_an_unknown_outcome_makes_the_whole_call_unknown() -> None:
    fake = FakeAster()
    fake.answer(
        "POST",
        "/batchOrders",
        200,
        [
            {"code": -1007, "msg": "Timeout waiting for response"},
            {"code": -2022, "msg": "ReduceOnly Order is rejected."},
        ],
    )
    async with venue_on(fake) as venue:
        with pytest.raises(OutcomeUnknown):
            await venue.place_orders([limit("a"), limit("b")])


async def test_an_unreadable_answer_to_a_placement_is_an_unknown_outcome() -> None:
    fake = FakeAster()
    fake.answer("POST", "/order", 200, {"orderId": 1})
    async with venue_on(fake) as venue:
        with pytest.raises(OutcomeUnknown, match="clientOrderId"):
            await venue.place_orders([limit()])
    fake.answer("POST", "/order", 200, b"<html>gateway</html>")
    async with venue_on(fake) as venue:
        with pytest.raises(OutcomeUnknown, match="unreadable"):
            await venue.place_orders([limit()])


# --- cancelling and querying --------------------------------------------------------------------------------


async def test_cancel_one_is_a_single_delete_and_an_unknown_id_is_order_not_found_in_place() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        await venue.place_orders([limit()])
        [done] = await venue.cancel_orders("BTCUSDT", ["pm-1-E-1"])
        [missing] = await venue.cancel_orders("BTCUSDT", ["pm-9-E-9"])
    assert done.status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert isinstance(missing, OrderNotFound) and missing.code == -2011
    assert [c.params["origClientOrderId"] for c in fake.calls("DELETE", "/fapi/v1/order")] == ["pm-1-E-1", "pm-9-E-9"]


async def test_cancel_several_is_one_batch_delete_by_client_ids() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        await venue.place_orders([limit("a"), limit("b")])
        results = await venue.cancel_orders("BTCUSDT", ["a", "gone", "b"])
        with pytest.raises(Rejected, match="11 > 10"):
            await venue.cancel_orders("BTCUSDT", [str(i) for i in range(11)])
    [call] = fake.calls("DELETE", "/batchOrders")
    assert call.params["origClientOrderIdList"] == '["a","gone","b"]'
    assert "origClientOrderIdList=%5B%22a%22%2C%22gone%22%2C%22b%22%5D" in call.text
    assert [getattr(r, "status", type(r)) for r in results] == [
        OrderStatus.CANCELED,
        OrderNotFound,
        OrderStatus.CANCELED,
    ]


async def test_query_by_client_id_and_unknown_ids_raise_order_not_found() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        await venue.place_orders([limit()])
        state = await venue.query_order("BTCUSDT", "pm-1-E-1")
        with pytest.raises(OrderNotFound) as info:
            await venue.query_order("BTCUSDT", "never")
        open_orders = await venue.open_orders("BTCUSDT")
        all_open = await venue.open_orders()
    assert state.client_id == "pm-1-E-1" and info.value.code == -2013
    assert [o.client_id for o in open_orders] == [o.client_id for o in all_open] == ["pm-1-E-1"]
    assert fake.calls("GET", "/order")[0].params["origClientOrderId"] == "pm-1-E-1"
    assert "symbol" not in fake.calls("GET", "/openOrders")[-1].params


# --- account ------------------------------------------------------------------------------------------------


async def test_positions_use_the_v2_path_with_v1_auth_and_skip_flat_ones() -> None:
    fake = FakeAster(
        positions=[
            {"symbol": "BTCUSDT", "positionAmt": "0.000", "entryPrice": "0.0", "positionSide": "LONG"},
            {"symbol": "BTCUSDT", "positionAmt": "-0.500", "entryPrice": "41000.0", "positionSide": "SHORT"},
        ]
    )
    async with venue_on(fake) as venue:
        assert await venue.positions() == [PositionState("BTCUSDT", Side.SHORT, D("0.500"), D("41000.0"))]
    assert fake.calls("GET", "/fapi/v2/positionRisk")


async def test_rest_mark_prices_keep_the_configured_symbols() -> None:
    fake = FakeAster(
        marks=[
            {"symbol": s, "markPrice": p, "time": 1597370495002}
            for s, p in (("BTCUSDT", "42000.1"), ("DOGEUSDT", "0.2"), ("ETHUSDT", "3000"))
        ]
    )
    async with venue_on(fake, symbols=["BTCUSDT", "DOGEUSDT"]) as venue:
        marks = await venue.mark_prices()
    assert marks == [
        MarkPrice("BTCUSDT", D("42000.1"), 1597370495.002),
        MarkPrice("DOGEUSDT", D("0.2"), 1597370495.002),
    ]


async def test_position_mode_get_and_set_with_no_change_needed_as_success() -> None:
    fake = FakeAster(hedge_mode=True)
    async with venue_on(fake) as venue:
        assert await venue.position_mode() is True
        await venue.set_position_mode(True)  # -4059 "No need to change position side."
        await venue.set_position_mode(False)
        assert await venue.position_mode() is False
    assert [c.params["dualSidePosition"] for c in fake.calls("POST", "/positionSide/dual")] == ["true", "false"]


async def test_listen_key_calls_carry_the_key_only_with_v1() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        assert await venue.rest.create_listen_key() == fake.listen_key
        await venue.rest.keepalive_listen_key()
        await venue.rest.delete_listen_key()
    assert [c.method for c in fake.calls(path="/listenKey")] == ["POST", "PUT", "DELETE"]
    assert all(c.text == "" and c.headers["X-MBX-APIKEY"] for c in fake.calls(path="/listenKey"))


async def test_used_weight_headers_feed_the_usage_gauge() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        await venue.open_orders()
        assert venue.usage.used_weight == {"1M": fake.used_weight}


# --- failures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"}, RateLimited, 7.0),
        (418, {"code": -1003, "msg": "Way too many requests; IP banned."}, {"Retry-After": "600"}, Banned, 600.0),
        (503, {"code": -1001, "msg": "Internal error; unable to process your request."}, {}, OutcomeUnknown, None),
        (502, b"Bad Gateway", {}, OutcomeUnknown, None),
        (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, {}, AuthRejected, None),
    ],
)
async def test_http_failures_become_typed_errors(
    status: int, body: Any, headers: dict[str, str], expected: type, retry_after: float | None
) -> None:
    fake = FakeAster()
    fake.answer("GET", "/openOrders", status, body, headers)
    async with venue_on(fake) as venue:
        with pytest.raises(expected) as info:
            await venue.open_orders()
    assert type(info.value) is expected and info.value.request == "GET /fapi/v1/openOrders"
    if retry_after is not None:
        assert info.value.retry_after == retry_after
    assert len(fake.calls("GET", "/openOrders")) == 1  # never retried by the adapter


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
async def test_transport_failures_are_unknown_outcomes_without_the_signed_query(error: Exception) -> None:
    fake = FakeAster()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/order"):
            raise error
        return fake.handle(request)

    async with AsterVenue.open(settings(), transport=httpx.MockTransport(handler), clock=lambda: NOW) as venue:
        with pytest.raises(OutcomeUnknown) as info:
            await venue.place_orders([limit()])
    text = str(info.value)
    assert info.value.request == "POST /fapi/v1/order"
    assert "signature" not in text and "timestamp" not in text and API_SECRET not in text


async def test_clock_skew_resyncs_and_retries_once() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        fake.skew_ms = 30_000  # the venue's clock jumps ahead: our timestamps are now too old
        [state] = await venue.place_orders([limit()])
    assert state.client_id == "pm-1-E-1"
    assert [(c.method, c.path) for c in fake.seen[2:]] == [
        ("POST", "/fapi/v1/order"),
        ("GET", "/fapi/v1/time"),
        ("POST", "/fapi/v1/order"),
    ]


async def test_clock_skew_twice_in_a_row_is_raised_after_one_retry() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        for _ in range(2):
            fake.answer("GET", "/openOrders", 400, {"code": -1021, "msg": "Timestamp outside of the recvWindow."})
        with pytest.raises(ClockSkew):
            await venue.open_orders()
    assert len(fake.calls("GET", "/openOrders")) == 2 and len(fake.calls("GET", "/time")) == 2


async def test_other_refusals_are_not_retried() -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        fake.answer("GET", "/openOrders", 400, {"code": -4225, "msg": "Nonce Expired"})
        with pytest.raises(NonceExpired):  # with v1 auth a nonce error is nothing a fresh nonce fixes
            await venue.open_orders()
    assert len(fake.calls("GET", "/openOrders")) == 1


# --- v3 -----------------------------------------------------------------------------------------------------


async def test_v3_uses_v3_paths_and_wallet_signatures_the_venue_can_recover() -> None:
    fake = FakeAster(
        auth="v3",
        positions=[{"symbol": "BTCUSDT", "positionAmt": "0.1", "entryPrice": "40000", "positionSide": "LONG"}],
    )
    async with venue_on(fake) as venue:
        results = await venue.place_orders([limit("a"), stop("b")])
        positions = await venue.positions()
        assert await venue.rest.create_listen_key() == fake.listen_key
    assert all(not isinstance(r, Exception) for r in results) and positions[0].side is Side.LONG
    signed = [c for c in fake.seen if "signature" in c.params]
    assert {c.path for c in signed} == {"/fapi/v3/batchOrders", "/fapi/v3/positionRisk", "/fapi/v3/listenKey"}
    for call in signed:  # the fake recovered the signer from exactly this text; check the parts are ours
        assert (call.params["signer"], call.params["user"]) == (SIGNER, USER) and "X-MBX-APIKEY" not in call.headers
        assert call.text.rpartition("&signature=")[0].endswith(f"&user={USER}&signer={SIGNER}")
    nonces = [int(c.params["nonce"]) for c in signed]
    assert nonces == sorted(set(nonces))


async def test_v3_expired_nonce_is_retried_once_with_a_fresh_nonce() -> None:
    clock = [NOW]
    fake = FakeAster(auth="v3", clock=lambda: clock[0])
    async with AsterVenue.open(settings("v3"), transport=fake.transport(), clock=lambda: clock[0]) as venue:
        fake.answer("GET", "/openOrders", 400, {"code": -4225, "msg": "Nonce Expired"})
        await venue.open_orders()
        first, second = fake.calls("GET", "/openOrders")
        assert int(second.params["nonce"]) > int(first.params["nonce"])
        for _ in range(2):
            fake.answer("GET", "/openOrders", 400, {"code": -4225, "msg": "Nonce Expired"})
        with pytest.raises(NonceExpired):
            await venue.open_orders()


async def test_v3_settings_with_the_doc_wallet_open_against_the_fake() -> None:
    fake = FakeAster(auth="v3")
    async with AsterRest.open(
        settings("v3", signer=SIGNER, signer_private_key=PRIVATE_KEY), transport=fake.transport(), clock=lambda: NOW
    ) as rest:
        assert await rest.position_mode() is True
        assert "X-MBX-APIKEY" not in fake.seen[-1].headers


# --- with posmon's order gateway ----------------------------------------------------------------------------


async def test_gateway_looks_orders_up_by_client_id_after_a_503_before_resending(autojump_clock: Any) -> None:
    fake = FakeAster()
    async with venue_on(fake) as venue:
        fake.answer("POST", "/batchOrders", 503, {"code": -1001, "msg": "Internal error; unable to process."})
        inbox_send, inbox_recv = trio.open_memory_channel[Any](10)
        reply_send, reply_recv = trio.open_memory_channel[Any](10)
        async with trio.open_nursery() as nursery:
            await nursery.start(OrderGateway(venue, inbox_recv, Metrics()).run)
            await inbox_send.send(PlaceOrders((limit("a"), stop("b")), reply_send))
            answer = await reply_recv.receive()
            nursery.cancel_scope.cancel()
    assert [r.state.client_id for r in answer.results] == ["a", "b"]
    assert [(c.method, c.path.rsplit("/", 1)[1], c.params.get("origClientOrderId")) for c in fake.seen[2:]] == [
        ("POST", "batchOrders", None),
        ("GET", "order", "a"),
        ("GET", "order", "b"),
        ("POST", "batchOrders", None),
    ]


async def test_requests_bypass_the_client_layers_but_keep_its_headers_and_timeout() -> None:
    """Calls go straight to the client's connection pool: what reaches it is what the client would have sent."""
    seen: list[httpx.Request] = []
    fake = FakeAster()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return fake.handle(request)

    async with AsterVenue.open(settings(), transport=httpx.MockTransport(handler), clock=lambda: NOW) as venue:
        answers = await venue.cancel_orders("BTCUSDT", ["pm-1-T-1", "pm-1-S-1"])
    assert all(isinstance(a, OrderNotFound) for a in answers)
    call = seen[-1]
    assert (call.method, str(call.url).split("?")[0]) == ("DELETE", "http://127.0.0.1:9/fapi/v1/batchOrders")
    assert call.headers["user-agent"] == "posmon/0.1" and call.headers["connection"] == "keep-alive"
    assert call.headers["x-mbx-apikey"] and call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.headers["host"] == "127.0.0.1:9" and call.headers["content-length"] == str(len(call.content))
    assert b"origClientOrderIdList=" in call.content and b"&signature=" in call.content
    assert call.extensions["timeout"] == httpx.Timeout(settings().request_timeout_seconds).as_dict()
    assert "x-mbx-apikey" not in seen[0].headers  # an unsigned call carries only the client's own headers
