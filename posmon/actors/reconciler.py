"""The account sweep: one whole-account read handed to every position actor, on a timer and on demand.

A live account changes in ways no order update describes (liquidation, auto-deleveraging, a close from the
venue's web page, a frame lost in a reconnect window), so nothing may depend on one frame arriving. As
NautilusTrader runs its reconciliation on a timer, posmon reads positions and open orders of the whole account
every ``reconcile_interval_seconds`` and after every user-stream connection (the first one too: fills between
the start-up snapshot and the stream's first frame would otherwise be lost), splits the read per symbol in one
pass, and gives each actor its slice: one read for the whole account, within the rate budget, never on the tick
path (the actors fold the slice in between ticks, and a read that finds nothing to do changes nothing).
Positions nobody watches yet get an actor, which adopts them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from posmon.actors.directory import PositionDirectory, UnknownSymbol
from posmon.actors.messages import AccountSnapshot, FetchAccount, Priority, Reconcile
from posmon.metrics import Metrics

log = logging.getLogger(__name__)


class AccountReconciler:
    def __init__(self, venue: str, directory: PositionDirectory, gateway: trio.MemorySendChannel[Any],
                 metrics: Metrics, *, interval: float, reply_timeout: float,
                 clock: Callable[[], float]) -> None:
        """``interval``: seconds between sweeps (0: only on demand); ``clock``: the actors' clock (read times)."""
        self.venue = venue
        self.directory = directory
        self.gateway = gateway
        self.metrics = metrics
        self.interval = interval
        self.reply_timeout = reply_timeout
        self.clock = clock
        self.sweeps = 0  # completed sweeps (status and tests)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep every ``interval`` seconds; the user stream sweeps on its own after each connection."""
        task_status.started()
        if self.interval <= 0:
            await trio.sleep(math.inf)
        while True:
            await trio.sleep(self.interval)
            await self.sweep(Priority.HOUSEKEEPING)

    async def sweep(self, priority: Priority = Priority.PROTECT) -> bool:
        """Read the whole account once and hand each actor its slice; False when the read failed."""
        read_at = self.clock()
        send, recv = trio.open_memory_channel[AccountSnapshot](1)
        async with send, recv:
            await self.gateway.send(FetchAccount(None, send, priority))
            snap: AccountSnapshot | None = None
            with trio.move_on_after(self.reply_timeout):
                snap = await recv.receive()
        if snap is None or snap.error is not None:
            why = "no answer" if snap is None else snap.error
            log.error("account sweep of %s failed (%s); the next sweep or reconnect tries again", self.venue, why)
            self.metrics.inc("reconcile_sweeps", venue=self.venue, result="failed")
            return False
        split = snap.by_symbol()
        for symbol, side in self.directory:
            self.directory.inbox(symbol, side).send_nowait(Reconcile(snap.of(symbol, split), read_at))
        for p in snap.positions:
            if p.qty <= 0 or p.symbol in self.directory.unmonitored or (p.symbol, p.side) in self.directory:
                continue
            log.warning("found a %s %s position of %s (%s) not yet watched; protecting it", p.symbol,
                        p.side.value, self.venue, p.qty)
            try:
                self.directory.inbox(p.symbol, p.side, snapshot=snap.of(p.symbol, split))
            except UnknownSymbol:
                log.error("NEEDS A HUMAN: %s %s position on %s has no trading rules; not protected",
                          p.symbol, p.side.value, self.venue)
        self.sweeps += 1
        self.metrics.inc("reconcile_sweeps", venue=self.venue, result="ok")
        return True
