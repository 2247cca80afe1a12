"""Scripted failures of the simulated venue's REST calls.

Tests and chaos runs queue the next N failures of a named call; the exchange
asks for the pending fault of each call it serves. The nasty case is
``after_execute``: the call took effect but the client only sees a 503.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from posmon.exchange.errors import OutcomeUnknown, RateLimited, VenueError

CALL_NAMES = frozenset(
    {"load_rules", "place_orders", "cancel_orders", "query_order", "open_orders", "positions", "mark_prices"}
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted failure: raised before the call runs, or after it ran when ``after_execute``."""

    kind: str  # "unknown" | "rate_limited"
    after_execute: bool = False
    retry_after: float = 0.0

    def error(self, call: str) -> VenueError:
        if self.kind == "rate_limited":
            return RateLimited("Too many requests (HTTP 429).", retry_after=self.retry_after, code=-1003, request=call)
        return OutcomeUnknown("HTTP 503: Send status unknown; execution status unknown.", code=-1007, request=call)


class CallFaults:
    """Pending faults per call name, consumed one per call in the order they were queued."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[Fault]] = {}

    def fail_next(self, call: str, n: int = 1, *, after_execute: bool = False) -> None:
        """The next ``n`` calls raise ``OutcomeUnknown`` (after taking effect when ``after_execute``)."""
        self._queue(call, n, Fault("unknown", after_execute=after_execute))

    def rate_limit_next(self, call: str, n: int = 1, retry_after: float = 1.0) -> None:
        """The next ``n`` calls raise ``RateLimited`` without taking effect."""
        self._queue(call, n, Fault("rate_limited", retry_after=retry_after))

    def take(self, call: str) -> Fault | None:
        pending = self._pending.get(call)
        return pending.popleft() if pending else None

    def pending(self, call: str) -> int:
        return len(self._pending.get(call, ()))

    def clear(self) -> None:
        self._pending.clear()

    def _queue(self, call: str, n: int, fault: Fault) -> None:
        if call not in CALL_NAMES:
            raise ValueError(f"unknown call {call!r}; expected one of {sorted(CALL_NAMES)}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._pending.setdefault(call, deque()).extend([fault] * n)
