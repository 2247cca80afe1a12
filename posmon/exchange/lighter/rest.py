"""``LighterRest``: the Lighter REST endpoints posmon uses, on one ``httpx.AsyncClient`` (httpx runs on trio).

Transactions are signed by lighter-sdk's Go signer (``signer.LighterSigner``), always with an explicit nonce
so the signer makes no network call, and off the trio thread (0.8-2.6 ms each) so price routing never
stalls. A batch is signed in up to ``sign_threads`` worker threads at once (``sign_many``): ctypes releases the
GIL and the Go signer is safe to call concurrently, so 50 closes sign in about half the time on 2 cores.
Every failure becomes a typed venue error (``errors.error_for``); nothing is retried here: the
gateway owns retries and knows whether a resend is safe.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import httpx
import orjson
import trio

from posmon.exchange import fields
from posmon.exchange.errors import OutcomeUnknown
from posmon.exchange.events import MalformedMessage
from posmon.exchange.lighter.errors import CODE_OK, error_for
from posmon.exchange.lighter.settings import LighterSettings

__all__ = ["AUTH_TOKEN_MARGIN_SECONDS", "USER_AGENT", "LighterRest", "SignerLike"]

log = logging.getLogger(__name__)
R = TypeVar("R")

USER_AGENT = "posmon/0.1"
AUTH_TOKEN_MARGIN_SECONDS = 120.0  # a token this close to its deadline is replaced before use
INACTIVE_ORDERS_LIMIT = 100
#: Worker threads signing one batch: one per core, at most 4 (the Go signer is CPU-bound).
DEFAULT_SIGN_THREADS = max(1, min(4, os.cpu_count() or 1))


class SignerLike(Protocol):
    """The part of ``posmon.exchange.lighter.signer.LighterSigner`` the adapter uses (blocking calls)."""

    def create_order(
        self,
        *,
        market_index: int,
        client_order_index: int,
        base_amount: int,
        price: int,
        is_ask: bool,
        order_type: int,
        time_in_force: int,
        reduce_only: bool,
        trigger_price: int,
        order_expiry: int,
        nonce: int,
    ) -> tuple[int, str]: ...

    def cancel_order(self, *, market_index: int, order_index: int, nonce: int) -> tuple[int, str]: ...

    def update_leverage(self, *, market_index: int, leverage: int, margin_mode: int, nonce: int) -> tuple[int, str]: ...

    def create_auth_token(self, *, deadline: int) -> str: ...


class LighterRest:
    """Typed calls to Lighter; create with ``async with LighterRest.open(settings, signer) as rest``."""

    def __init__(
        self,
        settings: LighterSettings,
        client: httpx.AsyncClient,
        signer: SignerLike,
        *,
        clock: Callable[[], float] = time.time,
        sign_in_thread: bool = True,
        sign_threads: int = DEFAULT_SIGN_THREADS,
    ) -> None:
        if settings.account_index is None:
            raise ValueError("LighterRest needs settings.account_index")
        self.settings = settings
        self.account_index: int = settings.account_index
        self.signer = signer
        self._client = client
        self._clock = clock
        self._sign_in_thread = sign_in_thread
        self._sign_limiter = trio.CapacityLimiter(sign_threads)  # signing threads in use at once
        self._auth: tuple[str, float] | None = None  # token and its deadline (epoch seconds)

    def __repr__(self) -> str:
        return f"LighterRest({self.settings.rest_url!r}, account={self.account_index})"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: LighterSettings,
        signer: SignerLike,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sign_in_thread: bool = True,
    ) -> AsyncIterator[LighterRest]:
        """One connection pool for the venue's lifetime, closed on exit; ``transport`` is for tests.

        ``sign_in_thread=False`` signs on the trio thread: for tests on trio's MockClock, which would
        otherwise jump time while a worker thread signs.
        """
        async with httpx.AsyncClient(
            base_url=settings.rest_url,
            transport=transport,
            timeout=httpx.Timeout(settings.request_timeout_seconds),
            headers={"User-Agent": USER_AGENT},
        ) as client:
            yield cls(settings, client, signer, clock=clock, sign_in_thread=sign_in_thread)

    # --- signing -----------------------------------------------------------------------------------------

    async def sign(self, fn: Callable[..., R], **kwargs: Any) -> R:
        """Run one blocking signer call, off the trio thread unless told otherwise."""
        call = functools.partial(fn, **kwargs)
        if not self._sign_in_thread:
            return call()
        return await trio.to_thread.run_sync(call, limiter=self._sign_limiter)

    @property
    def sign_threads(self) -> int:
        return int(self._sign_limiter.total_tokens)

    @sign_threads.setter
    def sign_threads(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"sign_threads must be >= 1, got {n}")
        self._sign_limiter.total_tokens = n

    async def sign_many(self, calls: Sequence[tuple[Callable[..., R], dict[str, Any]]]) -> list[R | Exception]:
        """Run blocking signer calls, up to ``sign_threads`` at once; per call its result or its exception.

        The calls are split into contiguous chunks, one worker thread each (two thread hops for a 50-order
        batch, not 50). Arguments (nonces included) are fixed by the caller before any call runs, so the order
        the threads finish in changes nothing. Without worker threads (``sign_in_thread=False``) they run in turn.
        """
        out: list[R | Exception] = []
        if not calls:
            return out

        def run(chunk: Sequence[tuple[Callable[..., R], dict[str, Any]]]) -> list[R | Exception]:
            done: list[R | Exception] = []
            for fn, kwargs in chunk:
                try:
                    done.append(fn(**kwargs))
                except Exception as exc:  # the signer's refusal: this call only
                    done.append(exc)
            return done

        if not self._sign_in_thread:
            return run(calls)
        workers = min(self.sign_threads, len(calls))
        size = -(-len(calls) // workers)
        chunks = [calls[i : i + size] for i in range(0, len(calls), size)]
        answers: list[list[R | Exception]] = [[] for _ in chunks]

        async def one(k: int) -> None:
            answers[k] = await trio.to_thread.run_sync(run, chunks[k], limiter=self._sign_limiter)

        async with trio.open_nursery() as nursery:
            for k in range(len(chunks)):
                nursery.start_soon(one, k)
        for part in answers:
            out += part
        return out

    async def auth_token(self) -> str:
        """A read-auth token valid for at least ``AUTH_TOKEN_MARGIN_SECONDS`` more (cached until then)."""
        now = self._clock()
        if self._auth is not None and self._auth[1] - now > AUTH_TOKEN_MARGIN_SECONDS:
            return self._auth[0]
        deadline = int(now + self.settings.auth_token_seconds)
        token = await self.sign(self.signer.create_auth_token, deadline=deadline)
        self._auth = (token, float(deadline))
        return token

    def auth_deadline(self) -> float | None:
        return self._auth[1] if self._auth is not None else None

    # --- reads -------------------------------------------------------------------------------------------

    async def next_nonce(self) -> int:
        data = await self._call(
            "GET",
            "/api/v1/nextNonce",
            params={"account_index": self.account_index, "api_key_index": self.settings.api_key_index},
        )
        nonce = data.get("nonce")
        if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
            raise OutcomeUnknown(f"unreadable nonce: {fields.show(data)}", request="GET /api/v1/nextNonce")
        return nonce

    async def order_book_details(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/orderBookDetails")

    async def account(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/account", params={"by": "index", "value": self.account_index})

    async def active_orders(self, market_id: int) -> dict[str, Any]:
        return await self._call(
            "GET",
            "/api/v1/accountActiveOrders",
            auth=True,
            params={"account_index": self.account_index, "market_id": market_id},
        )

    async def inactive_orders(self, market_id: int, limit: int = INACTIVE_ORDERS_LIMIT) -> dict[str, Any]:
        return await self._call(
            "GET",
            "/api/v1/accountInactiveOrders",
            auth=True,
            params={"account_index": self.account_index, "market_id": market_id, "limit": limit},
        )

    # --- transactions ------------------------------------------------------------------------------------

    async def send_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        """``POST sendTx``; code 200 only means accepted (the effect shows on the account later)."""
        return await self._call("POST", "/api/v1/sendTx", form={"tx_type": str(tx_type), "tx_info": tx_info})

    async def send_tx_batch(self, tx_types: Sequence[int], tx_infos: Sequence[str]) -> dict[str, Any]:
        """``POST sendTxBatch``: ``tx_types`` a JSON list of ints, ``tx_infos`` a JSON list of the tx_info strings."""
        return await self._call(
            "POST",
            "/api/v1/sendTxBatch",
            form={"tx_types": orjson.dumps(list(tx_types)).decode(), "tx_infos": orjson.dumps(list(tx_infos)).decode()},
        )

    # --- plumbing ----------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        auth: bool = False,
    ) -> dict[str, Any]:
        request = f"{method} {path}"
        headers = {"Authorization": await self.auth_token()} if auth else None
        try:
            response = await self._client.request(method, path, params=params, data=form, headers=headers)
        except httpx.TimeoutException as exc:
            raise OutcomeUnknown(
                f"no answer within {self.settings.request_timeout_seconds}s ({type(exc).__name__})", request=request
            ) from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknown(f"connection failed ({type(exc).__name__}: {exc})", request=request) from exc
        return decode(response, request)


def decode(response: httpx.Response, request: str) -> dict[str, Any]:
    """The answer's JSON object when it says ``code: 200``, else the typed error it stands for."""
    status = response.status_code
    try:
        data = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        data = None
    code = data.get("code") if isinstance(data, dict) else None
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    message = data.get("message") if isinstance(data, dict) else None
    msg = message if isinstance(message, str) else ""
    if 200 <= status < 300:
        if not isinstance(data, dict):
            raise OutcomeUnknown(f"HTTP {status} with an unreadable body: {response.content[:200]!r}", request=request)
        if code is None or code == CODE_OK:
            return data
        raise error_for(None, code, msg, request=request)
    raise error_for(
        status, code, msg or response.reason_phrase, request=request, retry_after=response.headers.get("Retry-After")
    )


def parsed(parse: Callable[..., R], data: Any, request: str, *args: Any) -> R:
    """A malformed answer proves nothing about what the venue did: report it as an unknown outcome."""
    try:
        return parse(data, *args)
    except MalformedMessage as exc:
        raise OutcomeUnknown(f"unreadable answer: {exc}", request=request) from exc
