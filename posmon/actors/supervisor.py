"""One-for-one supervision: a failed actor is restarted with backoff, within a restart budget.

An actor rebuilds its state from the store when it starts, so a restart loses
nothing that was decided. If an actor keeps failing, the budget runs out and
the daemon stops loudly: a monitor that silently stopped watching positions
would be worse than one that is visibly down.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from posmon.metrics import Metrics
from posmon.store.errors import StoreBusy

log = logging.getLogger(__name__)

ActorRun = Callable[..., Awaitable[Any]]


class RestartBudgetExhausted(Exception):
    """An actor failed more often than its restart budget allows; the daemon must stop."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    budget: int = 5  # restarts allowed within ``window`` seconds
    window: float = 60.0
    backoff: float = 0.5  # first delay; doubles with each restart still inside the window
    backoff_max: float = 30.0
    # Awaited with the actor's name and error once its budget is exhausted, before the daemon stops: every other
    # task is still alive then, so the operator's notification can get out (posmon.notify bounds the wait).
    on_exhausted: Callable[[str, BaseException], Awaitable[None]] | None = None


async def supervise(
    name: str,
    make_run: Callable[[], ActorRun],
    policy: RestartPolicy,
    metrics: Metrics,
    *,
    on_restart: Callable[[], None] | None = None,
    fail_fast: bool = False,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``make_run()`` (a fresh actor each time) until it returns, restarting it when it raises.

    What the first incarnation reports when it has started is reported to the caller. ``fail_fast``: a
    failure before the first start is not retried but raised, for the caller to report (a port in use).
    """
    recent: deque[float] = deque()
    started = False
    while True:
        try:
            async with trio.open_nursery() as nursery:
                value = await nursery.start(make_run())
                if not started:
                    started = True
                    task_status.started(value)
            return
        except Exception as exc:
            if fail_fast and not started:
                raise
            busy = _store_busy(exc)
            if busy is not None and busy.wait_writable is not None:
                # Another process holds the store's lock: nothing was written, nothing sent. Wait for it, then
                # restart (the actor reloads from the store); a lock is not the actor's fault, so no budget spent.
                log.warning("actor %s waits for the store: %s", name, busy)
                metrics.inc("store_busy_waits", actor=name.split(":")[0])
                await busy.wait_writable()
                if on_restart is not None:
                    on_restart()
                continue
            now = trio.current_time()
            recent.append(now)
            while recent and recent[0] < now - policy.window:
                recent.popleft()
            metrics.inc("actor_restarts", actor=name.split(":")[0])
            if len(recent) > policy.budget:
                log.critical(
                    "actor %s failed %d times in %.0fs; restart budget exhausted, stopping the daemon",
                    name,
                    len(recent),
                    policy.window,
                )
                metrics.inc("restart_budget_exhausted", actor=name.split(":")[0])
                if policy.on_exhausted is not None:
                    await policy.on_exhausted(name, exc)
                raise RestartBudgetExhausted(f"actor {name} exceeded its restart budget") from exc
            delay = min(policy.backoff_max, policy.backoff * 2 ** (len(recent) - 1))
            log.error(
                "actor %s failed (%r); restart %d/%d in %.1fs",
                name,
                exc,
                len(recent),
                policy.budget,
                delay,
                exc_info=exc,
            )
            await trio.sleep(delay)
            if on_restart is not None:
                on_restart()


def _store_busy(exc: BaseException) -> StoreBusy | None:
    """The ``StoreBusy`` behind a failure (trio may wrap it in exception groups), if that is what it was."""
    if isinstance(exc, StoreBusy):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            if (found := _store_busy(sub)) is not None:
                return found
    return None
