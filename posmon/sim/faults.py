"""Scripted failures, one machinery for the whole simulated world.

Tests and chaos runs queue the next N failures of something named; whatever serves it takes the
pending fault of each call or request it serves, in the order they were queued. Two layers use it:

- ``CallFaults``: the matching engine's calls (``SimExchange.fail_next("place_orders")``), raised as
  the typed venue errors an in-process ``SimVenue`` caller sees;
- ``HttpFaults``: a protocol simulator's requests by path (and method), where a real client meets
  them: the request is slow (``delay``), never answered until released (``stall``), answered with an
  error (``fail``, ``reject``); each simulator says how its venue words the error.

The nasty case is ``after_execute``: the call took effect but the client only sees the failure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from posmon.exchange.errors import OutcomeUnknown, RateLimited, VenueError

K = TypeVar("K", bound=Hashable)
F = TypeVar("F")
R = TypeVar("R")


class FaultQueue(Generic[K, F]):
    """Pending faults per key, consumed one per call in the order they were queued."""

    def __init__(self) -> None:
        self._pending: dict[K, deque[F]] = {}

    def clear(self) -> None:
        self._pending.clear()

    def _queue(self, key: K, n: int, fault: F) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._pending.setdefault(key, deque()).extend([fault] * n)

    def _take(self, *keys: K) -> F | None:
        """The first pending fault of the first key that has one."""
        for key in keys:
            pending = self._pending.get(key)
            if pending:
                return pending.popleft()
        return None

    def _count(self, key: K) -> int:
        return len(self._pending.get(key, ()))


# ---- the matching engine's calls ------------------------------------------------------------------------------

CALL_NAMES = frozenset(
    {
        "load_rules",
        "balance",
        "place_orders",
        "cancel_orders",
        "query_order",
        "open_orders",
        "positions",
        "mark_prices",
        "set_leverage",
    }
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted failure of an engine call: raised before the call runs, or after it ran when ``after_execute``."""

    kind: str  # "unknown" | "rate_limited"
    after_execute: bool = False
    retry_after: float = 0.0

    def error(self, call: str) -> VenueError:
        if self.kind == "rate_limited":
            return RateLimited("Too many requests (HTTP 429).", retry_after=self.retry_after, code=-1003, request=call)
        return OutcomeUnknown("HTTP 503: Send status unknown; execution status unknown.", code=-1007, request=call)


class CallFaults(FaultQueue[str, Fault]):
    """Pending faults per ``SimExchange`` call name."""

    def fail_next(self, call: str, n: int = 1, *, after_execute: bool = False) -> None:
        """The next ``n`` calls raise ``OutcomeUnknown`` (after taking effect when ``after_execute``)."""
        self._named(call, n, Fault("unknown", after_execute=after_execute))

    def rate_limit_next(self, call: str, n: int = 1, retry_after: float = 1.0) -> None:
        """The next ``n`` calls raise ``RateLimited`` without taking effect."""
        self._named(call, n, Fault("rate_limited", retry_after=retry_after))

    def take(self, call: str) -> Fault | None:
        return self._take(call)

    def pending(self, call: str) -> int:
        return self._count(call)

    def _named(self, call: str, n: int, fault: Fault) -> None:
        if call not in CALL_NAMES:
            raise ValueError(f"unknown call {call!r}; expected one of {sorted(CALL_NAMES)}")
        self._queue(call, n, fault)


# ---- a protocol simulator's HTTP requests ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpFault:
    """One scripted misbehaviour of a request."""

    kind: str  # "delay" | "stall" | "fail" | "reject"
    seconds: float = 0.0  # delay; for "reject" the Retry-After
    after_execute: bool = False
    status: int = 503  # the HTTP status of a "fail" or "reject" (a reject: 429 rate limited, 418 IP banned)


class ClientGone(Exception):
    """The client hung up while its request was stalled; nobody is left to answer."""


class HttpFaults(FaultQueue[tuple[str | None, str], HttpFault]):
    """Pending faults per (method, path); a method of None matches every method.

    ``error`` turns a ``fail`` or ``reject`` into the exception the simulator answers it with.
    """

    def __init__(self, error: Callable[[HttpFault], Exception]) -> None:
        super().__init__()
        self._error = error
        self.release = trio.Event()  # set to answer every stalled request (it then runs)

    def add(self, path: str, fault: HttpFault, n: int = 1, method: str | None = None) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        self._queue((method.upper() if method else None, path), n, fault)

    def take(self, method: str, path: str) -> HttpFault | None:
        return self._take((method, path), (None, path))

    def pending(self, path: str, method: str | None = None) -> int:
        return self._count((method.upper() if method else None, path))

    def release_stalled(self) -> None:
        self.release.set()
        self.release = trio.Event()

    async def around(self, method: str, path: str, request: Any, execute: Callable[[], Awaitable[R]]) -> R:
        """Run ``execute`` with the request's pending fault applied before it, or after it when ``after_execute``.

        ``request`` is the starlette request (a stall listens on it for the client hanging up:
        ``ClientGone``).
        """
        fault = self.take(method, path)
        if fault is not None and not fault.after_execute:
            await self._misbehave(fault, request)
        result = await execute()
        if fault is not None and fault.after_execute:
            await self._misbehave(fault, request)
        return result

    async def _misbehave(self, fault: HttpFault, request: Any) -> None:
        """Wait, hold the request until released (or the client leaves), or fail it."""
        if fault.kind == "delay":
            await trio.sleep(fault.seconds)
        elif fault.kind == "stall":
            if not await _hold(self.release, request):
                raise ClientGone
        else:
            raise self._error(fault)


async def _hold(release: trio.Event, request: Any) -> bool:
    """Wait for ``release``; False if the client disconnected first."""
    released = False
    async with trio.open_nursery() as nursery:

        async def until_disconnect() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(until_disconnect)
        await release.wait()
        released = True
        nursery.cancel_scope.cancel()
    return released
