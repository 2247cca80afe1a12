"""The user stream: the account's order and position events, routed to their position actors.

Routing is by (symbol, position side) in hedge mode; in one-way mode our own
orders are routed by the tranche their client id names, other programs' fills
by the side they open (a liquidation's by the side it closes). Position frames
go to the actor of their (symbol, side), started on demand: they are evidence
of changes no order update describes. After every connection, the first one
too, one whole-account read is handed to every actor (events sent while
disconnected are gone) and positions nobody watches yet get an actor, which
adopts them.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import assert_never

import trio

from posmon.actors.directory import PositionDirectory, UnknownSymbol
from posmon.actors.reconciler import AccountReconciler
from posmon.domain.orders import OrderSide, PositionState, Purpose, Side
from posmon.domain.protection import parse_client_order_id
from posmon.exchange.errors import VenueError
from posmon.exchange.events import MalformedMessage, OrderUpdate, PositionUpdate
from posmon.exchange.venue import StreamClosed, Venue
from posmon.metrics import Metrics
from posmon.store.store import Store

log = logging.getLogger(__name__)


class UserStream:
    def __init__(
        self,
        venue: Venue,
        directory: PositionDirectory,
        reconciler: AccountReconciler,
        store: Store,
        metrics: Metrics,
        *,
        hedge_mode: bool,
        prefix: str,
        backoff_max: float = 30.0,
    ) -> None:
        self.venue = venue
        self.directory = directory
        self.reconciler = reconciler
        self.store = store
        self.metrics = metrics
        self.hedge_mode = hedge_mode
        self.prefix = prefix
        self.last_frame_at: float | None = None  # trio time of the newest frame (status shows its age)
        self.backoff_max = backoff_max

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        backoff = 0.5
        started = False
        while True:
            try:
                async with self.venue.connect_user_stream() as stream:
                    log.info("user stream of %s connected", self.venue.name)
                    self.metrics.set("user_stream_up", 1, venue=self.venue.name)
                    # Every connection, the first one too: what happened before it (since the start-up
                    # snapshot, or while disconnected) reaches the actors only through a read.
                    await self.reconciler.sweep()
                    if not started:
                        started = True
                        task_status.started()
                    backoff = 0.5
                    while True:
                        await self.on_frame(await stream.receive())
            except (StreamClosed, OSError, VenueError) as exc:
                log.warning("user stream of %s dropped (%s); reconnecting and reconciling", self.venue.name, exc)
            self.metrics.set("user_stream_up", 0, venue=self.venue.name)
            self.metrics.inc("user_stream_reconnects", venue=self.venue.name)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    async def on_frame(self, frame: bytes) -> None:
        self.last_frame_at = trio.current_time()
        try:
            events = self.venue.parse_user_frame(frame)
        except MalformedMessage as exc:
            self.metrics.inc("user_frames_dropped", venue=self.venue.name)
            log.warning("dropped a malformed user-stream frame from %s: %s", self.venue.name, exc)
            return
        self.metrics.inc("user_frames", venue=self.venue.name)
        for event in events:
            match event:
                case PositionUpdate():
                    await self._on_position(event)
                case OrderUpdate():
                    side = self._route(event)
                    if side is None:
                        continue
                    if event.symbol in self.directory.unmonitored and (event.symbol, side) not in self.directory:
                        continue  # the operator stopped monitoring it: start nothing for it
                    try:
                        inbox = self.directory.inbox(event.symbol, side, reconcile=not event.is_fill)
                    except UnknownSymbol:
                        self.metrics.inc("user_events_unroutable", venue=self.venue.name)
                        log.error(
                            "NEEDS A HUMAN: %s %s on %s, a symbol posmon has no trading rules for; not protected",
                            event.symbol,
                            side.value,
                            self.venue.name,
                        )
                        continue
                    await inbox.send(event)
                case unexpected:
                    assert_never(unexpected)

    async def _on_position(self, u: PositionUpdate) -> None:
        """Hand a position frame to its actor; an open position nobody watches yet gets one."""
        p = u.position
        if p.symbol in self.directory.unmonitored:
            return
        frames = [u]
        if not self.hedge_mode and p.qty > 0:
            # One-way: a position on one side means none on the other (a flip shows only the new side).
            other = Side.SHORT if p.side is Side.LONG else Side.LONG
            frames.append(PositionUpdate(PositionState(p.symbol, other, Decimal(0), Decimal(0)), u.time))
        for f in frames:
            key = (f.position.symbol, f.position.side)
            if key not in self.directory and f.position.qty <= 0:
                continue
            try:
                # A new actor needs no read of its own: the frame is the news, and it is confirmed by a read
                # only if no order update explains it within the actor's grace.
                inbox = self.directory.inbox(*key, reconcile=False)
            except UnknownSymbol:
                self.metrics.inc("user_events_unroutable", venue=self.venue.name)
                log.error(
                    "NEEDS A HUMAN: %s %s position on %s, a symbol posmon has no trading rules for; not protected",
                    p.symbol,
                    p.side.value,
                    self.venue.name,
                )
                return
            await inbox.send(f)

    def _route(self, u: OrderUpdate) -> Side | None:
        own = parse_client_order_id(self.prefix, u.client_id)
        if own is None and not u.is_fill:
            return None  # another program's order: only its fills matter
        if u.position_side in ("LONG", "SHORT"):
            return Side(u.position_side)
        if own is not None:
            side = self.store.tranche_side(own[0])
            if side is None and own[1] is Purpose.ENTRY:  # an operator entry's first fill: no tranche yet
                return Side.LONG if u.side is OrderSide.BUY else Side.SHORT
            return side
        opening = Side.LONG if u.side is OrderSide.BUY else Side.SHORT
        if u.reduce_only or u.forced is not None:  # a liquidation or ADL closes the other side
            return Side.SHORT if opening is Side.LONG else Side.LONG
        return opening
