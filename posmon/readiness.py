"""Whether the daemon's start-up is over: the store open, the venue reached, the account read and every position
actor done with its start-up reconcile, so that it acts on ticks.

Liveness (``/health``) is not readiness: a daemon still reconciling a large book is alive but would not yet close a
tranche whose TP the mark runs through. ``/ready`` (the container's ``HEALTHCHECK``) and systemd's ``READY=1``
(``posmon.sdnotify``) both read this one object; it moves forward only (``starting`` -> ``ready``), and a daemon
that later wedges is found by the status call timing out, not by this state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import trio

__all__ = ["Readiness", "State"]

State = Literal["starting", "ready"]
Listener = Callable[["Readiness"], None]


class Readiness:
    """The start-up phase and a one-line ``detail`` for operators (systemd's ``STATUS=``, ``/ready``'s body)."""

    def __init__(self, detail: str = "loading the venue's trading rules") -> None:
        self._ready = trio.Event()
        self.detail = detail
        self._listeners: list[Listener] = []

    @property
    def state(self) -> State:
        return "ready" if self._ready.is_set() else "starting"

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(self)`` (synchronously, it must not block) on every change of state or detail."""
        self._listeners.append(listener)

    def progress(self, detail: str) -> None:
        """A start-up step begins; ignored once ready (start-up never restarts)."""
        if self.is_ready or detail == self.detail:
            return
        self.detail = detail
        self._changed()

    def set_ready(self, detail: str) -> None:
        if self.is_ready:
            return
        self.detail = detail
        self._ready.set()
        self._changed()

    async def wait(self) -> None:
        await self._ready.wait()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener(self)
