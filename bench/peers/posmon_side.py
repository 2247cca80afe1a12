"""posmon's side of the peer benchmark: mark prices handed to the price router of an in-process daemon.

The daemon is the real one (``run_daemon``) on the in-process simulated venue with emulated exits (the
Lighter way: posmon holds every TP and SL itself, like NautilusTrader's OrderEmulator holds emulated stops),
one-way mode, so each symbol has one position actor holding all of that symbol's tranches. The tranches are
seeded directly into the store and the matching positions onto the simulated exchange, as after a restart.

Each tick is one price frame carrying one symbol's mark (the per-symbol stream's shape: every tick pays the
frame's receive and parse), pre-encoded, fed round robin over the symbols through the venue's price stream.
Timed: from the first frame handed to the stream until the router has handled the last one and every task of
the daemon is idle again (router, gates, any actor woken, the gateway). Then ``rounds`` injected marks each cross the
TP of ``triggers`` more tranches of the first symbol (and no other's); each one's cost is timed from handing
it to the router up to the gateway calling the venue with the last of its closes.

Run as ``python -m bench.peers.posmon_side '<row json>'``: prints one JSON object.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
import trio.testing

from posmon.actors.price_router import PriceRouter
from posmon.config import Settings, load_settings
from posmon.daemon import Daemon, run_daemon
from posmon.domain.orders import OrderRequest, Side
from posmon.domain.tranche import Risk, Tranche, exit_prices
from posmon.exchange.events import MarkPrice
from posmon.exchange.venue import FrameStream, PlaceResult, RateLimits
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import ChannelFrameStream, SimVenue
from posmon.sim.wire import encode_mark_prices
from posmon.store.store import Changes, Store

LEVEL = Decimal(100)  # every symbol's mark level (the simulator's made-up markets: tick 0.01, step 0.001)
QTY = Decimal("0.1")  # per tranche: 10 USDT of notional, above the markets' 5 USDT minimum
TRIGGER_MARK = Decimal("101")  # crosses every trigger tranche's TP and no resting one's
BUFFER = 256  # frames in flight between the feeder and the router
UNPACED = RateLimits(weight_per_minute=10**9, orders_per_minute=10**9)  # the gateway paces nothing


def symbol_names(n: int) -> list[str]:
    return [f"S{i:03d}USDT" for i in range(n)]


def quiet_mark(n: int) -> Decimal:
    """The n-th quiet tick's mark: wanders 0.5 around the level, like the peer's bids."""
    return LEVEL + Decimal((n * 7919) % 200 - 100) / 200


class BenchVenue(SimVenue):
    """The simulated venue with a price stream the benchmark feeds, counting frames and stamping closes."""

    def __init__(self, exchange: SimExchange, **kwargs: Any) -> None:
        super().__init__(exchange, limits=UNPACED, emulated_exits=True, **kwargs)
        self.feed: trio.MemorySendChannel[bytes] | None = None
        self.connected = trio.Event()
        self.parsed = 0
        self.wait_for = -1
        self.reached = trio.Event()
        self.place_calls: list[tuple[int, int]] = []  # (perf_counter_ns, orders in the call)
        self.orders_wanted = -1
        self.orders_placed = trio.Event()  # set once orders_wanted orders went to the venue in all

    @asynccontextmanager
    async def connect_prices(self, symbols: Sequence[str]) -> AsyncIterator[FrameStream]:
        send, recv = trio.open_memory_channel[bytes](BUFFER)
        self.feed = send
        self.connected.set()
        async with recv:
            yield ChannelFrameStream(recv)

    def parse_price_frame(self, frame: bytes) -> Any:
        marks = super().parse_price_frame(frame)
        self.parsed += 1
        if self.parsed == self.wait_for:
            self.reached.set()
        return marks

    async def place_orders(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        self.place_calls.append((time.perf_counter_ns(), len(orders)))
        if sum(n for _, n in self.place_calls) == self.orders_wanted:
            self.orders_placed.set()
        return await super().place_orders(orders)


def settings_for(work: Path, symbols: list[str], per_symbol: int) -> Settings:
    text = f"""
