"""Lighter's REST rate limits per account tier, over a rolling minute.

The venue's rule (docs, "Rate Limits"): premium accounts spend 24,000 weight a rolling minute,
each request costing its endpoint's weight; standard accounts get 60 requests a minute, unweighted,
except that no tier may exceed what 24,000 weight allows (so 40 a minute of a weight-600 endpoint).
Both are one budget of 24,000 units here: a standard request costs ``max(400, weight)``, a premium
one ``weight``. The default tier is unlimited so functional tests never trip it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from posmon.sim.lighter import errors as e
from posmon.sim.lighter.errors import LighterError

WINDOW_SECONDS = 60.0
BUDGET = 24_000

#: Endpoint weights from the docs; every other endpoint weighs 300.
WEIGHTS = {
    "/api/v1/sendTx": 6,
    "/api/v1/sendTxBatch": 6,
    "/api/v1/nextNonce": 6,
    "/api/v1/accountInactiveOrders": 100,
    "/api/v1/recentTrades": 600,
    "/api/v1/trades": 600,
}
DEFAULT_WEIGHT = 300


@dataclass(frozen=True, slots=True)
class Tier:
    """An account tier: its rate limit and the order latency the venue adds."""

    name: str
    limited: bool
    floor: int  # minimum cost of one request, in weight units
    maker_delay: float  # seconds before a maker (resting) order takes effect
    taker_delay: float  # seconds before a taker order takes effect


UNLIMITED = Tier("unlimited", limited=False, floor=0, maker_delay=0.0, taker_delay=0.0)
PREMIUM = Tier("premium", limited=True, floor=0, maker_delay=0.0, taker_delay=0.0)
STANDARD = Tier("standard", limited=True, floor=400, maker_delay=0.2, taker_delay=0.3)


def weight(path: str) -> int:
    return WEIGHTS.get(path, DEFAULT_WEIGHT)


class RateLimiter:
    """Spent weight per client address over the last ``WINDOW_SECONDS`` (refused requests cost nothing)."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier
        self._spent: dict[str, deque[tuple[float, int]]] = {}

    def admit(self, ip: str, path: str, now: float) -> None:
        """Spend the request's cost or raise the venue's 429."""
        if not self.tier.limited:
            return
        cost = max(self.tier.floor, weight(path))
        window = self._spent.setdefault(ip, deque())
        while window and window[0][0] <= now - WINDOW_SECONDS:
            window.popleft()
        used = sum(c for _, c in window)
        if used + cost > BUDGET:
            retry = max(1, int(window[0][0] + WINDOW_SECONDS - now) + 1) if window else 1
            raise LighterError(e.TOO_MANY_REQUESTS, "Too Many Requests!", status=429, retry_after=retry)
        window.append((now, cost))

    def remaining(self, ip: str, now: float) -> int:
        window = self._spent.get(ip, deque())
        return BUDGET - sum(c for t, c in window if t > now - WINDOW_SECONDS)
