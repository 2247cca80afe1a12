"""Shared pieces of the Aster simulator tests: a running server and clients that sign like a real one.

The signing here is written from the protocol description, independently of the
simulator's verifier (HMAC with hashlib, EIP-712 with eth-account), so a mistake in one
is not mirrored in the other. Named test_*.py so it may sit next to the tests; it has none.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import trio
from eth_account import Account
from eth_account.messages import encode_typed_data

from posmon.sim.aster import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_SIGNER_ADDRESS,
    DEFAULT_SIGNER_PRIVATE_KEY,
    DEFAULT_USER_ADDRESS,
    AsterSim,
    serve_aster_sim,
)
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for

D = Decimal
BASE_TIME = 1_790_000_000.0  # a fixed epoch second for tests that drive the server clock
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class ManualClock:
    """A server clock that moves only when told."""

    now: float = BASE_TIME

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def trio_epoch_clock() -> float:
    """Server time that follows trio's clock, so MockClock jumps move the venue's clock too."""
    return BASE_TIME + trio.current_time()


def make_exchange(
    *,
    hedge_mode: bool = True,
    clock: Callable[[], float] | None = None,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
) -> SimExchange:
    exchange = SimExchange(rules_for(symbols), hedge_mode=hedge_mode, **({"clock": clock} if clock else {}))
    exchange.set_marks({"BTCUSDT": D("45000"), "ETHUSDT": D("3000")})
    return exchange


@asynccontextmanager
async def running(sim: AsterSim) -> AsyncIterator[tuple[str, str]]:
    """The simulator on a loopback port for the duration of the block: yields (rest_url, ws_url)."""
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve_aster_sim, sim)
        yield urls
        nursery.cancel_scope.cancel()


def hmac_signed(params: Sequence[tuple[str, str]], secret: str = DEFAULT_API_SECRET) -> str:
    query = urlencode(list(params))
    return f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"


def eip712_signature(msg: str, private_key: str = DEFAULT_SIGNER_PRIVATE_KEY, chain_id: int = 1666) -> str:
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Message": [{"name": "msg", "type": "string"}],
        },
        "primaryType": "Message",
        "domain": {
            "name": "AsterSignTransaction",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": "0x0000000000000000000000000000000000000000",
        },
        "message": {"msg": msg},
    }
    signature = Account.sign_message(encode_typed_data(full_message=typed), private_key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


@dataclass
class V1Client:
    """A v1 client: API key header, timestamp from the server clock, HMAC signature last."""

    http: httpx.AsyncClient
    clock: Callable[[], float]
    key: str = DEFAULT_API_KEY
    secret: str = DEFAULT_API_SECRET

    async def signed(
        self, method: str, path: str, params: Sequence[tuple[str, str]] = (), *, timestamp_ms: int | None = None
    ) -> httpx.Response:
        ts = timestamp_ms if timestamp_ms is not None else round(self.clock() * 1000)
        text = hmac_signed([*params, ("timestamp", str(ts))], self.secret)
        headers = {"X-MBX-APIKEY": self.key}
        if method == "GET":
            return await self.http.request(method, f"{path}?{text}", headers=headers)
        return await self.http.request(method, path, content=text, headers={**headers, **FORM})

    async def keyed(self, method: str, path: str) -> httpx.Response:
        return await self.http.request(method, path, headers={"X-MBX-APIKEY": self.key})


@dataclass
class V3Client:
    """A v3 client: nonce in microseconds, user and signer, EIP-712 signature of the exact text sent."""

    http: httpx.AsyncClient
    clock: Callable[[], float]
    private_key: str = DEFAULT_SIGNER_PRIVATE_KEY
    signer: str = DEFAULT_SIGNER_ADDRESS
    user: str = DEFAULT_USER_ADDRESS
    _bump: itertools.count[int] = field(default_factory=itertools.count)

    def next_nonce(self) -> int:
        return round(self.clock() * 1_000_000) + next(self._bump)

    def sign(self, params: Sequence[tuple[str, str]], *, nonce: int | None = None) -> str:
        msg = urlencode(
            [
                *params,
                ("nonce", str(nonce if nonce is not None else self.next_nonce())),
                ("user", self.user),
                ("signer", self.signer),
            ]
        )
        return f"{msg}&signature={eip712_signature(msg, self.private_key)}"

    async def signed(
        self, method: str, path: str, params: Sequence[tuple[str, str]] = (), *, nonce: int | None = None
    ) -> httpx.Response:
        text = self.sign(params, nonce=nonce)
        if method == "GET":
            return await self.http.request(method, f"{path}?{text}")
        return await self.http.request(method, path, content=text, headers=FORM)


def limit_order(
    price: str = "44000", qty: str = "0.010", side: str = "BUY", position_side: str = "LONG", **extra: str
) -> list[tuple[str, str]]:
    return [
        ("symbol", "BTCUSDT"),
        ("side", side),
        ("positionSide", position_side),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", qty),
        ("price", price),
        *extra.items(),
    ]


def body(response: httpx.Response) -> Any:
    return response.json()
