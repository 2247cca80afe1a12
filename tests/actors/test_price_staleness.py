"""Price staleness: a stream silent for ``stale_after`` (three missed 1 s mark frames) is declared stale and
reopened, and REST marks stand in from that moment until the stream delivers again, whether it dropped, stalled
while open (every reconnection too) or takes long to open, so a crossed mark reaches the actors within
``stale_after`` plus one poll."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D

import trio

from posmon.actors.price_router import PriceRouter, Subscribe
from posmon.actors.price_slot import PriceSlot
from posmon.exchange.events import MarkPrice
from posmon.exchange.venue import RateLimits, StreamClosed
from posmon.metrics import Metrics

STALE = 3.0  # three missed frames of a 1 s stream
POLL = 1.0
CROSSED = D("44000")


class CadencedVenue:
    """A mark frame every second; the test can stall the stream (open and silent) or make opening take long."""

    name = "sim"
    limits = RateLimits(weight_per_minute=2400, orders_per_minute=1200)

    def __init__(self) -> None:
        self.mark = D("45000")
        self.stalled = False
        self.dropped = False  # the next receive finds the connection closed
        self.open_seconds = 0.0  # > 0: each open takes this long, then fails (the websocket deadline passing)
        self.connects = 0
        self.rest_reads: list[float] = []
        self.frame_times: list[float] = []

    @asynccontextmanager
    async def connect_prices(self, symbols) -> AsyncIterator[_Frames]:
        self.connects += 1
        if self.open_seconds:
            await trio.sleep(self.open_seconds)
            raise StreamClosed("not open within the handshake time")
        yield _Frames(self)

    async def mark_prices(self) -> list[MarkPrice]:
        self.rest_reads.append(trio.current_time())
        return [MarkPrice("BTCUSDT", self.mark, 0.0)]

    def parse_price_frame(self, frame: bytes) -> list[MarkPrice]:
        return [MarkPrice("BTCUSDT", D(frame.decode()), 0.0)]


class _Frames:
    def __init__(self, venue: CadencedVenue) -> None:
        self.venue = venue

    async def receive(self) -> bytes:
        await trio.sleep(1.0)
        if self.venue.dropped:
            raise StreamClosed("connection reset")
        if self.venue.stalled:
            await trio.sleep_forever()  # the connection stays open and says nothing more
        self.venue.frame_times.append(trio.current_time())
        return str(self.venue.mark).encode()


async def start_router(nursery) -> tuple[CadencedVenue, PriceRouter, PriceSlot, trio.MemoryReceiveChannel]:
    venue = CadencedVenue()
    control_send, control_recv = trio.open_memory_channel(10)
    router = PriceRouter(
        venue,
        control_recv,
        Metrics(),
        symbols=["BTCUSDT"],
        stale_after=STALE,  # type: ignore[arg-type]
        poll_interval=POLL,
        rng=random.Random(7),
    )
    inbox_send, inbox_recv = trio.open_memory_channel(100)
    slot = PriceSlot(inbox_send)
    control_send.send_nowait(Subscribe("BTCUSDT", slot))
    await nursery.start(router.run)
    return venue, router, slot, inbox_recv


async def seen_at(slot: PriceSlot, inbox: trio.MemoryReceiveChannel, price: D) -> float:
    """Trio time at which ``price`` reached the actor's slot."""
    while True:
        await inbox.receive()
        mark = slot.take()
        if mark is not None and mark.price == price:
            return trio.current_time()


async def test_a_stream_stalled_while_open_is_declared_stale_after_three_missed_frames_and_reopened(
    nursery, autojump_clock
):
    venue, router, slot, inbox = await start_router(nursery)
    await trio.sleep(5.5)  # frames at 1..5
    last_frame = router.last_frame_at
    venue.stalled = True
    venue.mark = CROSSED  # the cross happens where only REST can see it
    crossed_at = trio.current_time()
    seen = await seen_at(slot, inbox, CROSSED)
    assert seen - last_frame <= STALE  # staleness declared, and REST read, within stale_after of the last frame
    assert seen - crossed_at <= STALE
    await trio.sleep(1.0)  # the reconnect backoff (0.25-0.75 s at first)
    assert venue.connects == 2  # the silent connection was given up and a new one opened


async def test_rest_marks_keep_flowing_while_every_reopened_stream_stalls_too(nursery, autojump_clock):
    venue, router, slot, inbox = await start_router(nursery)
    await trio.sleep(2.5)
    venue.stalled = True  # every stream, reopened or not, stalls after connecting
    await trio.sleep(30)
    assert venue.connects >= 4  # reopened after each stall
    reads = [t for t in venue.rest_reads if t >= router.last_frame_at + STALE]
    assert reads and reads[0] <= router.last_frame_at + STALE
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert max(gaps) <= POLL + 1e-9  # never a stale_after-long hole while a reopened stream proves silent too
    venue.mark = CROSSED
    crossed_at = trio.current_time()
    assert await seen_at(slot, inbox, CROSSED) - crossed_at <= POLL


async def test_rest_marks_stand_in_while_the_stream_takes_long_to_reopen(nursery, autojump_clock):
    venue, _router, slot, inbox = await start_router(nursery)
    await trio.sleep(1.5)
    venue.open_seconds = 10.0  # e.g. a handshake never answered: the open's deadline is the request timeout
    venue.dropped = True
    await trio.sleep(2.0)  # dropped at 2; past the first reconnect backoff, now inside the slow open
    venue.mark = CROSSED
    crossed_at = trio.current_time()
    assert await seen_at(slot, inbox, CROSSED) - crossed_at <= POLL


async def test_rest_polling_stops_once_the_stream_delivers_again(nursery, autojump_clock):
    venue, router, _slot, _inbox = await start_router(nursery)
    await trio.sleep(2.5)
    venue.stalled = True
    await trio.sleep(10)
    assert venue.rest_reads
    stalled_since = router.last_frame_at
    venue.stalled = False
    await trio.sleep(30)  # the next reopened stream delivers every second
    resumed = min(t for t in venue.frame_times if t > stalled_since)
    assert trio.current_time() - router.last_frame_at <= 1.0
    assert [t for t in venue.rest_reads if t > resumed] == []  # no REST weight spent while the stream is fresh


def test_rest_fallback_keeps_to_a_quarter_of_the_venues_request_budget():
    """The fallback's reads bypass the order gateway: on Lighter's Standard tier (60 requests a minute in all)
    polling every second would leave nothing for exits."""
    standard = CadencedVenue()
    standard.limits = RateLimits(weight_per_minute=60, orders_per_minute=60, mark_prices_weight=1)
    premium = CadencedVenue()
    premium.limits = RateLimits(weight_per_minute=24_000, orders_per_minute=24_000, mark_prices_weight=300)
    _, control = trio.open_memory_channel(0)
    assert PriceRouter(standard, control, Metrics(), symbols=["BTC"]).poll_interval == 4.0  # type: ignore[arg-type]
    assert PriceRouter(premium, control, Metrics(), symbols=["BTC"]).poll_interval == 3.0  # type: ignore[arg-type]
    assert PriceRouter(CadencedVenue(), control, Metrics(), symbols=["BTC"]).poll_interval == 1.0  # type: ignore[arg-type]
