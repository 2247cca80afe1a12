"""A one-price mailbox: the router overwrites it, the actor takes the newest.

Conflation is what keeps a slow actor from building a backlog of stale ticks:
the slot holds only the latest mark and puts at most one wake-up token in the
actor's inbox until the actor takes it. Gating keeps idle actors asleep: the
actor publishes its nearest trigger levels and a mark that reaches none of them
is only remembered (``last``), so a frame of a thousand symbols wakes just the
actors it can trigger.
"""

from __future__ import annotations

from decimal import Decimal

import trio

from posmon.actors.messages import PriceWake
from posmon.exchange.events import MarkPrice

_WAKE = PriceWake()


class PriceSlot:
    __slots__ = ("_armed", "_inbox", "gate", "last", "latest", "received_at", "sign")

    def __init__(self, inbox: trio.MemorySendChannel[PriceWake], sign: int = 1) -> None:
        """``inbox``: the actor's inbox, unbounded (the directory's), so a wake-up never waits for room."""
        self._inbox = inbox
        self._armed = False
        self.sign = sign  # +1 LONG, -1 SHORT: orients the gate levels like the actor's trigger heaps
        # (tp_gate, sl_gate) from the actor's TriggerBook; None = wake on every mark (no gate published yet).
        self.gate: tuple[Decimal | None, Decimal | None] | None = None
        self.last: MarkPrice | None = None  # the newest mark, woken for or not
        self.latest: MarkPrice | None = None  # a mark that may trigger something, not yet taken
        self.received_at = 0.0  # trio time the router saw the newest frame (for tick-to-order latency)

    def _may_trigger(self, price: Decimal) -> bool:
        if self.gate is None:
            return True
        tp, sl = self.gate
        return (tp is not None and self.sign * price >= tp) or (sl is not None and -self.sign * price >= sl)

    def put(self, mark: MarkPrice, received_at: float) -> None:
        self.last = mark
        if not self._may_trigger(mark.price):
            return
        self.latest = mark
        self.received_at = received_at
        if self._armed:
            return
        try:
            self._inbox.send_nowait(_WAKE)
            self._armed = True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def take(self) -> MarkPrice | None:
        """The newest mark, once; None when nothing new arrived since the last take."""
        self._armed = False
        mark, self.latest = self.latest, None
        return mark
