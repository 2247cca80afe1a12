"""The daemon process: the real posmon daemon, started the way ``posmon run`` starts it, plus a few observers.

``python -m bench.daemon_proc CONFIG EXPECTED_TRANCHES`` opens the store, opens the venue with ``open_venue``
(the configuration names the simulator's URLs, so this is the live-account code path: ``AsterVenue`` over
HTTP and websockets) and runs ``run_daemon``. What is added, all outside posmon:

- the venue is wrapped so that each mark-price frame's arrival at the price router is timestamped
  (``time.monotonic_ns()`` when ``parse_price_frame`` is called, keyed by the frame's event time ``E``);
- the store is wrapped to count each actor's load, and a watcher reports start-up milestones as events on
  stdout: store opened, venue opened, every tranche loaded, daemon started (``run_daemon`` is up, the user
  stream included) and every actor *watching* (it has finished its start-up reconcile and taken a mark price;
  until then it acts on no tick), with a progress event every second;
- the gateway's calls to the venue (``cancel_orders`` / ``place_orders``) are timestamped too, so a trigger's
  latency splits into frame -> router, router -> gateway call (decide, persist, queue) and gateway call -> request
  received by the simulator (signing, HTTP client, loopback, server);
- garbage-collector pauses are timed (``gc.callbacks``); with ``BENCH_GC_FREEZE=1`` (the runner's ``--gc-freeze``
  experiment) the heap is frozen (``gc.freeze()``) once every actor is watching;
- with ``BENCH_WAKE_ON_CROSS=1`` (``--wake-on-cross``) price wake-ups are gated (``gate_price_wakeups``); with
  ``BENCH_INDEXED_LOAD=1`` (``--indexed-load``) actors load their tranches with ``status IN ('open', 'closing')``;
  with ``BENCH_SHARED_SNAPSHOT=1`` (``--shared-snapshot``) the start-up reconciles share one account snapshot;
- a ``frames`` command returns those timestamps and pauses, ``metrics`` the daemon's own counters; when the runner
  goes away (stdin closes) the process stops.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import trio

from bench.proto import ChildChannel
from posmon.config import load_settings
from posmon.daemon import Daemon, run_daemon
from posmon.exchange.events import MarkPrice
from posmon.logs import configure
from posmon.metrics import Metrics
from posmon.store.store import Store, _tranche
from posmon.venues import open_venue, opened_rules


class TimedVenue:
    """Delegates everything to the real venue; records when each price frame reaches the router."""

    def __init__(self, inner: Any, *, shared_snapshot: bool = False) -> None:
        self._inner = inner
        self.name = inner.name
        # --shared-snapshot experiment: while the daemon starts, account reads (per symbol or whole) are answered
        # from one account-wide snapshot (2 REST calls in all); off once every actor watches.
        self.shared_snapshot = shared_snapshot
        self._snapshot: tuple[dict[str, list[Any]], dict[str, list[Any]]] | None = None  # by symbol
        self._snapshot_lock = trio.Lock()
        self.frames: list[tuple[int, int]] = []  # (E ms of the frame's first entry, arrival ns)
        self.frame_count = 0
        self.calls: list[tuple[int, str, list[str]]] = []  # (ns, "cancel" | "place", client ids): gateway -> venue

    @property
    def limits(self) -> Any:
        return self._inner.limits

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def parse_price_frame(self, frame: bytes) -> list[MarkPrice]:
        t = time.monotonic_ns()
        marks = self._inner.parse_price_frame(frame)
        if marks:
            self.frames.append((round(marks[0].time * 1000), t))
            self.frame_count += 1
        return marks

    async def _account(self) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        async with self._snapshot_lock:
            if self._snapshot is None:
                positions: dict[str, list[Any]] = {}
                orders: dict[str, list[Any]] = {}
                for p in await self._inner.positions(None):
                    positions.setdefault(p.symbol, []).append(p)
                for o in await self._inner.open_orders(None):
                    orders.setdefault(o.symbol, []).append(o)
                self._snapshot = (positions, orders)
            return self._snapshot

    async def positions(self, symbol: str | None = None) -> Any:
        if self.shared_snapshot:
            by_symbol = (await self._account())[0]
            return (
                list(by_symbol.get(symbol, ())) if symbol is not None else [p for ps in by_symbol.values() for p in ps]
            )
        return await self._inner.positions(symbol)

    async def open_orders(self, symbol: str | None = None) -> Any:
        if self.shared_snapshot:
            by_symbol = (await self._account())[1]
            return (
                list(by_symbol.get(symbol, ()))
                if symbol is not None
                else [o for os_ in by_symbol.values() for o in os_]
            )
        return await self._inner.open_orders(symbol)

    async def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> Any:
        self.calls.append((time.monotonic_ns(), "cancel", list(client_ids)))
        return await self._inner.cancel_orders(symbol, client_ids)

    async def place_orders(self, orders: Sequence[Any]) -> Any:
        self.calls.append((time.monotonic_ns(), "place", [o.client_id for o in orders]))
        return await self._inner.place_orders(orders)


def gate_price_wakeups() -> None:
    """Experiment (``BENCH_WAKE_ON_CROSS=1``): a mark wakes a position actor only when it reaches its nearest TP.

    What posmon does: the router puts every symbol's mark into the slot of each actor of the symbol, and the slot
    wakes the actor, so a 1,008-symbol frame schedules 2,000 actor tasks that nearly all find nothing to do. Here
    the slot keeps the newest mark either way but sends the wake-up only when ``side.sign * mark`` reaches the
    actor's nearest oriented TP (the front of its ``TriggerBook`` heap, refreshed after every message the actor
    handles; a stale front is lower, so it can only wake the actor more often). Before the actor has a mark, and
    with no gate set, every price wakes it as before. A prototype of the proposed fix, applied from outside.
    """
    import inspect

    import posmon.actors.directory as directory
    from posmon.actors.position import PositionActor
    from posmon.actors.price_slot import PriceSlot

    if len(inspect.signature(PriceSlot.__init__).parameters) > 2:  # PriceSlot(inbox, sign): posmon gates itself
        print(
            "--wake-on-cross: this posmon already wakes actors only on a crossing (2ad38c6); not applied",
            file=sys.stderr,
        )
        return

    class GatedSlot(PriceSlot):
        __slots__ = ("gate", "sign")

        def __init__(self, inbox: Any) -> None:
            super().__init__(inbox)
            self.gate: Any = None  # oriented level; None: every price wakes the actor
            self.sign = 1

        def put(self, mark: MarkPrice, received_at: float) -> None:
            gate = self.gate
            if gate is not None and self.sign * mark.price < gate:
                self.latest, self.received_at = mark, received_at  # taken whenever the actor next looks
                return
            PriceSlot.put(self, mark, received_at)

    def regate(actor: Any) -> None:
        slot = actor.links.slot
        if isinstance(slot, GatedSlot) and actor.mark is not None:
            heap = actor.book._tp_heap
            slot.sign = actor.cfg.side.sign
            slot.gate = heap[0][0] if heap else Decimal("Infinity")

    on_price, handle = PositionActor._on_price, PositionActor._handle

    def gated_on_price(self: Any) -> None:
        on_price(self)
        regate(self)

    async def gated_handle(self: Any, msg: Any) -> None:
        await handle(self, msg)
        regate(self)

    PositionActor._on_price = gated_on_price  # type: ignore[method-assign]
    PositionActor._handle = gated_handle  # type: ignore[method-assign]
    directory.PriceSlot = GatedSlot  # type: ignore[misc]


class GcClock:
    """Garbage-collector pauses (``gc.callbacks``): a long-lived heap of tranches makes full collections slow."""

    def __init__(self) -> None:
        self._start = 0
        self.pauses: list[tuple[int, int]] = []  # (generation, ns)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.monotonic_ns()
        else:
            self.pauses.append((info["generation"], time.monotonic_ns() - self._start))

    def take(self) -> dict[str, Any]:
        pauses, self.pauses = self.pauses, []
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            ns = [p for g, p in pauses if g == gen]
            out[f"gen{gen}"] = {
                "count": len(ns),
                "total_ms": round(sum(ns) / 1e6, 2),
                "max_ms": round(max(ns, default=0) / 1e6, 2),
            }
        return out


class CountingStore(Store):
    """The daemon's store, counting each actor's load (``open_tranches`` of one key) for start-up progress."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.indexed = os.environ.get("BENCH_INDEXED_LOAD") == "1"
        self.loads = 0
        self.loaded = 0

    def open_tranches(self, venue: str | None = None, symbol: str | None = None, side: Any = None) -> list[Any]:
        if self.indexed and venue is not None and symbol is not None and side is not None:
            # --indexed-load experiment: the same rows, by a condition SQLite can answer from the tranches index
            rows = self.db.query(
                "SELECT * FROM tranches WHERE status IN ('open', 'closing') AND venue = ? AND "
                "symbol = ? AND side = ? ORDER BY id",
                [venue, symbol, side.value],
            )
            out = [_tranche(r) for r in rows]
        else:
            out = super().open_tranches(venue, symbol, side)
        if symbol is not None and side is not None:
            self.loads += 1
            self.loaded += len(out)
        return out

    def restore(self, venue: str) -> dict[Any, Any]:
        """posmon's one start-up read of every key (issue 14): counted as one load per key."""
        return self._count(super().restore(venue))

    async def restore_async(self, venue: str) -> dict[Any, Any]:
        return self._count(await super().restore_async(venue))

    def _count(self, out: dict[Any, Any]) -> dict[Any, Any]:
        self.loads += len(out)
        self.loaded += sum(len(r.tranches) for r in out.values())
        return out


