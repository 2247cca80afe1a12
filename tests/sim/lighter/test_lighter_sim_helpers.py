"""Shared helpers for the Lighter simulator tests: a served simulator and a client signing with the real SDK signer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import trio

from posmon.exchange.lighter.signer import (
    ORDER_TIME_IN_FORCE_GOOD_TILL_TIME,
    ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
    ORDER_TYPE_LIMIT,
    ORDER_TYPE_MARKET,
    LighterSigner,
)
from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
from posmon.sim.lighter.credentials import (
    DEFAULT_ACCOUNT_INDEX,
    DEFAULT_API_KEY_INDEX,
    DEFAULT_API_PRIVATE_KEY,
    DEFAULT_CHAIN_ID,
)

D = Decimal
BASE_TIME = 1_790_000_000.0
ACCOUNT = DEFAULT_ACCOUNT_INDEX
KEY = DEFAULT_API_KEY_INDEX


def trio_epoch_clock() -> float:
    """Server time that follows trio's clock (MockClock jumps move it too)."""
    return BASE_TIME + trio.current_time()


def make_sim(**options: Any) -> LighterSim:
    exchange = build_exchange(clock=options.pop("clock", trio_epoch_clock))
    return LighterSim(exchange, **options)


@asynccontextmanager
async def running(sim: LighterSim) -> AsyncIterator[Client]:
    """The simulator on a loopback port for the block, and a client for it."""
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)
        async with httpx.AsyncClient(base_url=rest_url) as http:
            yield Client(http, rest_url, ws_url)
        nursery.cancel_scope.cancel()


def make_signer(url: str = "http://127.0.0.1:9") -> LighterSigner:
    return LighterSigner(url=url, private_key=DEFAULT_API_PRIVATE_KEY, chain_id=DEFAULT_CHAIN_ID,
                         api_key_index=KEY, account_index=ACCOUNT)  # fmt: skip


class Client:
    """What an adapter does, spelled out: sign with the SDK's Go signer, send form-encoded, read JSON."""

    def __init__(self, http: httpx.AsyncClient, rest_url: str, ws_url: str) -> None:
        self.http = http
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.signer = make_signer(rest_url)

    async def nonce(self) -> int:
        r = await self.http.get("/api/v1/nextNonce", params={"account_index": ACCOUNT, "api_key_index": KEY})
        assert r.status_code == 200, r.text
        return int(r.json()["nonce"])

    def sign_order(self, nonce: int, *, market: int = 0, coi: int = 1, base: int = 1000, price: int = 300000,
                   is_ask: bool = False, market_order: bool = False, reduce_only: bool = False,
                   tif: int | None = None) -> tuple[int, str]:  # fmt: skip
        if tif is None:
            tif = ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL if market_order else ORDER_TIME_IN_FORCE_GOOD_TILL_TIME
        ioc = tif == ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
        return self.signer.create_order(
            market_index=market, client_order_index=coi, base_amount=base, price=price, is_ask=is_ask,
            order_type=ORDER_TYPE_MARKET if market_order else ORDER_TYPE_LIMIT, time_in_force=tif,
            reduce_only=reduce_only, trigger_price=0, order_expiry=0 if ioc else -1, nonce=nonce,
        )  # fmt: skip

    async def send(self, tx: tuple[int, str]) -> httpx.Response:
        return await self.http.post("/api/v1/sendTx", data={"tx_type": str(tx[0]), "tx_info": tx[1]})

    async def send_batch(self, batch: Sequence[tuple[int, str]]) -> httpx.Response:
        return await self.http.post(
            "/api/v1/sendTxBatch",
            data={"tx_types": json.dumps([t for t, _ in batch]), "tx_infos": json.dumps([i for _, i in batch])},
        )

    async def order(self, **kw: Any) -> httpx.Response:
        return await self.send(self.sign_order(await self.nonce(), **kw))

    async def positions(self) -> dict[int, dict[str, Any]]:
        r = await self.http.get("/api/v1/account", params={"by": "index", "value": ACCOUNT})
        assert r.status_code == 200, r.text
        return {p["market_id"]: p for p in r.json()["accounts"][0]["positions"]}

    def auth(self, deadline: float | None = None) -> str:
        import time

        return self.signer.create_auth_token(deadline=int(deadline if deadline is not None else time.time() + 600))

    async def active_orders(self, market: int = 0) -> list[dict[str, Any]]:
        r = await self.http.get(
            "/api/v1/accountActiveOrders", params={"account_index": ACCOUNT, "market_id": market, "auth": self.auth()}
        )
        assert r.status_code == 200, r.text
        return r.json()["orders"]

    async def inactive_orders(self, market: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"account_index": ACCOUNT, "limit": limit, "auth": self.auth()}
        if market is not None:
            params["market_id"] = market
        r = await self.http.get("/api/v1/accountInactiveOrders", params=params)
        assert r.status_code == 200, r.text
        return r.json()["orders"]
