"""The account sweep: one whole-account read handed to every position actor, on a timer and on demand.

A live account changes in ways no order update describes (liquidation, auto-deleveraging, a close from the
venue's web page, a frame lost in a reconnect window), so nothing may depend on one frame arriving. As
NautilusTrader runs its reconciliation on a timer, posmon reads positions and open orders of the whole account
every ``reconcile_interval_seconds`` and after every user-stream connection (the first one too: fills between
the start-up snapshot and the stream's first frame would otherwise be lost), splits the read per symbol in one
pass, and gives each actor its slice: one read for the whole account, within the rate budget, never on the tick
path (the actors fold the slice in between ticks, and a read that finds nothing to do changes nothing).
Positions nobody watches yet get an actor, which adopts them; so do keys where one of posmon's own orders rests
with no actor to own it (a placement that landed after it was written off, on a side that went flat while the
daemon was down): the new actor cancels it as an orphan.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from posmon.actors.directory import PositionDirectory, UnknownSymbol
from posmon.actors.messages import AccountSnapshot, FetchAccount, GatewayRequest, Priority, Reconcile
from posmon.domain.orders import OrderSide, Side
from posmon.domain.protection import parse_client_order_id
from posmon.metrics import Metrics

log = logging.getLogger(__name__)
# Actors a sweep hands their slice to before it lets trio poll the network again.
HAND_OVER_BATCH = 50
_HEDGE_SIDES = {"LONG": Side.LONG, "SHORT": Side.SHORT}


class AccountReconciler:
    def __init__(
        self,
        venue: str,
        directory: PositionDirectory,
        gateway: trio.MemorySendChannel[GatewayRequest],
        metrics: Metrics,
        *,
        interval: float,
        reply_timeout: float,
        prefix: str,
        clock: Callable[[], float],
    ) -> None:
        """``interval``: seconds between sweeps (0: only on demand); ``clock``: the actors' clock (read times)."""
        self.venue = venue
        self.directory = directory
        self.gateway = gateway
        self.metrics = metrics
        self.interval = interval
        self.reply_timeout = reply_timeout
        self.clock = clock
        self.prefix = prefix
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
        for n, (symbol, side) in enumerate(list(self.directory), 1):
            self.directory.inbox(symbol, side).send_nowait(Reconcile(snap.of(symbol, split), read_at))
            if n % HAND_OVER_BATCH == 0:
                # Actors woken together all run before trio next reads a socket: 2,000 at once held every price
                # frame and exit for a second. A few dozen at a time keep the stream flowing meanwhile.
                await trio.lowlevel.checkpoint()
        for p in snap.positions:
            if p.qty <= 0 or p.symbol in self.directory.unmonitored or (p.symbol, p.side) in self.directory:
                continue
            log.warning(
                "found a %s %s position of %s (%s) not yet watched; protecting it",
                p.symbol,
                p.side.value,
                self.venue,
                p.qty,
            )
            self._start(p.symbol, p.side, snap.of(p.symbol, split), "position")
        directory = self.directory
        for o in snap.open_orders:
            # posmon's resting orders close positions: the side they close owns them.
            hedge = _HEDGE_SIDES.get(o.position_side)
            side = hedge if hedge is not None else Side.LONG if o.side is OrderSide.SELL else Side.SHORT
            if (o.symbol, side) in directory:
                continue  # owned (200,000 of them at a 100,000-tranche start-up): no client id to parse
            if parse_client_order_id(self.prefix, o.client_id) is None or o.symbol in directory.unmonitored:
                continue
            log.warning(
                "%s rests on %s %s %s with no actor to own it; it will be cancelled as an orphan",
                o.client_id,
                self.venue,
                o.symbol,
                side.value,
            )
            self._start(o.symbol, side, snap.of(o.symbol, split), "order")
        self.sweeps += 1
        self.metrics.inc("reconcile_sweeps", venue=self.venue, result="ok")
        return True

    def _start(self, symbol: str, side: Side, snapshot: AccountSnapshot, what: str) -> None:
        try:
            self.directory.inbox(symbol, side, snapshot=snapshot)
        except UnknownSymbol:
            log.error(
                "NEEDS A HUMAN: %s %s %s on %s has no trading rules; not protected",
                symbol,
                side.value,
                what,
                self.venue,
            )