[daemon]
venue = "sim"
store = "{work / "posmon.sqlite"}"
hedge_mode = false
log_level = "WARNING"
stale_stream_seconds = 600.0

[risk]
tp_pct = 1.0
sl_pct = 50.0

[sim]
symbols = {json.dumps(symbols)}
trader_enabled = false
"""
    path = work / "config.toml"
    path.write_text(text)
    s = load_settings(path, env={})
    # The configuration caps a book at 1,000 tranches per (symbol, side); the benchmark seeds up to 10,000.
    return dataclasses.replace(s, risk=dataclasses.replace(s.risk, max_tranches_per_symbol_side=per_symbol + 1))


def seed(settings: Settings, store: Store, exchange: SimExchange, row: dict[str, Any]) -> list[Decimal]:
    """The row's tranches (LONG, one-way) into the store and their positions onto the exchange; the marks of
    the triggering ticks, one per round.

    Resting tranches: TP from 101.1 up (above every quiet and triggering mark), each at its own level; SL 50 %
    below the entry, far below the path. Trigger tranches (first symbol): ``triggers`` per round, round r's TPs
    in a band above the path's high (100.5) and the previous round's, crossed by round r's mark only.
    """
    symbols = symbol_names(row["symbols"])
    rules = rules_for(symbols)
    r = settings.risk
    risk = Risk(tp_pct=r.tp_pct, sl_pct=r.sl_pct, max_tranches=r.max_tranches_per_symbol_side)
    tick = Decimal("0.01")
    entries: dict[str, list[Decimal]] = {s: [] for s in symbols}
    for k in range(row["stops"]):
        entries[symbols[k % len(symbols)]].append(Decimal("100.1") + tick * (k // len(symbols) % 5000))
    assert row["triggers"] <= 5 and row["rounds"] <= 5, "the trigger bands fit between the path and the idle TPs"
    rounds = [
        [Decimal("99.55") + Decimal("0.1") * r + tick * k for k in range(row["triggers"])] for r in range(row["rounds"])
    ]
    for band in rounds:
        entries[symbols[0]] += band
    tranches = []
    next_id = 1
    for symbol, book in entries.items():
        for index, entry in enumerate(book):
            tp, sl = exit_prices(Side.LONG, entry, risk, rules[symbol])
            tranches.append(Tranche(next_id, "sim", symbol, Side.LONG, index, entry, QTY, tp, sl, opened_at=0.0))
            next_id += 1
    # Each round's mark: a tick above its band's highest TP; below the next band and every resting TP.
    tp_of = {t.entry: t.tp for t in tranches if t.symbol == symbols[0]}
    marks = [max(tp_of[e] for e in band) + tick for band in rounds if band]
    floors = [min(tp_of[e] for e in band) for band in rounds[1:] if band]
    floors += [t.tp for t in tranches if t.entry >= Decimal("100.1")]
    assert all(m > LEVEL + Decimal("0.5") for m in marks), marks
    assert all(m < f for i, m in enumerate(marks) for f in floors[i:]), (marks, floors)
    store.apply(Changes(tranches=tranches))
    store.db.execute("UPDATE meta SET value = ? WHERE key = 'next_tranche_id'", [str(next_id)])
    for symbol, book in entries.items():
        exchange.set_mark(symbol, LEVEL)
        if book:
            exchange.external_entry(symbol, Side.LONG, QTY * len(book))
    return marks


async def _feed(venue: BenchVenue, frames: list[bytes]) -> None:
    """Hand ``frames`` to the price stream; return once the router has parsed the last one."""
    assert venue.feed is not None
    venue.reached = trio.Event()
    venue.wait_for = venue.parsed + len(frames)
    for frame in frames:
        await venue.feed.send(frame)
    await venue.reached.wait()


async def _hand(router: PriceRouter, marks: list[MarkPrice]) -> None:
    """Hand parsed marks to the router's delivery, one at a time, each followed by one pass of the scheduler
    (a woken actor, and the gateway behind it, run before the next tick, as the stream task would let them).

    ``_deliver`` is what the router does with every mark of a frame it parsed; the peer's ticks are built
    objects too, so this row compares the decision paths without posmon's wire parsing.
    """
    for mark in marks:
        router._deliver(mark, trio.current_time())
        await trio.lowlevel.checkpoint()


async def measure(row: dict[str, Any], work: Path) -> dict[str, Any]:
    symbols = symbol_names(row["symbols"])
    per_symbol = -(-row["stops"] // len(symbols)) + row["triggers"] * row["rounds"]
    settings = settings_for(work, symbols, per_symbol)
    exchange = SimExchange(rules_for(symbols), hedge_mode=False, clock=trio.current_time, bounded_market=True)
    venue = BenchVenue(exchange)
    store = Store.open(Path(settings.daemon.store))
    try:
        trigger_marks = seed(settings, store, exchange, row)
        async with trio.open_nursery() as nursery:
            started = time.perf_counter()
            daemon: Daemon = await nursery.start(run_daemon, settings, venue, store)
            await venue.connected.wait()
            # Warm-up (untimed): one mark per symbol, so every actor holds a mark and finishes its start-up.
            await _feed(venue, [encode_mark_prices({s: LEVEL}, 0) for s in symbols])
            assert daemon.directory is not None
            with trio.fail_after(120):
                for actor in daemon.directory.actors():
                    await actor.ready.wait()
            startup_s = time.perf_counter() - started
            held = sum(len(a.tranches) for a in daemon.directory.actors())
            router = daemon.router
            assert router is not None
            ticks = [MarkPrice(symbols[n % len(symbols)], quiet_mark(n), n / 1000) for n in range(row["ticks"])]
            frames = [encode_mark_prices({m.symbol: m.price}, n) for n, m in enumerate(ticks)]
            out: dict[str, Any] = {
                "ticks": row["ticks"],
                "tranches_held": held,
                "exit_levels_held": 2 * held,  # each tranche's TP and SL
                "startup_s": round(startup_s, 2),
            }
            for mode in ("handed", "wire"):  # like-for-like with the peer's built ticks; then through the stream
                await trio.testing.wait_all_tasks_blocked()
                gc.collect()
                t0 = time.perf_counter_ns()
                if mode == "handed":
                    await _hand(router, ticks)
                else:
                    await _feed(venue, frames)
                await trio.testing.wait_all_tasks_blocked()
                out[f"{mode}_ticks_per_s"] = round(row["ticks"] / ((time.perf_counter_ns() - t0) / 1e9))
            out["closes_during_quiet_ticks"] = len(venue.place_calls)
            per_tick = []
            for n, mark in enumerate(trigger_marks):
                exchange.set_marks({symbols[0]: mark}, trade=False)  # the closes fill at this mark
                before = len(venue.place_calls)
                venue.orders_wanted = sum(c for _, c in venue.place_calls) + row["triggers"]
                venue.orders_placed = trio.Event()
                t0 = time.perf_counter_ns()
                await _hand(router, [MarkPrice(symbols[0], mark, row["ticks"] / 1000 + n)])
                with trio.move_on_after(10):
                    await venue.orders_placed.wait()
                calls = venue.place_calls[before:]
                per_tick.append(
                    {
                        "closes_sent": sum(c for _, c in calls),
                        "venue_calls": len(calls),
                        "to_last_close_ms": round((calls[-1][0] - t0) / 1e6, 3) if calls else None,
                    }
                )
                await trio.testing.wait_all_tasks_blocked()  # the closes filled and the tranches closed
            if per_tick:
                out["trigger"] = {
                    "tranches_per_tick": row["triggers"],
                    "ticks": len(per_tick),
                    "closes_sent": sum(t["closes_sent"] for t in per_tick),
                    "venue_calls": sum(t["venue_calls"] for t in per_tick),
                    "to_last_close_ms": [t["to_last_close_ms"] for t in per_tick],
                    "tranches_left": sum(len(a.tranches) for a in daemon.directory.actors()),
                }
            nursery.cancel_scope.cancel()
        return out
    finally:
        store.close()


def run(row: dict[str, Any]) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="posmon-peers-") as work:
        return trio.run(measure, row, Path(work))


def main() -> None:
    print(json.dumps(run(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
