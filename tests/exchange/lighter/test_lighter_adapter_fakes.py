"""A strict fake of Lighter's REST API (behind ``httpx.MockTransport``) and a fake signer, for the adapter tests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx

from posmon.exchange.lighter.settings import LighterSettings

ACCOUNT = 281474
KEY = "0x" + "ab" * 40
NOW = 1_722_337_200.0


def settings(**kw: Any) -> LighterSettings:
    base: dict[str, Any] = {
        "rest_url": "https://lighter.test",
        "ws_url": "wss://lighter.test",
        "account_index": ACCOUNT,
        "api_private_key": KEY,
    }
    return LighterSettings(**{**base, **kw})


class FakeSigner:
    """Signs nothing: the tx_info is the arguments as Lighter's JSON field names, so the fake venue can check them."""

    def __init__(self) -> None:
        self.signed = 0

    def create_order(self, **kw: Any) -> tuple[int, str]:
        self.signed += 1
        names = {
            "market_index": "MarketIndex",
            "client_order_index": "ClientOrderIndex",
            "base_amount": "BaseAmount",
            "price": "Price",
            "is_ask": "IsAsk",
            "order_type": "Type",
            "time_in_force": "TimeInForce",
            "reduce_only": "ReduceOnly",
            "trigger_price": "TriggerPrice",
            "order_expiry": "OrderExpiry",
            "nonce": "Nonce",
        }
        return 14, json.dumps({names[k]: (int(v) if isinstance(v, bool) else v) for k, v in kw.items()})

    def cancel_order(self, *, market_index: int, order_index: int, nonce: int) -> tuple[int, str]:
        self.signed += 1
        return 15, json.dumps({"MarketIndex": market_index, "Index": order_index, "Nonce": nonce})

    def create_auth_token(self, *, deadline: int) -> str:
        return f"token-until-{deadline}"


def order_json(tx: dict[str, Any], *, status: str = "open", filled: str = "0", order_index: int = 2**48 + 1) -> dict:
    return {
        "order_index": order_index,
        "client_order_index": tx["ClientOrderIndex"],
        "market_index": tx["MarketIndex"],
        "initial_base_amount": str(tx["BaseAmount"] / 10**5),
        "filled_base_amount": filled,
        "filled_quote_amount": "0",
        "remaining_base_amount": "0",
        "price": str(tx["Price"] / 10),
        "is_ask": bool(tx["IsAsk"]),
        "type": "market" if tx["Type"] == 1 else "limit",
        "time_in_force": "immediate-or-cancel" if tx["TimeInForce"] == 0 else "good-till-time",
        "reduce_only": bool(tx["ReduceOnly"]),
        "trigger_price": "0",
        "status": status,
    }


class FakeLighter:
    """Answers like Lighter: nonces must come in order, code 200 means accepted, errors as ``{code, message}``."""

    def __init__(self) -> None:
        self.nonce = 100
        self.nonce_fetches = 0
        self.requests: list[httpx.Request] = []
        self.txs: list[tuple[int, dict[str, Any]]] = []
        self.active: list[dict[str, Any]] = []
        self.inactive: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []
        self.faults: list[httpx.Response | Exception] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.faults and path.startswith("/api/v1/send"):
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        q = request.url.params
        if path == "/api/v1/nextNonce":
            assert (q["account_index"], q["api_key_index"]) == (str(ACCOUNT), "3")
            self.nonce_fetches += 1
            return httpx.Response(200, json={"code": 200, "nonce": self.nonce})
        if path == "/api/v1/orderBookDetails":
            return httpx.Response(
                200,
                json={
                    "code": 200,
                    "order_book_details": [
                        {
                            "symbol": "BTC",
                            "market_id": 1,
                            "market_type": "perp",
                            "status": "active",
                            "size_decimals": 5,
                            "price_decimals": 1,
                            "min_base_amount": "0.0002",
                            "min_quote_amount": "10",
                            "mark_price": "60000.0",
                        },
                        {
                            "symbol": "ETH",
                            "market_id": 0,
                            "market_type": "perp",
                            "status": "active",
                            "size_decimals": 4,
                            "price_decimals": 2,
                            "min_base_amount": "0.005",
                            "min_quote_amount": "10",
                            "mark_price": "3000.00",
                        },
                    ],
                    "spot_order_book_details": [],
                },
            )
        if path == "/api/v1/account":
            assert (q["by"], q["value"]) == ("index", str(ACCOUNT))
            return httpx.Response(
                200,
                json={
                    "code": 200,
                    "total": 1,
                    "accounts": [{"index": ACCOUNT, "collateral": "1000", "positions": self.positions}],
                },
            )
        if path in ("/api/v1/accountActiveOrders", "/api/v1/accountInactiveOrders"):
            if not request.headers.get("authorization", "").startswith("token-until-"):
                return httpx.Response(400, json={"code": 20001, "message": "invalid auth"})
            pool = self.active if path.endswith("ActiveOrders") and "Inactive" not in path else self.inactive
            orders = [o for o in pool if o["market_index"] == int(q["market_id"])]
            return httpx.Response(200, json={"code": 200, "orders": orders})
        if path == "/api/v1/sendTx":
            form = parse_qs(request.content.decode())
            return self._accept([int(form["tx_type"][0])], [form["tx_info"][0]])
        if path == "/api/v1/sendTxBatch":
            form = parse_qs(request.content.decode())
            return self._accept(json.loads(form["tx_types"][0]), json.loads(form["tx_infos"][0]))
        return httpx.Response(404, json={"code": 404, "message": "not found"})

    def _accept(self, types: list[int], infos: list[str]) -> httpx.Response:
        txs = [json.loads(i) for i in infos]
        nonces = [tx["Nonce"] for tx in txs]
        if nonces != list(range(nonces[0], nonces[0] + len(nonces))):
            return httpx.Response(400, json={"code": 21105, "message": "batch nonces are not consecutive"})
        if nonces[0] != self.nonce:
            return httpx.Response(400, json={"code": 21104, "message": "invalid nonce"})
        self.nonce += len(txs)
        for tx_type, tx in zip(types, txs, strict=True):
            self.txs.append((tx_type, tx))
            if tx_type == 14 and tx["Type"] == 0:
                self.active.append(order_json(tx))
        hashes = [f"0x{n:04x}" for n in nonces]
        return httpx.Response(
            200,
            json={
                "code": 200,
                "tx_hash": hashes[0] if len(hashes) == 1 else hashes,
                "predicted_execution_time_ms": 1,
                "volume_quota_remaining": 1000,
            },
        )
