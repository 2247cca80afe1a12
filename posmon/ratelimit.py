"""Token buckets sized from a venue's per-minute limits.

Venues count weight in one-minute windows. A bucket holding ``burst`` tokens
and refilling ``rate`` per second can spend at most burst + 60 * rate in any
60 s, so ``for_limit`` keeps that sum under the published limit with a margin.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    updated: float
    paused_until: float = 0.0

    @classmethod
    def for_limit(cls, per_minute: int, now: float, *, burst_fraction: float = 0.2,
                  safety: float = 0.95) -> TokenBucket:
        capacity = max(1.0, per_minute * burst_fraction)
        rate = max(per_minute * safety - capacity, 1.0) / 60.0
        return cls(capacity=capacity, rate=rate, tokens=capacity, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, weight: float, now: float) -> float:
        """Seconds until ``weight`` tokens can be taken (0 when they can be taken now)."""
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        need = min(weight, self.capacity)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def take(self, weight: float, now: float) -> None:
        """Spend ``weight`` tokens (call after ``wait_time`` said 0); a call heavier than the bucket empties it."""
        self._refill(now)
        self.tokens -= min(weight, self.capacity)

    def pause(self, until: float) -> None:
        """No tokens until ``until`` (a 429's Retry-After or a 418 ban)."""
        self.paused_until = max(self.paused_until, until)
        self.tokens = 0.0
        self.updated = max(self.updated, until)
