"""A one-price mailbox: the router overwrites it, the actor takes the newest.

Conflation is what keeps a slow actor from building a backlog of stale ticks:
the slot holds only the latest mark and puts at most one wake-up token in the
actor's inbox until the actor takes it.
"""

from __future__ import annotations

from typing import Any

import trio

from posmon.actors.messages import PriceWake
from posmon.exchange.events import MarkPrice

_WAKE = PriceWake()


class PriceSlot:
    __slots__ = ("_armed", "_inbox", "latest", "received_at")

    def __init__(self, inbox: trio.MemorySendChannel[Any]) -> None:
        self._inbox = inbox
        self._armed = False
        self.latest: MarkPrice | None = None
        self.received_at = 0.0  # trio time the router saw the newest frame (for tick-to-order latency)

    def put(self, mark: MarkPrice, received_at: float) -> None:
        self.latest = mark
        self.received_at = received_at
        if self._armed:
            return
        try:
            self._inbox.send_nowait(_WAKE)
            self._armed = True
        except trio.WouldBlock:
            pass  # inbox full: the actor will find the price when it next looks at the slot
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def take(self) -> MarkPrice | None:
        """The newest mark, once; None when nothing new arrived since the last take."""
        self._armed = False
        mark, self.latest = self.latest, None
        return mark
