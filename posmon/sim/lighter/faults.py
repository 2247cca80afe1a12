"""Scripted misbehaviour of HTTP requests by path: delays and failures (503), before or after executing.

The nasty case is ``after_execute``: the transaction went in (its nonce is spent, the order is on
the account) but the client only sees a 503, so it must look the order up before resending.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpFault:
    kind: str  # "fail" | "delay"
    status: int = 503
    seconds: float = 0.0
    after_execute: bool = False


class HttpFaults:
    """Pending faults per path, consumed one per request in the order queued."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[HttpFault]] = {}
        self.nonce_errors = 0  # next sendTx/sendTxBatch calls answering 21104 whatever their nonce

    def add(self, path: str, fault: HttpFault, n: int = 1) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._pending.setdefault(path, deque()).extend([fault] * n)

    def take(self, path: str) -> HttpFault | None:
        pending = self._pending.get(path)
        return pending.popleft() if pending else None

    def pending(self, path: str) -> int:
        return len(self._pending.get(path, ()))

    def clear(self) -> None:
        self._pending.clear()
        self.nonce_errors = 0
