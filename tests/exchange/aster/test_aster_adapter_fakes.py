"""A strict, in-process fake of Aster's REST API (an ``httpx.MockTransport`` handler) and its self-tests.

The adapter tests drive ``AsterRest``/``AsterVenue`` against it: it checks every signature over the exact
text it received (v1 HMAC with the API-key header, v3 EIP-712 recovered with eth-account), the clock window
(-1021) and the nonce window (-4225), enforces the doc's parameter rules (-1106 for parameters that do not
apply to an order type, no ``reduceOnly`` in hedge mode) and records what arrived, with the trio time, so
tests assert on what the venue would have seen. It lives in a ``test_`` module because the adapter may only
add files named ``tests/exchange/aster/test_aster_adapter*.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import trio
from eth_account import Account
from eth_account.messages import encode_typed_data

from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.signing import DOMAIN_NAME, DOMAIN_VERSION, VERIFYING_CONTRACT

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
# The doc's demonstration wallet (asterdex/api-docs, v3 "Example of POST /fapi/v3/order").
PRIVATE_KEY = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1"
SIGNER = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0"
USER = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e"
NOW = 1_700_000_000.0  # the local wall clock every adapter test runs at (seconds)
REST_URL = "http://127.0.0.1:9"  # never contacted: the MockTransport answers

EXCHANGE_INFO: dict[str, Any] = {
    "timezone": "UTC",
    "serverTime": 1565613908500,
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1800},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 900},
    ],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "pair": "BTCUSDT",
            "contractType": "PERPETUAL",
            "status": "TRADING",
            "pricePrecision": 2,
            "quantityPrecision": 3,  # must not be used as tick/step
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.5", "maxPrice": "1000000", "tickSize": "0.5"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.1500",
                    "multiplierDown": "0.8500",
                    "multiplierDecimal": 4,
                },
            ],
        },
        {
            "symbol": "DOGEUSDT",
            "pair": "DOGEUSDT",
            "contractType": "PERPETUAL",
            "status": "TRADING",
            "pricePrecision": 5,
            "quantityPrecision": 0,
            "filters": [
                {"filterType": "PRICE_FILTER", "maxPrice": "300", "minPrice": "0.0001", "tickSize": "0.0001"},
                {"filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": "1", "stepSize": "1"},
                {"filterType": "MIN_NOTIONAL", "minNotional": "1"},
            ],
        },
        {"symbol": "NOFILTERUSDT", "status": "TRADING", "filters": [{"filterType": "MAX_NUM_ORDERS", "limit": 5}]},
    ],
}


@dataclass(slots=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    params: dict[str, str]
    text: str  # the parameter string exactly as it arrived (query or body)
    in_body: bool
    headers: httpx.Headers
    at: float  # trio.current_time() when it arrived


@dataclass
class FakeAster:
    """Aster's REST API as far as posmon uses it, with switches to make it fail the ways the real one does."""

    auth: str = "v1"
    skew_ms: int = 0  # server clock - local clock
    clock: Callable[[], float] = field(default=lambda: NOW)
    recv_window_max: int = 60_000
    hedge_mode: bool = True
    exchange_info: dict[str, Any] = field(default_factory=lambda: orjson.loads(orjson.dumps(EXCHANGE_INFO)))
    positions: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # path -> queued (status, json body, headers) answers served before the real handling
    canned: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    # client id -> (code, msg) a placement of that id is refused with
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)
    listen_key: str = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    listen_key_alive: bool = True
    seen: list[Seen] = field(default_factory=list)
    used_weight: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1000))

    @property
    def prefix(self) -> str:
        return "/fapi/v3" if self.auth == "v3" else "/fapi/v1"

    def server_ms(self) -> int:
        return int(self.clock() * 1000) + self.skew_ms

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def answer(self, method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Serve this answer to the next ``method path`` (path without the version prefix, e.g. ``/order``)."""
        self.canned.setdefault((method, path), []).append((status, body, headers or {}))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            s for s in self.seen if (method is None or s.method == method) and (path is None or s.path.endswith(path))
        ]

    # --- the handler ---------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        in_body = request.method != "GET"
        text = request.content.decode() if in_body else request.url.query.decode()
        if in_body and request.url.query:
            return _error(400, -1100, "parameters must be in the body for this method in the fake")
        if in_body and text and request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return _error(400, -1100, "form body expected")
        params = dict(parse_qsl(text, keep_blank_values=True))
        path = request.url.path
        self.seen.append(Seen(request.method, path, params, text, in_body, request.headers, _now()))
        self.used_weight += 1
        short = path.removeprefix(self.prefix)
        if self.canned.get((request.method, short)):
            status, body, headers = self.canned[(request.method, short)].pop(0)
            return httpx.Response(
                status,
                content=orjson.dumps(body) if not isinstance(body, bytes) else body,
                headers={**headers, **self._usage()},
            )
        try:
            result = self._route(request.method, path, params, text, request.headers)
        except _Refusal as r:
            return _error(r.status, r.code, r.msg, self._usage())
        return httpx.Response(200, content=orjson.dumps(result), headers=self._usage())

    def _usage(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)}

    def _route(self, method: str, path: str, params: dict[str, str], text: str, headers: httpx.Headers) -> Any:
        p = self.prefix
        public = {("GET", f"{p}/time"), ("GET", f"{p}/exchangeInfo"), ("GET", f"{p}/premiumIndex")}
        if (method, path) in public:
            if "signature" in params or "X-MBX-APIKEY" in headers:
                raise _Refusal(400, -1101, "public endpoint called with credentials")
            if path.endswith("/time"):
                return {"serverTime": self.server_ms()}
            if path.endswith("/exchangeInfo"):
                return self.exchange_info
            return (
                self.marks if "symbol" not in params else next(m for m in self.marks if m["symbol"] == params["symbol"])
            )
        if path == f"{p}/listenKey":
            self._authenticate(params, text, headers, signed=self.auth == "v3")
            return self._listen_key(method)
        self._authenticate(params, text, headers, signed=True)
        positions_path = "/fapi/v3/positionRisk" if self.auth == "v3" else "/fapi/v2/positionRisk"
        match method, path:
            case "POST", x if x == f"{p}/order":
                return self._place(_business(params))
            case "POST", x if x == f"{p}/batchOrders":
                items = orjson.loads(params["batchOrders"])
                if not 1 <= len(items) <= 5:
                    raise _Refusal(400, -4082, "Invalid number of batch place orders.")
                return [self._place_item(item) for item in items]
            case "DELETE", x if x == f"{p}/order":
                return self._cancel(params["symbol"], params["origClientOrderId"])
            case "DELETE", x if x == f"{p}/batchOrders":
                ids = orjson.loads(params["origClientOrderIdList"])
                return [self._cancel_item(params["symbol"], cid) for cid in ids]
            case "GET", x if x == f"{p}/order":
                order = self.orders.get(params["origClientOrderId"])
                if order is None or order["symbol"] != params["symbol"]:
                    raise _Refusal(400, -2013, "Order does not exist.")
                return order
            case "GET", x if x == f"{p}/openOrders":
                return [
                    o
                    for o in self.orders.values()
                    if o["status"] in ("NEW", "PARTIALLY_FILLED")
                    and ("symbol" not in params or o["symbol"] == params["symbol"])
                ]
            case "GET", x if x == positions_path:
                return self.positions
            case "GET", x if x == f"{p}/positionSide/dual":
                return {"dualSidePosition": self.hedge_mode}
            case "POST", x if x == f"{p}/positionSide/dual":
                wanted = params["dualSidePosition"] == "true"
                if wanted == self.hedge_mode:
                    raise _Refusal(400, -4059, "No need to change position side.")
                self.hedge_mode = wanted
                return {"code": 200, "msg": "success"}
        raise _Refusal(404, -1000, f"no such endpoint in the fake: {method} {path}")

    def _authenticate(self, params: dict[str, str], text: str, headers: httpx.Headers, *, signed: bool) -> None:
        if self.auth == "v1":
            if headers.get("X-MBX-APIKEY") != API_KEY:
                raise _Refusal(401, -2015, "Invalid API-key, IP, or permissions for action.")
            if not signed:
                if "signature" in params:
                    raise _Refusal(400, -1101, "USER_STREAM takes the key only")
                return
            payload, _, signature = text.rpartition("&signature=")
            expected = hmac.new(API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not payload or not hmac.compare_digest(signature, expected):
                raise _Refusal(400, -1022, "Signature for this request is not valid.")
            timestamp, window = int(params["timestamp"]), int(params.get("recvWindow", "5000"))
            if (
                window > self.recv_window_max
                or timestamp >= self.server_ms() + 1000
                or self.server_ms() - timestamp > window
            ):
                raise _Refusal(400, -1021, "Timestamp for this request is outside of the recvWindow.")
            return
        if "X-MBX-APIKEY" in headers or "timestamp" in params:
            raise _Refusal(400, -1106, "v3 takes no API key or timestamp")
        msg, _, signature = text.rpartition("&signature=")
        recovered = Account.recover_message(encode_typed_data(full_message=typed_data(msg)), signature=signature)
        if recovered != params.get("signer") or params.get("user") != USER:
            raise _Refusal(400, -1022, "Signature for this request is not valid.")
        if abs(int(params["nonce"]) // 1000 - self.server_ms()) > 60_000:
            raise _Refusal(400, -4225, "Nonce Expired")

    def _listen_key(self, method: str) -> Any:
        if method == "POST":
            self.listen_key_alive = True
            return {"listenKey": self.listen_key}
        if not self.listen_key_alive:
            raise _Refusal(400, -1125, "This listenKey does not exist.")
        if method == "DELETE":
            self.listen_key_alive = False
        return {}

    def _place_item(self, item: dict[str, str]) -> Any:
        try:
            return self._place(item)
        except _Refusal as r:
            return {"code": r.code, "msg": r.msg}

    def _place(self, p: dict[str, str]) -> dict[str, Any]:
        cid = p.get("newClientOrderId", "")
        if cid in self.refuse:
            code, msg = self.refuse[cid]
            raise _Refusal(400, code, msg)
        kind = p.get("type")
        allowed = {"symbol", "side", "positionSide", "type", "newClientOrderId", "reduceOnly", "quantity"}
        allowed |= {
            "LIMIT": {"timeInForce", "price"},
            "MARKET": set(),
            "STOP_MARKET": {"stopPrice", "workingType"},
            "TAKE_PROFIT_MARKET": {"stopPrice", "workingType"},
        }.get(kind or "", set())
        extra = sorted(set(p) - allowed)
        if extra:
            raise _Refusal(400, -1106, f"Parameter '{extra[0]}' sent when not required.")
        if "reduceOnly" in p and p.get("positionSide") in ("LONG", "SHORT"):
            raise _Refusal(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        if (p.get("positionSide", "BOTH") == "BOTH") == self.hedge_mode:
            raise _Refusal(400, -4061, "Order's position side does not match user's setting.")
        if kind == "LIMIT" and p.get("timeInForce") != "GTC":
            raise _Refusal(400, -1102, "Mandatory parameter 'timeInForce' was not sent.")
        if any("E" in p.get(k, "") or "e" in p.get(k, "") for k in ("quantity", "price", "stopPrice")):
            raise _Refusal(400, -1111, "Precision is over the maximum defined for this asset.")
        if cid in self.orders and self.orders[cid]["status"] == "NEW":
            raise _Refusal(400, -4116, "ClientOrderId is duplicated.")
        order = {
            "clientOrderId": cid,
            "cumQty": "0",
            "cumQuote": "0",
            "executedQty": "0",
            "orderId": next(self._ids),
            "avgPrice": "0.00000",
            "origQty": p["quantity"],
            "price": p.get("price", "0"),
            "reduceOnly": p.get("reduceOnly") == "true",
            "side": p["side"],
            "positionSide": p["positionSide"],
            "status": "NEW",
            "stopPrice": p.get("stopPrice", "0"),
            "closePosition": False,
            "symbol": p["symbol"],
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": kind,
            "origType": kind,
            "updateTime": self.server_ms(),
            "workingType": p.get("workingType", "CONTRACT_PRICE"),
            "priceProtect": False,
        }
        self.orders[cid] = order
        return order

    def _cancel_item(self, symbol: str, cid: str) -> Any:
        try:
            return self._cancel(symbol, cid)
        except _Refusal as r:
            return {"code": r.code, "msg": r.msg}

    def _cancel(self, symbol: str, cid: str) -> dict[str, Any]:
        order = self.orders.get(cid)
        if order is None or order["symbol"] != symbol or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise _Refusal(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        return order


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # called outside trio (the fake's own synchronous checks)
        return 0.0


class _Refusal(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps({"code": code, "msg": msg}), headers=headers or {})


def _business(params: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in params.items() if k not in ("recvWindow", "timestamp", "signature", "nonce", "user", "signer")
    }


def typed_data(msg: str, chain_id: int = 1666) -> dict[str, Any]:
    """The typed-data document exactly as Aster's doc writes it (built independently of the adapter)."""
    return {
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
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": VERIFYING_CONTRACT,
        },
        "message": {"msg": msg},
    }


