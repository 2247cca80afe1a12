"""The price router: one per venue, owns the mark-price stream and fans prices out.

Each frame is parsed once; the newest mark per symbol goes into the price slot
of every position actor of that symbol. A malformed frame is counted and
skipped. A stream that goes quiet for ``stale_after`` seconds or drops is
reconnected with backoff and jitter. Whenever the stream is stale or down
(quiet for ``stale_after``, dropped, or still opening), REST mark prices are
polled every ``poll_interval`` until it delivers again, so an exit never waits
more than ``stale_after`` (plus one REST read) for a price, however long the
stream takes to come back.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

import trio

from posmon.actors.price_slot import PriceSlot
from posmon.exchange.errors import VenueError
from posmon.exchange.events import MalformedMessage, MarkPrice
from posmon.exchange.venue import StreamClosed, Venue
from posmon.metrics import Metrics

log = logging.getLogger(__name__)

REST_SHARE = 0.25  # at most this share of the venue's request budget goes to REST marks while stale


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbol: str
    slot: PriceSlot


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbol: str
    slot: PriceSlot


RouterRequest = Subscribe | Unsubscribe


class PriceRouter:
    def __init__(
        self,
        venue: Venue,
        control: trio.MemoryReceiveChannel[RouterRequest],
        metrics: Metrics,
        *,
        symbols: Sequence[str],
        stale_after: float = 3.0,
        poll_interval: float = 1.0,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.control = control
        self.metrics = metrics
        self.symbols = list(symbols)
        self.stale_after = stale_after
        # The REST fallback's calls bypass the order gateway: keep them to a quarter of the venue's request budget
        # (Lighter's Standard tier has 60 requests a minute in all; polling every second would take every one).
        lim = venue.limits
        self.poll_interval = max(poll_interval, lim.mark_prices_weight * 60 / (lim.weight_per_minute * REST_SHARE))
        self.backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._slots: dict[str, list[PriceSlot]] = defaultdict(list)
        self.latest: dict[str, MarkPrice] = {}
        self.last_frame_at: float | None = None
        self._alive_at = 0.0  # trio time of the last frame (or of the start): the stream is stale after it
        self._down = False  # the stream dropped or went stale and has not delivered since
        self._lost = trio.Event()  # wakes the REST fallback at once when the stream drops

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._alive_at = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_control)
            nursery.start_soon(self._rest_while_stale)
            task_status.started()
            await self._stream_forever()

    async def _serve_control(self) -> None:
        async for msg in self.control:
            match msg:
                case Subscribe():
                    self._slots[msg.symbol].append(msg.slot)
                    if (mark := self.latest.get(msg.symbol)) is not None:
                        msg.slot.put(mark, trio.current_time())
                case Unsubscribe():
                    if msg.slot in self._slots.get(msg.symbol, ()):
                        self._slots[msg.symbol].remove(msg.slot)
                case unexpected:
                    assert_never(unexpected)

    async def _stream_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self.venue.connect_prices(self.symbols) as stream:
                    log.info("price stream of %s connected", self.venue.name)
                    self.metrics.set("price_stream_up", 1, venue=self.venue.name)
                    while True:
                        frame = None
                        with trio.move_on_after(self.stale_after):
                            frame = await stream.receive()
                        if frame is None:
                            self.metrics.inc("price_stream_stale", venue=self.venue.name)
                            log.warning(
                                "price stream of %s silent for %.0fs; reconnecting (REST marks meanwhile)",
                                self.venue.name,
                                self.stale_after,
                            )
                            break
                        backoff = 0.5  # reset by a frame, not by a connect: a server that stalls every stream backs off
                        self.on_frame(frame)
            except (StreamClosed, OSError, VenueError) as exc:
                log.warning(
                    "price stream of %s dropped (%s); reconnecting (REST marks meanwhile)", self.venue.name, exc
                )
            self._down = True
            self._lost.set()
            self.metrics.set("price_stream_up", 0, venue=self.venue.name)
            self.metrics.inc("price_stream_reconnects", venue=self.venue.name)
            await trio.sleep(backoff * (0.5 + self._rng.random()))
            backoff = min(backoff * 2, self.backoff_max)

    def stale_in(self, now: float) -> float:
        """Seconds until the stream counts as stale (0 when it is: down, or silent for ``stale_after``)."""
        return 0.0 if self._down else max(0.0, self._alive_at + self.stale_after - now)

    async def _rest_while_stale(self) -> None:
        """Poll REST marks every ``poll_interval`` for as long as the stream is stale, down or reopening."""
        while True:
            wait = self.stale_in(trio.current_time())
            if wait > 0:
                with trio.move_on_after(wait):
                    await self._lost.wait()
                if self._lost.is_set():
                    self._lost = trio.Event()
                continue
            try:
                for mark in await self.venue.mark_prices():
                    self._deliver(mark, trio.current_time())
            except VenueError as exc:
                log.warning("REST mark prices of %s failed: %s", self.venue.name, exc)
            await trio.sleep(self.poll_interval)

    def on_frame(self, frame: bytes) -> None:
        now = trio.current_time()
        self.last_frame_at = self._alive_at = now
        self._down = False
        self.metrics.set("price_last_frame", now, venue=self.venue.name)
        try:
            marks = self.venue.parse_price_frame(frame)
        except MalformedMessage as exc:
            self.metrics.inc("price_frames_dropped", venue=self.venue.name)
            log.warning("dropped a malformed price frame from %s: %s", self.venue.name, exc)
            return
        self.metrics.inc("price_frames", venue=self.venue.name)
        for mark in marks:
            self._deliver(mark, now)

    def _deliver(self, mark: MarkPrice, now: float) -> None:
        self.latest[mark.symbol] = mark
        for slot in self._slots.get(mark.symbol, ()):
            slot.put(mark, now)