@dataclass
class Observed:
    store: CountingStore
    metrics: Metrics
    gc: GcClock
    timed: TimedVenue | None = None
    daemon: Daemon | None = None

    def actors(self) -> list[Any]:
        directory = self.daemon.directory if self.daemon is not None else None
        if directory is None:
            return []
        return [a for s, side in list(directory.keys()) if (a := directory.actor(s, side)) is not None]


async def watch_startup(channel: ChildChannel, obs: Observed, expected_tranches: int) -> None:
    """Progress every second; events when every tranche is loaded and when every actor is watching prices.

    Loading is counted by the store wrapper (it runs before ``run_daemon`` reports started); *watching* (every
    actor reconciled and holding a mark) can be read only once ``run_daemon`` has handed over its actors, which it
    does after the user stream is up, so that event is never earlier than ``daemon_started``.
    """
    loaded_sent = False
    last_progress = 0.0
    profiler = _startup_profiler()
    while True:
        store = obs.store
        if not loaded_sent and store.loaded >= expected_tranches:
            channel.event("actors_loaded", actors=store.loads, tranches=store.loaded)
            loaded_sent = True
        actors = obs.actors()
        watching = sum(1 for a in actors if a.mark is not None and a.ready.is_set())
        now = time.monotonic()
        if now - last_progress >= 1.0:
            channel.event(
                "progress",
                loads=store.loads,
                loaded=store.loaded,
                actors=len(actors),
                watching=watching,
                frames=obs.timed.frame_count if obs.timed is not None else 0,
            )
            last_progress = now
        if loaded_sent and actors and watching == len(actors):
            channel.event(
                "progress",
                loads=store.loads,
                loaded=store.loaded,
                actors=len(actors),
                watching=watching,
                frames=obs.timed.frame_count if obs.timed is not None else 0,
            )
            channel.event("all_watching", actors=len(actors), tranches=sum(len(a.tranches) for a in actors))
            if profiler is not None:
                _write_profile(profiler)
            if obs.timed is not None:
                obs.timed.shared_snapshot = False  # the --shared-snapshot experiment covers start-up only
            if os.environ.get("BENCH_GC_FREEZE") == "1":  # the runner's --gc-freeze experiment, never by default
                gc.collect()
                gc.freeze()
                channel.event("gc_frozen", objects=gc.get_freeze_count())
            return
        await trio.sleep(0.05)


