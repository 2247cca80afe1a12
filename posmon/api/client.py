"""A small synchronous client of the control API, for the CLI: one method per endpoint, typed failures.

Synchronous on purpose: a CLI command makes one request and exits, so an event loop would buy nothing.
Decimals go out as strings and come back as ``Decimal`` so no value passes through binary floating point.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_TIMEOUT_SECONDS = 30.0  # an open waits (bounded by the daemon) for the entry's fill


class ApiUnreachable(Exception):
    """No answer: nothing listening, a network problem, or no reply in time (the request may still have acted)."""


class ApiRefused(Exception):
    """The daemon answered with an error status; ``field`` names the input it refused, if any."""

    def __init__(self, status: int, message: str, field: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/monitor/status")

    def open(
        self,
        side: str,
        symbol: str,
        size_usd: Decimal,
        leverage: int,
        sl_percent: Decimal,
        rr_ratio: tuple[Decimal, Decimal],
        plan: Mapping[str, Any] | None = None,
        venue: str | None = None,
    ) -> dict[str, Any]:
        """``size_usd`` is the position's notional in USD; ``leverage`` is set on the venue before the entry;
        ``plan``: exit-plan fields (``posmon.plan_fields``) overriding the symbol's configured ones."""
        body: dict[str, Any] = {
            "symbol": symbol,
            "size_usd": str(size_usd),
            "leverage": leverage,
            "sl_percent": str(sl_percent),
            "rr_ratio": [str(rr_ratio[0]), str(rr_ratio[1])],
        }
        for name, value in (plan or {}).items():
            body[name] = _exact(value)
        if venue:
            body["venue"] = venue
        return self._call("POST", f"/api/orders/{side.lower()}", body)

    def close_position(self, symbol: str, side: str | None = None, venue: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("side", side), ("venue", venue)) if v}
        return self._call("POST", f"/api/positions/{_seg(symbol)}/close", body)

    def close_tranche(self, tranche_id: int, symbol: str | None = None, venue: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("symbol", symbol), ("venue", venue)) if v}
        return self._call("POST", f"/api/tranches/{tranche_id}/close", body)

    def stop(self, symbol: str, venue: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/monitor/stop/{_seg(symbol)}{_venue_query(venue)}")

    def resume(self, symbol: str, venue: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/monitor/resume/{_seg(symbol)}{_venue_query(venue)}")

    def pairs(self) -> dict[str, Any]:
        return self._call("GET", "/api/pairs")

    def open_pair(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body``: ``POST /api/pairs``'s (``posmon.api.pair_validation``); Decimals go out as strings."""
        return self._call("POST", "/api/pairs", {k: _exact(v) for k, v in body.items()})

    def link_pair(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/pairs/link", {k: _exact(v) for k, v in body.items()})

    def close_pair(self, pair_id: int) -> dict[str, Any]:
        return self._call("POST", f"/api/pairs/{pair_id}/close")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A GET has no body; every other request sends JSON (``{}`` when empty): the API demands that type."""
        try:
            response = self._http.request(method, path, json=body if body is not None or method == "GET" else {})
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(
                f"no answer from {self._http.base_url} within the timeout ({type(exc).__name__}); "
                "the request may still have been carried out: check 'posmon status'"
            ) from None
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach the posmon daemon at {self._http.base_url}: {exc}") from None
        try:
            payload = json.loads(response.content, parse_float=Decimal) if response.content else {}
        except ValueError:
            payload = {"error": response.text[:200] or response.reason_phrase}
        if not isinstance(payload, dict):
            payload = {"error": str(payload)}
        if response.is_error:
            raise ApiRefused(
                response.status_code, str(payload.get("error") or response.reason_phrase), payload.get("field")
            )
        return payload


def _venue_query(venue: str | None) -> str:
    return f"?venue={_seg(venue)}" if venue else ""


def _seg(value: str) -> str:
    return quote(value, safe="")


def _exact(value: Any) -> Any:
    """Decimals as strings (no binary floating point on the way), in lists too; integers as they are."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value
