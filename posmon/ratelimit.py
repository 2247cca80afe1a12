"""Token buckets sized from a venue's per-minute limits.

Venues count weight in one-minute windows. A bucket holding ``capacity`` tokens
and refilling ``rate`` per second can spend at most capacity + 60 * rate in any
60 s, so ``for_limit`` keeps that sum within the published limit (with a safety
margin where the limit allows one). The bucket must hold the heaviest single
call, else that call could never be paced correctly: ``for_limit`` is told the
heaviest call's weight and refuses a limit it cannot fit into.
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
    def for_limit(
        cls,
        per_minute: float,
        now: float,
        *,
        max_weight: float = 1.0,
        burst_fraction: float = 0.2,
        safety: float = 0.95,
    ) -> TokenBucket:
        if max_weight >= per_minute and per_minute > 1:
            raise ValueError(f"a call of weight {max_weight} cannot be paced under a limit of {per_minute}/min")
        budget = max(per_minute * safety, min(max_weight, per_minute))
        capacity = max(1.0, per_minute * burst_fraction, max_weight)
        capacity = min(capacity, budget)
        # capacity + 60 * rate <= per_minute, and the rate stays positive even when the margin is all used.
        rate = max(budget - capacity, per_minute - budget, 0.0) / 60.0 or per_minute / 60.0
        return cls(capacity=capacity, rate=rate, tokens=capacity, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, weight: float, now: float) -> float:
        """Seconds until ``weight`` tokens can be taken (0 when they can be taken now)."""
        if weight > self.capacity:
            raise ValueError(f"weight {weight} exceeds the bucket's capacity {self.capacity}")
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        short = weight - self.tokens
        # A float residue after sleeping exactly the computed wait must not cost another (tiny) sleep.
        return 0.0 if short <= 1e-9 * max(1.0, weight) else short / self.rate

    def take(self, weight: float, now: float) -> None:
        """Spend ``weight`` tokens (call after ``wait_time`` said 0)."""
        self._refill(now)
        self.tokens -= weight

    def headroom(self, now: float) -> float:
        """The fraction of the burst budget free at ``now`` (0 while paused), read without spending or refilling.

        For the operator's view (the status report, the dashboard and the ``rate_limit_headroom`` gauge, which
        reads it at each scrape): an idle daemon's budget refills with no request to update it.
        """
        if now < self.paused_until:
            return 0.0
        tokens = self.tokens + max(0.0, now - self.updated) * self.rate
        return max(0.0, min(self.capacity, tokens) / self.capacity)

    def pause(self, until: float) -> None:
        """No tokens until ``until`` (a 429's Retry-After or a 418 ban)."""
        self.paused_until = max(self.paused_until, until)
        self.tokens = 0.0
        self.updated = max(self.updated, until)