def _startup_profiler() -> Any:
    """``BENCH_STARTUP_PROFILE=FILE``: pyinstrument over the daemon's start-up (until every actor watches)."""
    if not os.environ.get("BENCH_STARTUP_PROFILE"):
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002, async_mode="disabled")
    profiler.start()
    return profiler


def _write_profile(profiler: Any) -> None:
    profiler.stop()
    path = f"{os.environ['BENCH_STARTUP_PROFILE']}.{os.getpid()}"
    with open(path, "w") as f:
        f.write(profiler.output_text(unicode=False, color=False, show_all=False))


def process_census(obs: Observed, top: int = 40) -> dict[str, Any]:
    """What the daemon holds after start-up: every object reachable from it (its actors, router, gateway state,
    store and venue clients), by type, with ``sys.getsizeof`` bytes; plus the collector's tracked-object count."""
    from bench.memprofile import census

    gc.collect()
    size, count = census([obs.daemon], skip_shared=False) if obs.daemon is not None else ({}, {})
    return {
        "census_bytes": sum(size.values()),
        "census_objects": sum(count.values()),
        "census_by_type": [(name, b, count[name]) for name, b in size.most_common(top)],
        "gc_tracked_objects": len(gc.get_objects()) + gc.get_freeze_count(),
    }


