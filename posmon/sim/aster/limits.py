"""The venue's REST rate limits: request weight per IP and orders per account, in fixed one-minute windows.

A client that paces itself with a token bucket must survive the venue's real rule, which
is coarser: everything counted in the current calendar minute of the server clock, a 429
once over, and an IP ban (418) for whoever keeps sending after the 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from posmon.sim.aster import errors as e
from posmon.sim.aster.errors import ApiError
from posmon.sim.counters import ServerCounters

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Limits published in ``exchangeInfo.rateLimits`` and enforced; ``ban_seconds`` is the 418's length."""

    weight_per_minute: int = 2400
    orders_per_minute: int = 1200
    ban_seconds: float = 120.0


@dataclass(slots=True)
class RateCounters(ServerCounters):
    """What tests read: the busiest window seen and how often the limits bit (besides the requests seen)."""

    peak_weight: int = 0
    peak_orders: int = 0
    rate_limited: int = 0  # HTTP 429 answers (weight or orders)
    banned: int = 0  # HTTP 418 answers


@dataclass(slots=True)
class _Window:
    index: int = -1
    used: int = 0
    limited: bool = False  # a 429 was answered in this window


@dataclass(frozen=True, slots=True)
class Usage:
    """The counts reported in the ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-1M`` headers."""

    weight: int
    orders: int

    def headers(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self.weight), "X-MBX-ORDER-COUNT-1M": str(self.orders)}


class RateLimiter:
    """Counts every request at arrival (refused ones too, as the venue does) and decides 429 / 418."""

    def __init__(self, config: RateLimitConfig, counters: RateCounters) -> None:
        self.config = config
        self.counters = counters
        self._weights: dict[str, _Window] = {}
        self._orders: dict[str, _Window] = {}
        self._banned_until: dict[str, float] = {}

    def usage(self, ip: str, account: str, now: float) -> Usage:
        index = _index(now)
        return Usage(_current(self._weights.get(ip), index), _current(self._orders.get(account), index))

    def admit(self, ip: str, account: str, weight: int, orders: int, now: float) -> Usage:
        """Count the request; raise the 418/429 ``ApiError`` (headers included) when it must be refused."""
        index = _index(now)
        weights = _roll(self._weights, ip, index)
        order_window = _roll(self._orders, account, index)
        banned_until = self._banned_until.get(ip, 0.0)
        if now < banned_until:
            self.counters.banned += 1
            usage = Usage(weights.used, order_window.used)
            raise self._ban_error(ip, banned_until, now, usage)
        weights.used += weight
        order_window.used += orders
        self.counters.peak_weight = max(self.counters.peak_weight, weights.used)
        self.counters.peak_orders = max(self.counters.peak_orders, order_window.used)
        usage = Usage(weights.used, order_window.used)
        if weights.used > self.config.weight_per_minute:
            if weights.limited:
                # Kept sending after a 429 in the same window: the venue bans the IP.
                until = now + self.config.ban_seconds
                self._banned_until[ip] = until
                self.counters.banned += 1
                raise self._ban_error(ip, until, now, usage)
            weights.limited = True
            self.counters.rate_limited += 1
            raise ApiError(
                e.TOO_MANY_REQUESTS,
                f"Too many requests; current limit of IP({ip}) is {self.config.weight_per_minute} requests per "
                "minute. Please use the websocket for live updates to avoid polling the API.",
                status=429,
                headers={**usage.headers(), "Retry-After": str(_retry_after(now, index))},
            )
        if orders and order_window.used > self.config.orders_per_minute:
            self.counters.rate_limited += 1
            raise ApiError(
                e.TOO_MANY_ORDERS,
                f"Too many new orders; current limit is {self.config.orders_per_minute} orders per MINUTE.",
                status=429,
                headers={**usage.headers(), "Retry-After": str(_retry_after(now, index))},
            )
        return usage

    def _ban_error(self, ip: str, until: float, now: float, usage: Usage) -> ApiError:
        return ApiError(
            e.TOO_MANY_REQUESTS,
            f"Way too many requests; IP({ip}) banned until {round(until * 1000)}. "
            "Please use the websocket for live updates to avoid bans.",
            status=418,
            headers={**usage.headers(), "Retry-After": str(max(1, math.ceil(until - now)))},
        )


def _index(now: float) -> int:
    return math.floor(now / WINDOW_SECONDS)


def _current(window: _Window | None, index: int) -> int:
    return window.used if window is not None and window.index == index else 0


def _roll(windows: dict[str, _Window], key: str, index: int) -> _Window:
    window = windows.get(key)
    if window is None or window.index != index:
        window = windows[key] = _Window(index)
    return window


def _retry_after(now: float, index: int) -> int:
    """Whole seconds until the next window opens (at least 1)."""
    return max(1, math.ceil((index + 1) * WINDOW_SECONDS - now))