def settings(auth: str = "v1", **overrides: Any) -> AsterSettings:
    """Settings pointing at the fake (v1 keys or the doc's demonstration wallet)."""
    table: dict[str, Any] = {"rest_url": REST_URL, "ws_url": "ws://127.0.0.1:9"}
    if auth == "v1":
        table |= {"api_key": API_KEY, "api_secret": API_SECRET}
    else:
        table |= {"signer_private_key": PRIVATE_KEY, "user": USER}
    table |= overrides
    return AsterSettings.from_config(table, {})


# --- the fake's own checks ----------------------------------------------------------------------------------


def test_fake_refuses_a_request_whose_signature_does_not_cover_the_sent_text() -> None:
    fake = FakeAster()
    body = f"symbol=BTCUSDT&timestamp={int(NOW * 1000)}&signature=00"
    response = fake.handle(
        httpx.Request(
            "POST",
            f"{REST_URL}/fapi/v1/order",
            content=body.encode(),
            headers={"X-MBX-APIKEY": API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    assert response.status_code == 400 and orjson.loads(response.content)["code"] == -1022


def test_fake_refuses_a_v3_request_signed_by_another_wallet() -> None:
    fake = FakeAster(auth="v3")
    other = Account.create()
    msg = f"symbol=BTCUSDT&nonce={int(NOW * 1_000_000)}&user={USER}&signer={SIGNER}"
    signature = Account.sign_message(encode_typed_data(full_message=typed_data(msg)), other.key).signature.hex()
    response = fake.handle(httpx.Request("GET", f"{REST_URL}/fapi/v3/openOrders?{msg}&signature=0x{signature}"))
    assert orjson.loads(response.content)["code"] == -1022
