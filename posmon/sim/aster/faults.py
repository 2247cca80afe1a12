"""Scripted failures of HTTP requests, by path: delays, stalls, 503s before or after execution, 429/418.

``SimExchange`` can already fail its calls; these act one layer out, where a real
client meets them: the request is slow, never answered, or answered 503 although
the order went in. Each queued fault is consumed by the next matching request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio


@dataclass(frozen=True, slots=True)
class HttpFault:
    """One scripted misbehaviour of a request."""

    kind: str  # "delay" | "stall" | "fail" | "reject"
    seconds: float = 0.0  # delay; for "reject" the Retry-After
    after_execute: bool = False
    status: int = 503  # "reject": 429 (rate limited) or 418 (IP banned)


class HttpFaults:
    """Pending faults per (method, path); a method of None matches every method."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str | None, str], deque[HttpFault]] = {}
        self.release = trio.Event()  # set to answer every stalled request (it then runs)

    def add(self, path: str, fault: HttpFault, n: int = 1, method: str | None = None) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        self._pending.setdefault((method.upper() if method else None, path), deque()).extend([fault] * n)

    def take(self, method: str, path: str) -> HttpFault | None:
        for key in ((method, path), (None, path)):
            pending = self._pending.get(key)
            if pending:
                return pending.popleft()
        return None

    def pending(self, path: str, method: str | None = None) -> int:
        return len(self._pending.get((method.upper() if method else None, path), ()))

    def release_stalled(self) -> None:
        self.release.set()
        self.release = trio.Event()

    def clear(self) -> None:
        self._pending.clear()
