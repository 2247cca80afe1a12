"""Request authentication of the Aster simulator: v1 HMAC and v3 EIP-712, with the venue's refusals."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import httpx
import pytest
from eth_account import Account

from posmon.sim.aster import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_SIGNER_ADDRESS,
    DEFAULT_SIGNER_PRIVATE_KEY,
    AsterSim,
)
from posmon.sim.aster.auth import NonceBook
from tests.sim.aster.test_aster_sim_helpers import (
    FORM,
    ManualClock,
    V1Client,
    V3Client,
    body,
    eip712_signature,
    hmac_signed,
    limit_order,
    make_exchange,
    running,
)

OTHER_KEY = "0x" + hashlib.sha256(b"not registered").hexdigest()


async def test_v1_refusals_bad_signature_stale_or_future_timestamp_and_keys():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        now_ms = round(clock.now * 1000)

        bad = await V1Client(http, clock, secret="wrong").signed("POST", "/fapi/v1/order", limit_order())
        assert (bad.status_code, body(bad)["code"]) == (400, -1022)
        stale = await client.signed("POST", "/fapi/v1/order", limit_order(), timestamp_ms=now_ms - 5001)
        assert (stale.status_code, body(stale)["code"]) == (400, -1021)
        ahead = await client.signed("POST", "/fapi/v1/order", limit_order(), timestamp_ms=now_ms + 1000)
        assert body(ahead)["code"] == -1021
        just_in = await client.signed(
            "POST", "/fapi/v1/order", limit_order(newClientOrderId="ok-1"), timestamp_ms=now_ms + 999
        )
        assert just_in.status_code == 200, just_in.text
        wide = await client.signed(
            "POST",
            "/fapi/v1/order",
            limit_order(recvWindow="60000", newClientOrderId="ok-2"),
            timestamp_ms=now_ms - 59_000,
        )
        assert wide.status_code == 200, wide.text
        too_wide = await client.signed("POST", "/fapi/v1/order", limit_order(recvWindow="60001"))
        assert body(too_wide)["code"] == -1130
        unknown = await V1Client(http, clock, key="who").signed("GET", "/fapi/v1/openOrders")
        assert (unknown.status_code, body(unknown)["code"]) == (401, -2015)
        missing = await http.get("/fapi/v1/openOrders", params={"timestamp": str(now_ms)})
        assert (missing.status_code, body(missing)["code"]) == (401, -2014)
        unsigned = await http.get(
            "/fapi/v1/openOrders", params={"timestamp": str(now_ms)}, headers={"X-MBX-APIKEY": DEFAULT_API_KEY}
        )
        assert body(unsigned)["code"] == -1102
    assert [o.client_id for o in exchange.engine.open_orders()] == ["ok-1", "ok-2"]


async def test_v1_signature_covers_query_then_body_exactly_as_sent():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        query = urlencode(limit_order(newClientOrderId="split")[:4])
        rest_body = urlencode([*limit_order()[4:], ("timestamp", str(round(clock.now * 1000)))])
        signature = hmac.new(DEFAULT_API_SECRET.encode(), (query + rest_body).encode(), hashlib.sha256).hexdigest()
        headers = {"X-MBX-APIKEY": DEFAULT_API_KEY, **FORM}
        ok = await http.post(
            f"/fapi/v1/order?{query}&newClientOrderId=split",
            content=f"{rest_body}&signature={signature}",
            headers=headers,
        )
        assert body(ok)["code"] == -1022  # the extra query parameter was not signed
        ok = await http.post(f"/fapi/v1/order?{query}", content=f"{rest_body}&signature={signature}", headers=headers)
        assert ok.status_code == 200, ok.text


async def test_v1_user_stream_endpoints_need_the_key_only():
    clock = ManualClock()
    async with running(AsterSim(make_exchange(clock=clock))) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V1Client(http, clock)
        created = await client.keyed("POST", "/fapi/v1/listenKey")
        assert created.status_code == 200 and len(body(created)["listenKey"]) == 64
        assert body(await client.keyed("POST", "/fapi/v1/listenKey")) == body(created)  # the live key again
        assert (await client.keyed("PUT", "/fapi/v1/listenKey")).json() == {}
        assert (await http.post("/fapi/v1/listenKey")).status_code == 401
        assert (await client.keyed("DELETE", "/fapi/v1/listenKey")).json() == {}
        assert body(await client.keyed("PUT", "/fapi/v1/listenKey"))["code"] == -1125
        assert body(await client.keyed("POST", "/fapi/v1/listenKey")) != body(created)


async def test_v3_reused_expired_and_forgotten_nonces_are_refused():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V3Client(http, clock)
        nonce = round(clock.now * 1_000_000)
        first = await client.signed("GET", "/fapi/v3/openOrders", nonce=nonce)
        assert first.status_code == 200, first.text
        reused = await client.signed("GET", "/fapi/v3/openOrders", nonce=nonce)
        assert (reused.status_code, body(reused)) == (400, {"code": -4225, "msg": "Nonce Expired"})
        old = await client.signed("GET", "/fapi/v3/openOrders", nonce=nonce - 60_000_001)
        assert body(old)["code"] == -4225
        future = await client.signed("GET", "/fapi/v3/openOrders", nonce=nonce + 60_000_001)
        assert body(future)["code"] == -4225
        edge = await client.signed("GET", "/fapi/v3/openOrders", nonce=nonce - 60_000_000)
        assert edge.status_code == 200, edge.text
        clock.advance(30)
        assert (await client.signed("GET", "/fapi/v3/openOrders", nonce=nonce - 1)).status_code == 200


async def test_v3_signer_must_be_registered_and_sign_for_its_user():
    clock = ManualClock()
    async with running(AsterSim(make_exchange(clock=clock))) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        as_ccxt = V3Client(http, clock, user=DEFAULT_SIGNER_ADDRESS)  # ccxt sends user == signer
        assert (await as_ccxt.signed("GET", "/fapi/v3/openOrders")).status_code == 200
        stranger = Account.from_key(OTHER_KEY).address
        unknown = V3Client(http, clock, private_key=OTHER_KEY, signer=stranger, user=stranger)
        refused = await unknown.signed("GET", "/fapi/v3/openOrders")
        assert (refused.status_code, body(refused)["code"]) == (401, -2015)
        wrong_user = V3Client(http, clock, user=stranger)
        assert body(await wrong_user.signed("GET", "/fapi/v3/openOrders"))["code"] == -2015
        forged = V3Client(http, clock, private_key=OTHER_KEY)  # claims the registered signer, signs with another key
        assert body(await forged.signed("GET", "/fapi/v3/openOrders"))["code"] == -1022
        bare = await http.get("/fapi/v3/openOrders", params={"signer": DEFAULT_SIGNER_ADDRESS})
        assert body(bare)["code"] == -1102


async def test_v3_accepts_parameters_in_the_query_of_a_post_and_signatures_without_0x():
    clock = ManualClock()
    exchange = make_exchange(clock=clock)
    async with running(AsterSim(exchange)) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        client = V3Client(http, clock)
        text = client.sign(limit_order(newClientOrderId="q-1"))
        in_query = await http.post(f"/fapi/v3/order?{text}")
        assert in_query.status_code == 200, in_query.text
        msg = urlencode(
            [
                *limit_order(newClientOrderId="q-2"),
                ("nonce", str(client.next_nonce())),
                ("user", client.user),
                ("signer", client.signer),
            ]
        )
        bare_hex = eip712_signature(msg, DEFAULT_SIGNER_PRIVATE_KEY).removeprefix("0x")
        no_prefix = await http.post("/fapi/v3/order", content=f"{msg}&signature={bare_hex}", headers=FORM)
        assert no_prefix.status_code == 200, no_prefix.text
    assert {o.client_id for o in exchange.engine.open_orders()} == {"q-1", "q-2"}


async def test_v1_and_v3_credentials_do_not_cross_paths():
    clock = ManualClock()
    async with running(AsterSim(make_exchange(clock=clock))) as (rest, _ws), httpx.AsyncClient(base_url=rest) as http:
        v1_on_v3 = await V1Client(http, clock).signed("GET", "/fapi/v3/openOrders")
        assert body(v1_on_v3)["code"] == -1102  # v3 wants nonce/signer/signature
        text = V3Client(http, clock).sign([])
        v3_on_v1 = await http.get(f"/fapi/v1/openOrders?{text}")
        assert body(v3_on_v1)["code"] == -2014
        assert hmac_signed([("a", "1")]).startswith("a=1&signature=")


@pytest.mark.parametrize("capacity", [3])
def test_nonce_book_keeps_the_newest_and_refuses_older_than_all_remembered(capacity: int) -> None:
    book = NonceBook(capacity)
    assert all(book.admit(n) for n in (10, 30, 20))
    assert not book.admit(20)  # duplicate
    assert not book.admit(5)  # full, and below the smallest remembered
    assert book.admit(15)  # evicts 10
    assert book.admit(10) is False  # now older than everything remembered
    assert book.admit(40)