async def serve_commands(channel: ChildChannel, obs: Observed, scope: trio.CancelScope) -> None:
    """Answer the runner; when it is gone (stdin closed) stop, so no daemon outlives its benchmark."""
    await _serve(channel, obs, scope)
    scope.cancel()


async def _serve(channel: ChildChannel, obs: Observed, scope: trio.CancelScope) -> None:
    async for msg in channel.commands():
        ident, cmd = msg.get("id"), msg.get("cmd")
        if cmd == "frames":
            timed = obs.timed
            frames, calls = (timed.frames, timed.calls) if timed is not None else ([], [])
            if timed is not None:
                timed.frames, timed.calls = [], []
            channel.send({"id": ident, "frames": frames, "calls": calls, "gc": obs.gc.take()})
        elif cmd == "metrics":
            counters = {f"{name}{dict(labels)}": v for (name, labels), v in obs.metrics.counters.items()}
            held = sum(len(a.tranches) for a in obs.actors()) if obs.daemon is not None else obs.store.loaded
            channel.send({"id": ident, "counters": counters, "tranches": held, "started": obs.daemon is not None})
        elif cmd == "census":
            channel.send({"id": ident, **process_census(obs)})
        elif cmd == "stop":
            channel.send({"id": ident})
            scope.cancel()
            return
        else:
            channel.send({"id": ident, "error": f"unknown command {cmd!r}"})


async def main(config: str, expected_tranches: int) -> None:
    channel = ChildChannel()
    channel.event("process_started")
    if os.environ.get("BENCH_WAKE_ON_CROSS") == "1":  # the runner's --wake-on-cross experiment, never by default
        gate_price_wakeups()
    settings = load_settings(config, env={})
    configure(settings.daemon.log_level)
    opened = Store.open(settings.daemon.store)
    store = CountingStore(opened.db)
    channel.event("store_opened")
    obs = Observed(store, Metrics(), GcClock())
    gc.callbacks.append(obs.gc)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_commands, channel, obs, nursery.cancel_scope)
            nursery.start_soon(watch_startup, channel, obs, expected_tranches)
            async with open_venue(settings, nursery) as venue:
                channel.event("venue_opened")
                obs.timed = TimedVenue(venue, shared_snapshot=os.environ.get("BENCH_SHARED_SNAPSHOT") == "1")
                obs.daemon = await nursery.start(
                    lambda task_status: run_daemon(
                        settings,
                        obs.timed,
                        store,
                        metrics=obs.metrics,
                        rules=opened_rules(venue),
                        task_status=task_status,
                    )
                )  # type: ignore[arg-type]
                channel.event("daemon_started", keys=len(obs.actors()))
                await trio.sleep_forever()
    finally:
        store.close()


def run(argv: Sequence[str]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, argv[0], int(argv[1]))


if __name__ == "__main__":
    run(sys.argv[1:])
