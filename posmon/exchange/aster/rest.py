"""``AsterRest``: one typed method per Aster REST endpoint posmon uses, on one ``httpx.AsyncClient``.

It signs (v1 HMAC or v3 EIP-712), sends, reads the venue's used-weight headers into a gauge, and turns every
failure into a typed venue error. It never retries on its own (the gateway owns retries and knows whether a
resend is safe), with two exceptions that are provably safe because the venue refused the request before
looking at it: a ``ClockSkew`` re-syncs the clock offset and retries once, a ``NonceExpired`` retries once
with a fresh nonce.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import orjson
import trio

from posmon.domain.orders import OrderRequest, OrderState, PositionState
from posmon.exchange import fields
from posmon.exchange.aster import codec
from posmon.exchange.aster.errors import error_for
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.signing import (
    Eip712Signer,
    HmacSigner,
    Params,
    ServerClock,
    SignedRequest,
    Signer,
    encode_params,
)
from posmon.exchange.errors import ClockSkew, NonceExpired, OutcomeUnknown, VenueError
from posmon.exchange.events import MalformedMessage, MarkPrice

__all__ = ["AsterRest", "BatchResult", "Security", "UsageGauge", "make_signer"]

log = logging.getLogger(__name__)

BatchResult = OrderState | VenueError
Parsed = TypeVar("Parsed")
USER_AGENT = "posmon/0.1"
NO_CHANGE_NEEDED = -4059  # "No need to change position side."
_USAGE_HEADER = re.compile(r"x-mbx-(used-weight|order-count)-(\w+)")


class Security(enum.Enum):
    """What a call needs: nothing (market data), the key only (v1 user stream), or a signature."""

    NONE = "none"
    KEY = "key"
    SIGNED = "signed"


@dataclass(slots=True)
class UsageGauge:
    """The venue's own count of what this IP/account used, per interval (``"1M"``), from the response headers."""

    used_weight: dict[str, int] = field(default_factory=dict)
    order_count: dict[str, int] = field(default_factory=dict)

    def update(self, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            match = _USAGE_HEADER.fullmatch(name.lower())
            if match is None:
                continue
            try:
                count = int(value)
            except ValueError:
                continue
            target = self.used_weight if match.group(1) == "used-weight" else self.order_count
            target[match.group(2).upper()] = count


def make_signer(settings: AsterSettings, clock: ServerClock) -> Signer:
    if settings.auth == "v3":
        return Eip712Signer(settings.signer_private_key, settings.signer, settings.user, settings.chain_id, clock=clock)
    return HmacSigner(settings.api_key, settings.api_secret, clock=clock, recv_window_ms=settings.recv_window_ms)


class AsterRest:
    """Typed calls to the Aster REST API; create with ``async with AsterRest.open(settings) as rest``."""

    def __init__(
        self,
        settings: AsterSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        sign_in_thread: bool = True,
    ) -> None:
        self.settings = settings
        self._sign_in_thread = sign_in_thread
        self.clock = ServerClock(clock)
        self.usage = UsageGauge()
        self._client = client
        # Requests go straight to the client's connection pool (keep-alive, one per venue): the client's own
        # layers (merging URL and default headers, auth, redirects, cookie jar, building the response) cost
        # about a third of each call's CPU, and exits are one call after another on the event loop.
        self._transport = client._transport_for_url(client.base_url)
        self._base = str(client.base_url).rstrip("/")
        self._headers = dict(client.headers)  # User-Agent, Accept, Accept-Encoding, Connection: keep-alive
        self._extensions = {"timeout": httpx.Timeout(settings.request_timeout_seconds).as_dict()}
        self._signer = make_signer(settings, self.clock)
        self._v3 = settings.auth == "v3"
        self._prefix = "/fapi/v3" if self._v3 else "/fapi/v1"
        self._positions_path = "/fapi/v3/positionRisk" if self._v3 else "/fapi/v2/positionRisk"
        self._balance_path = "/fapi/v3/balance" if self._v3 else "/fapi/v2/balance"

    def __repr__(self) -> str:
        return f"AsterRest({self.settings.rest_url!r}, auth={self.settings.auth!r})"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: AsterSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sign_in_thread: bool = True,
    ) -> AsyncIterator[AsterRest]:
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
            yield cls(settings, client, clock=clock, sign_in_thread=sign_in_thread)

    # --- market data -------------------------------------------------------------------------------------

    async def server_time(self) -> int:
        data = await self._call("GET", f"{self._prefix}/time", security=Security.NONE)
        server_ms = data.get("serverTime") if isinstance(data, dict) else None
        if isinstance(server_ms, bool) or not isinstance(server_ms, int):
            raise OutcomeUnknown(f"unreadable server time: {fields.show(data)}", request=f"GET {self._prefix}/time")
        return server_ms

    async def sync_time(self) -> float:
        """Measure the venue's clock offset (midpoint of the round trip); returns it in milliseconds."""
        sent_at = self.clock.local()
        server_ms = await self.server_time()
        offset = self.clock.update(server_ms, sent_at, self.clock.local())
        log.info("aster clock offset %.0f ms (server - local)", offset)
        return offset

    async def exchange_info(self) -> codec.ExchangeInfo:
        path = f"{self._prefix}/exchangeInfo"
        return self._parsed(
            codec.parse_exchange_info, await self._call("GET", path, security=Security.NONE), f"GET {path}"
        )

    async def premium_index(self, symbol: str | None = None) -> list[MarkPrice]:
        path = f"{self._prefix}/premiumIndex"
        params = [("symbol", symbol)] if symbol else []
        return self._parsed(
            codec.parse_mark_prices, await self._call("GET", path, params, security=Security.NONE), f"GET {path}"
        )

    # --- orders ------------------------------------------------------------------------------------------

    async def new_order(self, order: OrderRequest) -> OrderState:
        path = f"{self._prefix}/order"
        return self._parsed(
            codec.parse_order, await self._call("POST", path, codec.order_params(order)), f"POST {path}"
        )

    async def batch_orders(self, orders: Sequence[OrderRequest]) -> list[BatchResult]:
        """One ``POST batchOrders`` (the caller keeps it <= 5); refused items come back as typed errors in place."""
        path = f"{self._prefix}/batchOrders"
        data = await self._call("POST", path, [("batchOrders", codec.batch_orders_param(orders))])
        return self._batch_items(data, len(orders), f"POST {path}")

    async def cancel_order(self, symbol: str, client_id: str) -> OrderState:
        path = f"{self._prefix}/order"
        data = await self._call("DELETE", path, [("symbol", symbol), ("origClientOrderId", client_id)])
        return self._parsed(codec.parse_order, data, f"DELETE {path}")

    async def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> list[BatchResult]:
        """One ``DELETE batchOrders`` by client order id (the caller keeps it <= 10); per-item errors in place."""
        path = f"{self._prefix}/batchOrders"
        data = await self._call(
            "DELETE", path, [("symbol", symbol), ("origClientOrderIdList", codec.client_ids_param(client_ids))]
        )
        return self._batch_items(data, len(client_ids), f"DELETE {path}")

    async def query_order(self, symbol: str, client_id: str) -> OrderState:
        path = f"{self._prefix}/order"
        data = await self._call("GET", path, [("symbol", symbol), ("origClientOrderId", client_id)])
        return self._parsed(codec.parse_order, data, f"GET {path}")

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        path = f"{self._prefix}/openOrders"
        data = await self._call("GET", path, [("symbol", symbol)] if symbol else [], raw_list=True)
        return self._parsed(codec.parse_orders, data, f"GET {path}")

    # --- account -----------------------------------------------------------------------------------------

    async def position_risk(self, symbol: str | None = None) -> list[PositionState]:
        """Every non-zero position, or one symbol's (v2 path with v1 auth, v3 path with v3 auth)."""
        data = await self._call("GET", self._positions_path, [("symbol", symbol)] if symbol else (), raw_list=True)
        return self._parsed(codec.parse_positions, data, f"GET {self._positions_path}")

    async def balance(self) -> Decimal:
        """The USDT wallet balance (v2 path with v1 auth, v3 path with v3 auth; weight 5)."""
        data = await self._call("GET", self._balance_path)
        return self._parsed(codec.parse_balance, data, f"GET {self._balance_path}")

    async def position_mode(self) -> bool:
        """True when the account is in hedge (dual-side) mode."""
        path = f"{self._prefix}/positionSide/dual"
        data = await self._call("GET", path)
        dual = data.get("dualSidePosition") if isinstance(data, dict) else None
        if isinstance(dual, str) and dual in ("true", "false"):
            dual = dual == "true"
        if not isinstance(dual, bool):
            raise OutcomeUnknown(f"unreadable position mode: {fields.show(data)}", request=f"GET {path}")
        return dual

    async def set_position_mode(self, hedge: bool) -> None:
        """Switch hedge/one-way mode; already being in that mode (-4059) counts as success."""
        path = f"{self._prefix}/positionSide/dual"
        try:
            await self._call("POST", path, [("dualSidePosition", "true" if hedge else "false")])
        except VenueError as exc:
            if exc.code != NO_CHANGE_NEEDED:
                raise

    async def change_leverage(self, symbol: str, leverage: int) -> int:
        """``POST leverage``: the symbol's initial leverage; returns the leverage the venue says it set.

        An answer naming another leverage (or none) proves nothing about the account: ``OutcomeUnknown``.
        """
        path = f"{self._prefix}/leverage"
        request = f"POST {path}"
        data = await self._call("POST", path, [("symbol", symbol), ("leverage", str(leverage))])
        set_to = data.get("leverage") if isinstance(data, dict) else None
        if isinstance(set_to, str) and set_to.isdigit():
            set_to = int(set_to)
        if isinstance(set_to, bool) or not isinstance(set_to, int):
            raise OutcomeUnknown(f"unreadable leverage answer: {fields.show(data)}", request=request)
        if set_to != leverage:
            raise OutcomeUnknown(f"asked for leverage {leverage}, the venue answered {set_to}", request=request)
        return set_to

    # --- user data stream --------------------------------------------------------------------------------

    async def create_listen_key(self) -> str:
        """The account's listenKey (the venue returns the live one, extended, if there is one)."""
        path = f"{self._prefix}/listenKey"
        data = await self._call("POST", path, security=Security.KEY)
        key = data.get("listenKey") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            raise OutcomeUnknown("answer without a listenKey", request=f"POST {path}")
        return key

    async def keepalive_listen_key(self) -> None:
        await self._call("PUT", f"{self._prefix}/listenKey", security=Security.KEY)

    async def delete_listen_key(self) -> None:
        await self._call("DELETE", f"{self._prefix}/listenKey", security=Security.KEY)

    # --- plumbing ----------------------------------------------------------------------------------------

    def _parsed(self, parse: Callable[[Any], Parsed], data: Any, request: str) -> Parsed:
        """A malformed answer proves nothing about what the venue did: report it as an unknown outcome."""
        try:
            return parse(data)
        except MalformedMessage as exc:
            raise OutcomeUnknown(f"unreadable answer: {exc}", request=request) from exc

    def _batch_items(self, data: Any, expected: int, request: str) -> list[BatchResult]:
        if not isinstance(data, list) or len(data) != expected:
            raise OutcomeUnknown(
                f"batch answer is not a list of {expected} items: {fields.show(data)}", request=request
            )
        out: list[BatchResult] = []
        for item in data:
            err = codec.error_body(item)
            if err is not None:
                error = error_for(None, err[0], err[1], request=request)
                if isinstance(error, OutcomeUnknown):
                    raise error  # the gateway must look every order of the call up before resending
                out.append(error)
            else:
                out.append(self._parsed(codec.parse_order, item, request))
        return out

    async def _call(
        self,
        method: str,
        path: str,
        params: Params = (),
        *,
        security: Security = Security.SIGNED,
        raw_list: bool = False,
    ) -> Any:
        """Send one request (re-signed on the one allowed retry) and return its decoded JSON.

        ``raw_list``: a successful answer that is a JSON array comes back as its bytes, for the codec's typed
        decoding (an array is never an error body, so nothing is lost by not parsing it here).
        """
        request = f"{method} {path}"
        for attempt in range(2):
            prepared = await self._prepare(method, params, security)
            try:
                return await self._send(method, path, prepared, request, raw_list)
            except ClockSkew:
                if attempt or security is Security.NONE:
                    raise
                log.warning("aster: %s refused for clock skew; re-syncing the clock and retrying once", request)
                await self.sync_time()
            except NonceExpired:
                if attempt or not self._v3:
                    raise
                log.warning("aster: %s refused for an expired nonce; retrying once with a fresh nonce", request)
        raise AssertionError("unreachable")

    async def _prepare(self, method: str, params: Params, security: Security) -> SignedRequest:
        in_body = method != "GET"
        if security is Security.NONE:
            return SignedRequest(encode_params(params), b"")
        signer = self._signer
        if isinstance(signer, Eip712Signer) and self._sign_in_thread:  # v3
            # secp256k1 signing is CPU work: keep it off the trio thread. The nonce reads the clock,
            # which belongs to the trio thread, so it is taken here.
            v3_sign = signer.sign if security is Security.SIGNED else signer.unsigned
            nonce = signer.next_nonce()
            return await trio.to_thread.run_sync(functools.partial(v3_sign, params, in_body=in_body, nonce=nonce))
        sign = signer.sign if security is Security.SIGNED else signer.unsigned
        return sign(params, in_body=in_body)

    async def _send(self, method: str, path: str, prepared: SignedRequest, request: str, raw_list: bool = False) -> Any:
        url = f"{self._base}{path}?{prepared.query}" if prepared.query else self._base + path
        headers = {**self._headers, **prepared.headers} if prepared.headers else self._headers
        request_ = httpx.Request(
            method, url, content=prepared.body or None, headers=headers, extensions=self._extensions
        )
        try:
            response = await self._transport.handle_async_request(request_)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise OutcomeUnknown(
                f"no answer within {self.settings.request_timeout_seconds}s ({type(exc).__name__})", request=request
            ) from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknown(f"connection failed ({type(exc).__name__}: {exc})", request=request) from exc
        self.usage.update(response.headers)
        if raw_list and 200 <= response.status_code < 300 and response.content[:1] == b"[":
            return response.content
        return _decode(response, request)


def _decode(response: httpx.Response, request: str) -> Any:
    """The answer's JSON, or the typed error it stands for."""
    status = response.status_code
    try:
        data = orjson.loads(response.content) if response.content else None
        readable = True
    except orjson.JSONDecodeError:
        data, readable = None, False
    err = codec.error_body(data)
    if 200 <= status < 300:
        if not readable:
            raise OutcomeUnknown(f"HTTP {status} with an unreadable body: {response.content[:200]!r}", request=request)
        if err is None:
            return data
    code, msg = err if err is not None else (None, "")
    if not msg and isinstance(data, dict) and isinstance(data.get("msg"), str):
        msg = data["msg"]
    raise error_for(status, code, msg, request=request, retry_after=response.headers.get("Retry-After"))
