"""The user stream: the account's order and position events, routed to their position actors.

Routing is by (symbol, position side) in hedge mode; in one-way mode our own
orders are routed by the tranche their client id names, other programs' fills
by the side they open. After every reconnect the actors reconcile against REST
(events sent while disconnected are gone) and positions nobody watches yet get
an actor, which adopts them.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from posmon.actors.directory import PositionDirectory, UnknownSymbol
from posmon.actors.messages import AccountSnapshot, FetchAccount, Priority, Reconcile
from posmon.domain.orders import OrderSide, Purpose, Side
from posmon.domain.protection import parse_client_order_id
from posmon.exchange.errors import VenueError
from posmon.exchange.events import MalformedMessage, OrderUpdate
from posmon.exchange.venue import StreamClosed, Venue
from posmon.metrics import Metrics
from posmon.store.store import Store

log = logging.getLogger(__name__)


class UserStream:
    def __init__(self, venue: Venue, directory: PositionDirectory, gateway: trio.MemorySendChannel[Any],
                 store: Store, metrics: Metrics, *, hedge_mode: bool, prefix: str,
                 reply_timeout: float = 60.0, backoff_max: float = 30.0) -> None:
        self.venue = venue
        self.directory = directory
        self.gateway = gateway
        self.store = store
        self.metrics = metrics
        self.hedge_mode = hedge_mode
        self.prefix = prefix
        self.reply_timeout = reply_timeout
        self.backoff_max = backoff_max

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        backoff = 0.5
        started = False
        while True:
            try:
                async with self.venue.connect_user_stream() as stream:
                    log.info("user stream of %s connected", self.venue.name)
                    self.metrics.set("user_stream_up", 1, venue=self.venue.name)
                    if started:
                        self.directory.broadcast(Reconcile())
                    await self.discover_positions()
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

    async def discover_positions(self) -> None:
        """Give every open position on the exchange an actor; a new actor adopts what it finds."""
        send, recv = trio.open_memory_channel[AccountSnapshot](1)
        async with send, recv:
            await self.gateway.send(FetchAccount(None, send, Priority.PROTECT))
            with trio.fail_after(self.reply_timeout):
                snap = await recv.receive()
        if snap.error is not None:
            log.error("cannot list positions of %s: %s", self.venue.name, snap.error)
            return
        for p in snap.positions:
            if p.symbol in self.directory.unmonitored:
                continue
            if (p.symbol, p.side) not in self.directory:
                log.info("found a %s %s position of %s not yet watched; protecting it", p.symbol, p.side, p.qty)
                try:
                    self.directory.inbox(p.symbol, p.side)
                except UnknownSymbol:
                    log.error("NEEDS A HUMAN: %s %s position on %s has no trading rules; not protected",
                              p.symbol, p.side.value, self.venue.name)

    async def on_frame(self, frame: bytes) -> None:
        try:
            events = self.venue.parse_user_frame(frame)
        except MalformedMessage as exc:
            self.metrics.inc("user_frames_dropped", venue=self.venue.name)
            log.warning("dropped a malformed user-stream frame from %s: %s", self.venue.name, exc)
            return
        self.metrics.inc("user_frames", venue=self.venue.name)
        for event in events:
            if isinstance(event, OrderUpdate):
                side = self._route(event)
                if side is None:
                    continue
                if event.symbol in self.directory.unmonitored and (event.symbol, side) not in self.directory:
                    continue  # the operator stopped monitoring it: start nothing for it
                try:
                    inbox = self.directory.inbox(event.symbol, side, reconcile=not event.is_fill)
                except UnknownSymbol:
                    self.metrics.inc("user_events_unroutable", venue=self.venue.name)
                    log.error("NEEDS A HUMAN: %s %s on %s, a symbol posmon has no trading rules for; not protected",
                              event.symbol, side.value, self.venue.name)
                    continue
                await inbox.send(event)

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
        if u.reduce_only:
            return Side.SHORT if opening is Side.LONG else Side.LONG
        return opening


