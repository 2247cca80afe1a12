"""The benchmark run: start the simulator and the daemon as separate processes, drive them, collect figures.

Phases (sizes in ``FULL`` / ``SMOKE``):

1. *working set*: a simulator with 1,000 symbols and a store with the matching tranches (seeded directly, not
   traded in), the daemon started on it: start-up recovery at that size, then its resident memory;
2. *latency*: the recorded path stepped at 1 Hz, then at 10 Hz (every symbol in every frame), with trigger
   tranches planted so a known set of frames crosses a known set of TPs: tick-to-order per trigger;
3. *throughput*: frames at increasing rates with a few probe triggers, until the daemon's frame lag grows;
4. *REST calls*: fills, tranche updates and instant closes on spare symbols, counted by the simulator;
5. *large store*: 100,000 tranches: start-up recovery from the store and resident memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import analysis, report
from bench import parse as parse_bench
from bench.plan import Plan, PlanSpec, Window, build_plan, next_tranche_id
from bench.proto import ROOT, Child, Interference, cpu_seconds, memory_kib
from posmon.sim.aster import credentials as cred
from posmon.store.store import Changes, Store

RESULTS = Path(__file__).resolve().parent / "results"
# The working set's daemon gets a 120 s websocket handshake timeout instead of 10 s. With the default, the price
# stream's handshake, starved by the start-up reconcile of 2,000 actors, completes after trio-websocket's connect
# timeout; trio-websocket 0.12 then never returns from ``open_websocket_url`` (its reader task keeps the nursery
# open), so the daemon never sees a price. The large store keeps the default and reports whether that happened.
HANDSHAKE_TIMEOUT = 120.0
SLOW, FAST = "1hz", "10hz"
STUCK_AFTER_S = 30.0
MAX_LAG_GROWTH_MS = 50.0  # a rate is kept up with while the frame lag grows less than this over the run


@dataclass(frozen=True, slots=True)
class Sizes:
    name: str
    symbols: int
    idle_per_side: int  # 5 per (symbol, side) x 2 sides x 1,000 symbols = 10,000 idle tranches
    slow_steps: int  # frames of the 1 Hz latency run
    slow_triggers: int
    fast_steps: int  # frames of the 10 Hz latency run
    fast_triggers: int
    probes: int
    spare: int  # symbols without tranches for the REST-call scenarios
    rates: tuple[int, ...]  # mark updates per second tried by the throughput run, in order
    rate_seconds: float
    probes_per_second: float
    big_idle_per_side: int  # the large store: 50 x 2 x 1,000 = 100,000 tranches
    startup_cap_s: float  # give up waiting for the working-set daemon to be watching after this long
    big_startup_cap_s: float  # the same for the large store (its recovery is reported as projected if cut)
    idle_seconds: float  # 1 Hz frames with no trigger: the idle CPU figure
    rest_repeats: int
    drain_s: float  # after the last frame of a run, before collecting
    slow_rate: float = 1.0
    fast_rate: float = 10.0
    quiet_s: float = 3.0  # start-up is over when the daemon has sent no REST request for this long
    settle_quiet_s: float = 0.5  # a REST-call scenario is over after this long without a request
    bisect_steps: int = 2  # throughput: bisections between the last rate kept up with and the first failing one


FULL = Sizes(
    "full",
    symbols=1000,
    idle_per_side=5,
    slow_steps=140,
    slow_triggers=1120,
    fast_steps=560,
    fast_triggers=1120,
    probes=400,
    spare=8,
    rates=(5_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 100_000, 150_000),
    rate_seconds=8.0,
    probes_per_second=2.0,
    big_idle_per_side=50,
    startup_cap_s=300.0,
    big_startup_cap_s=150.0,
    idle_seconds=10.0,
    rest_repeats=5,
    drain_s=2.0,
)
# Toy sizes: every phase runs and every figure is written, in about 10 s; the values say nothing about targets.
SMOKE = Sizes(
    "smoke",
    symbols=20,
    idle_per_side=2,
    slow_steps=1,
    slow_triggers=6,
    fast_steps=5,
    fast_triggers=5,
    probes=10,
    spare=2,
    rates=(4_000,),
    rate_seconds=0.5,
    probes_per_second=4.0,
    big_idle_per_side=10,
    startup_cap_s=60.0,
    big_startup_cap_s=30.0,
    idle_seconds=0.5,
    rest_repeats=1,
    drain_s=0.25,
    quiet_s=0.5,
    settle_quiet_s=0.25,
    bisect_steps=0,
)

# What the specification's starting point (a 5-second polling loop, TP and SL placed and cancelled with separate
# calls) spends, per event; see README.md.
BASELINE = {
    "polling_calls_per_hour": 3600 / 5,
    "protected_fill": 2,
    "tranche_update": 4,
    "instant_close": 3,
    "tp_fill": 1,
}
EXAMPLE_HOUR = {"protected_fill": 20, "tranche_update": 10, "instant_close": 20}  # an assumed hour of trading
TARGETS = {
    "p99_tick_to_order_1hz_ms": 5.0,
    "p99_tick_to_close_1hz_ms": 10.0,
    "p99_tick_to_order_10hz_ms": 5.0,
    "p99_tick_to_close_10hz_ms": 10.0,
    "updates_per_s": 150_000,  # issue 14: throughput stays at or above 150,000 mark updates/s
    "kib_per_idle_tranche": 2.0,
    "startup_100k_s": 5.0,
    "rest_calls_per_protected_fill": 1.0,
    "rest_reduction_pct": 70.0,
    "startup_12k_s": 1.0,  # the working set (12,640 tranches), every actor watching
    "kib_per_idle_tranche_after_startup": 1.5,  # both daemons measured after start-up (issue 14)
    "lighter_burst_p50_ms": 10.0,  # the tick-to-close target, for 50 stop-outs in one frame (signing included)
    "mark_frame_parse_speedup": 2.0,  # 1,008-symbol !markPrice@arr: field by field (before) / typed (msgspec)
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


# ---- the pieces --------------------------------------------------------------------------------------------------


def seed_store(path: Path, plan: Plan, exchange_ids: dict[str, str] | None = None) -> float:
    """Write the plan's tranches and their LIVE TP/SL orders into a fresh store, as the daemon would have:
    with the exchange's order ids (``exchange_ids``, by client id), which posmon records from placement answers."""
    t0 = time.perf_counter()
    store = Store.open(path)
    ids = exchange_ids or {}
    orders = [replace(o, exchange_id=ids.get(o.client_id, o.exchange_id)) for o in plan.orders]
    try:
        store.apply(Changes(tranches=plan.tranches, orders=orders))
        store.db.execute("UPDATE meta SET value = ? WHERE key = 'next_tranche_id'", [str(next_tranche_id(plan))])
    finally:
        store.close()
    return time.perf_counter() - t0


def write_config(
    path: Path, store: Path, urls: dict[str, Any], max_per_key: int, handshake_timeout: float | None = None
) -> None:
    """The daemon's configuration: the defaults, except the store, the venue's URLs, SL 50 % and the book size.

    ``handshake_timeout``: ``[aster] request_timeout_seconds`` (HTTP timeout and websocket handshake timeout,
    default 10 s); see ``HANDSHAKE_TIMEOUT``.
    """
    extra = "" if handshake_timeout is None else f"request_timeout_seconds = {handshake_timeout}\n"
    path.write_text(f"""# written by bench/runner.py
[daemon]
venue = "aster"
store = "{store}"
hedge_mode = true
log_level = "INFO"

[risk]
tp_pct = 1.0
sl_pct = 50.0
max_tranches_per_symbol_side = {max_per_key}
instant_tp_enabled = true

[aster]
rest_url = "{urls["rest_url"]}"
ws_url = "{urls["ws_url"]}"
auth = "v3"
signer_private_key = "{cred.DEFAULT_SIGNER_PRIVATE_KEY}"
user = "{cred.DEFAULT_USER_ADDRESS}"
{extra}""")


class Profiler:
    """py-spy attached to a process for one phase (``--profile``), writing collapsed stacks."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.files: dict[str, str] = {}

    def start(self, name: str, pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
        if self.out_dir is None:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}.txt"
        self.files[name] = str(path)
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        # Blocking mode (py-spy pauses the daemon for each sample, ~100 per second): non-blocking sampling of a
        # running interpreter misattributes time between frames.
        return subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @staticmethod
    def stop(proc: subprocess.Popen[bytes] | None, *, now: bool = False) -> None:
        """Wait for py-spy to finish its duration, or (``now``) stop it early: on SIGINT it writes what it has."""
        if proc is None:
            return
        if now and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class World:
    """A simulator process with a plan, the matching store, and (once started) the daemon on it."""

    def __init__(
        self,
        name: str,
        spec: PlanSpec,
        work: Path,
        *,
        handshake_timeout: float | None = None,
        daemon_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.handshake_timeout = handshake_timeout
        self.daemon_env = daemon_env or {}
        self.spec = spec
        self.work = work / name
        self.work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.sim = Child(f"sim-{name}", ["-m", "bench.sim_server"], self.work / "sim.log")
        try:
            self.urls = self.sim.call("init", spec=spec.to_json(), timeout=600)
            exchange_ids = self.urls.pop("exchange_ids", None)
            self.plan = build_plan(spec)
            if self.plan.fingerprint() != self.urls["fingerprint"]:
                raise RuntimeError("the simulator and the runner built different plans")
            self.store_path = self.work / "posmon.sqlite"
            store_s = seed_store(self.store_path, self.plan, exchange_ids)
        except BaseException:
            self.sim.close()
            raise
        self.config = self.work / "config.toml"
        write_config(self.config, self.store_path, self.urls, spec.max_per_key, handshake_timeout)
        self.setup = {
            "symbols": len(self.plan.symbols),
            "tranches": len(self.plan.tranches),
            "orders": len(self.plan.orders),
            "position_keys": self.keys,
            "exchange_seed_s": round(self.urls["seconds"], 2),
            "store_seed_s": round(store_s, 2),
            "setup_s": round(time.perf_counter() - t0, 2),
        }
        self.daemon: Child | None = None

    @property
    def keys(self) -> int:
        return len({(t.symbol, t.side) for t in self.plan.tranches})

    def counters(self) -> dict[str, int]:
        return self.sim.call("counters")["requests"]

    def start_daemon(
        self, cap: float, profiler: Profiler, *, quiet_s: float, lookup_rate: float | None = None
    ) -> dict[str, Any]:
        """Start the daemon on the seeded store and follow its start-up until it has *recovered*.

        Recovered: ``run_daemon`` is up (the user stream included), every actor is watching prices, and no REST
        request has come for ``quiet_s`` seconds (the start-up reconcile, its retries included, is over); the
        figure is the time of the last start-up request. After ``cap`` seconds it gives up and projects the rest
        from the progress so far (store loads per second; order lookups at ``lookup_rate`` if given).
        """
        before = self.counters()
        self.daemon = d = Child(
            f"daemon-{self.name}",
            ["-m", "bench.daemon_proc", str(self.config), str(len(self.plan.tranches))],
            self.work / "daemon.log",
            env=self.daemon_env,
        )
        spy = profiler.start(f"startup_{self.name}", d.pid, cap)
        others = Interference([d.pid, self.sim.pid])
        lookups_total, keys = len(self.plan.orders), self.keys
        t_spawn = d.spawned_ns / 1e9  # the runner's time.monotonic() is the same clock
        reconciled_at = stuck_at = recovered_at = None
        last_counts: dict[str, int] | None = None
        last_change = time.monotonic()
        first_load_at = None
        memory_loaded = None
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            if memory_loaded is None and d.wait_event("actors_loaded", 0):
                memory_loaded = memory_kib(d.pid)  # every tranche in memory, the reconcile just begun
            counts = self.counters()
            if counts != last_counts:
                last_counts, last_change = counts, now
            req = analysis.calls(before, counts)
            if reconciled_at is None and req.get("GET /fapi/v3/openOrders", 0) >= keys + 1:
                reconciled_at = now  # every actor's first reconcile (and the user stream's discovery) answered
            progress = d.events_named("progress")
            if first_load_at is None and progress and progress[-1]["loads"]:
                first_load_at = now
            opened = d.wait_event("venue_opened", 0)
            if (
                stuck_at is None
                and opened is not None
                and progress
                and progress[-1]["frames"] == 0
                and (progress[-1]["t_ns"] - opened["t_ns"]) / 1e9 > STUCK_AFTER_S
            ):
                # The simulator publishes every second, yet no frame has reached the price router: the stream is
                # stuck in trio-websocket's connect (see HANDSHAKE_TIMEOUT). The daemon cannot recover from it.
                stuck_at = now
                log(
                    f"{self.name}: no price frame reached the daemon's router {STUCK_AFTER_S:.0f}s after the venue "
                    "opened: its price stream is stuck"
                )
            quiet = now - last_change >= quiet_s
            started, watching = d.wait_event("daemon_started", 0), d.wait_event("all_watching", 0)
            if quiet and started and (watching or stuck_at is not None):
                # With a hung price stream no actor will ever watch: what can be measured is the REST recovery.
                recovered_at = max(last_change, started["t_ns"] / 1e9, watching["t_ns"] / 1e9 if watching else 0)
                break
            if now - t_spawn > cap:
                break
        Profiler.stop(spy, now=True)

        def at(event: str) -> float | None:
            e = d.wait_event(event, 0)
            return None if e is None else round(e["t_ns"] / 1e9 - t_spawn, 3)

        req = analysis.calls(before, self.counters())
        done = req.get("GET /fapi/v3/order", 0)
        elapsed = time.monotonic() - t_spawn
        progress = d.events_named("progress")
        last = progress[-1] if progress else {}
        loaded = d.events_named("actors_loaded")  # exact counts; the progress events come once a second
        if loaded:
            last = {**last, "loads": loaded[0]["actors"], "loaded": loaded[0]["tranches"]}
        out: dict[str, Any] = {
            "tranches": len(self.plan.tranches),
            "position_keys": keys,
            "process_started_s": at("process_started"),
            "store_opened_s": at("store_opened"),
            "venue_opened_s": at("venue_opened"),
            "actors_loaded_s": at("actors_loaded"),
            "daemon_started_s": at("daemon_started"),
            "all_watching_s": at("all_watching"),
            "first_reconcile_done_s": None if reconciled_at is None else round(reconciled_at - t_spawn, 2),
            "recovered_s": None if recovered_at is None else round(recovered_at - t_spawn, 2),
            "finished": recovered_at is not None,
            "recovered_without_prices": recovered_at is not None and stuck_at is not None,
            "price_stream_stuck": stuck_at is not None,
            "price_frames_received": last.get("frames"),
            "websocket_handshake_timeout_s": self.handshake_timeout or 10.0,
            "actors_loaded": last.get("loads"),
            "tranches_loaded": last.get("loaded"),
            "order_lookups": done,
            "order_lookups_needed": lookups_total,
            "order_lookups_per_s": round(done / elapsed, 1) if done else None,
            "requests": req,
            "machine_load": others.result(),
        }
        if recovered_at is None:
            out["gave_up_after_s"] = round(elapsed, 1)
            loads = last.get("loads") or 0
            load_end = out["actors_loaded_s"] or elapsed
            if loads and first_load_at is not None and loads < keys:
                load_end = (first_load_at - t_spawn) + (now - first_load_at) * keys / loads
            rate = lookup_rate or (done / elapsed if done else None)
            out["projection"] = {
                "store_load_done_s": round(load_end, 1),
                "lookup_rate_per_s": rate,
                "recovered_s": round(max(load_end, elapsed) + (lookups_total - done) / rate, 1) if rate else None,
            }
        out["memory_kib_when_loaded"] = memory_loaded
        out["memory_kib"] = memory_kib(d.pid)
        return out

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.close()
        with contextlib.suppress(Exception):  # it is being stopped anyway
            self.sim.call("quit", timeout=10)
        self.sim.close()


# ---- phases ------------------------------------------------------------------------------------------------------


def latency_run(w: World, window: str, rate: float, drain: float, profiler: Profiler) -> dict[str, Any]:
    assert w.daemon is not None
    first, last = w.plan.window_range[window]
    expected = {tid: step for tid, step in w.plan.trigger_step.items() if first <= step <= last}
    w.daemon.call("frames")  # discard earlier arrivals
    w.sim.call("record", on=True)
    cpu0, t0 = cpu_seconds(w.daemon.pid), time.monotonic()
    sim_cpu0 = cpu_seconds(w.sim.pid)
    spy = profiler.start(f"latency_{window}", w.daemon.pid, (last - first + 1) / rate)
    others = Interference([w.daemon.pid, w.sim.pid])
    res = w.sim.call("steps", first=first, last=last, rate=rate, engine=True, timeout=(last - first) / rate + 120)
    cpu1, t1 = cpu_seconds(w.daemon.pid), time.monotonic()
    sim_cpu1 = cpu_seconds(w.sim.pid)
    load = others.result()
    time.sleep(drain)
    Profiler.stop(spy)
    data = w.sim.call("collect")
    w.sim.call("record", on=False)
    seen = w.daemon.call("frames")
    out = analysis.trigger_latency(expected, data, seen["frames"], seen["calls"])
    out["gc_pauses"] = seen["gc"]
    out.update(
        rate_hz=rate,
        frames=last - first + 1,
        symbols_per_frame=len(w.plan.symbols),
        updates_per_s=rate * len(w.plan.symbols),
        duration_s=round(t1 - t0, 2),
        daemon_cpu_pct=round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        sim_cpu_pct=round(100 * (sim_cpu1 - sim_cpu0) / (t1 - t0), 1),
        schedule_slip_max_ms=round(res["slip_max_s"] * 1000, 1),
        gets=data["gets"],
        machine_load=load,
    )
    return out


def idle_cpu(w: World, seconds: float) -> dict[str, Any]:
    """CPU use while the 1 Hz stream runs and nothing triggers."""
    assert w.daemon is not None
    before = w.counters()
    others = Interference([w.daemon.pid, w.sim.pid])
    cpu0, t0 = cpu_seconds(w.daemon.pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(w.daemon.pid), time.monotonic()
    calls = analysis.calls(before, w.counters())
    return {
        "seconds": round(t1 - t0, 1),
        "daemon_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "requests": calls,
        "requests_per_hour": round(sum(calls.values()) * 3600 / (t1 - t0), 1),
        "machine_load": others.result(),
    }


def throughput(w: World, sizes: Sizes, profiler: Profiler) -> dict[str, Any]:
    assert w.daemon is not None
    n = len(w.plan.symbols)
    probes = [p.tranche_id for p in w.plan.probes]
    levels: list[dict[str, Any]] = []
    best, first_fail = None, None

    def run_level(rate: int) -> dict[str, Any]:
        nonlocal probes
        fps = rate / n
        frames = max(8, round(fps * sizes.rate_seconds))
        k = max(1, round(sizes.probes_per_second * sizes.rate_seconds))
        every = max(1, frames // (k + 1))
        schedule = {}
        for i in range(k):
            if not probes:
                break
            schedule[(i + 1) * every] = probes.pop(0)
        w.daemon.call("frames")
        w.sim.call("record", on=True)
        others = Interference([w.daemon.pid, w.sim.pid])
        cpu0, t0 = cpu_seconds(w.daemon.pid), time.monotonic()
        spy = profiler.start(f"throughput_{rate}", w.daemon.pid, frames / fps)
        res = w.sim.call(
            "rate", fps=fps, frames=frames, probes={str(f): t for f, t in schedule.items()}, timeout=frames / fps + 120
        )
        cpu1, t1 = cpu_seconds(w.daemon.pid), time.monotonic()
        load = others.result()
        time.sleep(sizes.drain_s)
        Profiler.stop(spy)
        # A daemon that fell behind is still working through the backlog: let it catch up before the next level.
        seen = w.daemon.call("frames")
        arrivals, gc_pauses = seen["frames"], seen["gc"]
        wanted, caught_up = set(res["events"]), time.monotonic() + 60
        while not wanted <= {e for e, _ in arrivals} and time.monotonic() < caught_up:
            time.sleep(0.5)
            arrivals += w.daemon.call("frames")["frames"]
        backlog_s = round(time.monotonic() - t1, 1)
        data = w.sim.call("collect")
        w.sim.call("record", on=False)
        growth = analysis.lag_growth(arrivals, data, res["events"])
        probe = analysis.trigger_latency({tid: f for f, tid in schedule.items()}, data)
        planned_s = frames / fps
        sim_limited = res["publish_seconds"] > planned_s * 1.1 + 0.05
        interval_ms = 1000 / fps
        keeps_up = (
            growth["received"] == growth["frames"]
            and growth["growth_ms"] is not None
            and growth["growth_ms"] < MAX_LAG_GROWTH_MS
            and growth["lag"]["p50_ms"] < max(MAX_LAG_GROWTH_MS, interval_ms)
            and growth["lag"]["p99_ms"] < 1000
        )
        return {
            "updates_per_s": rate,
            "frames_per_s": round(fps, 2),
            "symbols_per_frame": n,
            "frames": frames,
            "keeps_up": keeps_up,
            "sim_limited": sim_limited,
            "daemon_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "frame_lag": growth,
            "probe_tick_to_order": probe["tick_to_order"],
            "probe_missing": probe["missing"],
            "publish_seconds": round(res["publish_seconds"], 3),
            "planned_seconds": round(planned_s, 3),
            "caught_up_after_s": backlog_s,
            "gc_pauses": gc_pauses,
            "machine_load": load,
        }

    for rate in sizes.rates:
        level = run_level(rate)
        levels.append(level)
        log(
            f"throughput {rate}/s: keeps up={level['keeps_up']} lag growth={level['frame_lag'].get('growth_ms')}ms "
            f"cpu={level['daemon_cpu_pct']}% sim_limited={level['sim_limited']} load={level['machine_load']}"
        )
        if level["keeps_up"] and not level["sim_limited"]:
            best = rate
        else:
            first_fail = rate
            break
    for _ in range(sizes.bisect_steps):  # bisect between the last rate kept up with and the first not
        if best is None or first_fail is None or levels[-1]["sim_limited"] or first_fail - best <= 2_000:
            break
        mid = (best + first_fail) // 2 // 500 * 500
        level = run_level(mid)
        levels.append(level)
        log(
            f"throughput {mid}/s: keeps up={level['keeps_up']} lag growth={level['frame_lag'].get('growth_ms')}ms "
            f"cpu={level['daemon_cpu_pct']}% load={level['machine_load']}"
        )
        if level["keeps_up"]:
            best = mid
        else:
            first_fail = mid
    return {
        "max_updates_per_s": best,
        "first_failing_updates_per_s": first_fail,
        "limited_by_simulator": bool(levels and levels[-1]["sim_limited"]),
        "levels": levels,
    }


def _settle(
    w: World, symbol: str, done: Callable[[dict[str, Any]], bool], quiet_s: float, timeout: float = 15.0
) -> bool:
    """Wait until the book of ``symbol`` satisfies ``done`` and no request has come for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(w.sim.call("book", symbol=symbol)):
            break
        time.sleep(0.02)
    else:
        return False
    last, quiet_since = w.counters(), time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        time.sleep(0.05)
        now = w.counters()
        if now != last:
            last, quiet_since = now, time.monotonic()
    return True


def rest_calls(w: World, repeats: int, quiet_s: float) -> dict[str, Any]:
    """Requests per protected fill, tranche update, instant close and exchange-side TP fill."""
    samples: dict[str, list[dict[str, int]]] = {
        k: [] for k in ("protected_fill", "tranche_update", "instant_close", "tp_fill")
    }
    failures = []

    def measure(kind: str, act: Callable[[], None], symbol: str, done: Callable[[dict[str, Any]], bool]) -> None:
        before = w.counters()
        act()
        if not _settle(w, symbol, done, quiet_s):
            failures.append(kind)
        samples[kind].append(analysis.calls(before, w.counters()))

    def legs(qty: str) -> Callable[[dict[str, Any]], bool]:
        return lambda b: len(b["orders"]) == 2 and all(q == qty for _, _, q in b["orders"])

    def flat(b: dict[str, Any]) -> bool:
        return not b["orders"] and "LONG" not in b["positions"]

    for i in range(repeats):
        symbol = w.plan.spare[i % len(w.plan.spare)]
        mark = Decimal(w.plan.price_text(symbol, 0))
        measure(
            "protected_fill",
            lambda s=symbol: w.sim.call("entry", symbol=s, side="LONG", qty="0.1"),
            symbol,
            legs("0.1"),
        )
        measure(
            "tranche_update",
            lambda s=symbol: w.sim.call("entry", symbol=s, side="LONG", qty="0.05"),
            symbol,
            legs("0.15"),
        )
        spike = (mark * Decimal("1.02")).quantize(Decimal("0.01"))
        measure("instant_close", lambda s=symbol, p=spike: w.sim.call("marks", prices={s: str(p)}), symbol, flat)
        measure(
            "protected_fill",
            lambda s=symbol: w.sim.call("entry", symbol=s, side="LONG", qty="0.1"),
            symbol,
            legs("0.1"),
        )
        # The TP limit trades on the exchange (no mark frame is sent): posmon only has to cancel the sibling SL.
        through = (spike * Decimal("1.02")).quantize(Decimal("0.01"))
        measure(
            "tp_fill",
            lambda s=symbol, p=through: w.sim.call("marks", prices={s: str(p)}, trade=True, publish=False),
            symbol,
            flat,
        )
        # back to the starting mark for the next repeat on this symbol
        w.sim.call("marks", prices={symbol: str(mark)})
    per_event = {}
    for kind, rows in samples.items():
        totals = [sum(r.values()) for r in rows]
        kinds: dict[str, int] = {}
        for r in rows:
            for k, v in r.items():
                kinds[k] = kinds.get(k, 0) + v
        per_event[kind] = {
            "samples": len(rows),
            "calls_per_event": round(sum(totals) / len(totals), 2) if totals else None,
            "min": min(totals, default=None),
            "max": max(totals, default=None),
            "by_request": {k: round(v / len(rows), 2) for k, v in kinds.items()},
            "each": rows,
        }
    return {"per_event": per_event, "failures": failures}


# The user stream's listen-key keep-alive (a PUT every ``listen_key_keepalive_seconds``, default 1,800 s) is too rare
# for the 10 s idle window to see; it is added to the idle calls per hour.
KEEPALIVES_PER_HOUR = 3600 / 1800


def rest_comparison(per_event: dict[str, Any], measured_idle_per_hour: float) -> dict[str, Any]:
    idle_per_hour = measured_idle_per_hour + KEEPALIVES_PER_HOUR
    rows = {}
    for kind in ("protected_fill", "tranche_update", "instant_close", "tp_fill"):
        measured = per_event[kind]["calls_per_event"]
        base = BASELINE[kind]
        rows[kind] = {
            "posmon": measured,
            "baseline": base,
            "reduction_pct": None if measured is None else round(100 * (1 - measured / base), 1),
        }
    rows["idle_polling_per_hour"] = {
        "posmon": idle_per_hour,
        "measured_in_idle_window": measured_idle_per_hour,
        "listen_key_keepalives": KEEPALIVES_PER_HOUR,
        "baseline": BASELINE["polling_calls_per_hour"],
        "reduction_pct": round(100 * (1 - idle_per_hour / BASELINE["polling_calls_per_hour"]), 1),
    }
    base_hour = BASELINE["polling_calls_per_hour"] + sum(n * BASELINE[k] for k, n in EXAMPLE_HOUR.items())
    ours_hour = idle_per_hour + sum(n * (per_event[k]["calls_per_event"] or 0) for k, n in EXAMPLE_HOUR.items())
    return {
        "comparison": rows,
        "example_hour": {
            "workload": EXAMPLE_HOUR,
            "baseline_calls": base_hour,
            "posmon_calls": round(ours_hour, 1),
            "reduction_pct": round(100 * (1 - ours_hour / base_hour), 1),
        },
    }


# ---- the whole run -----------------------------------------------------------------------------------------------


PHASES = ("latency", "throughput", "rest", "large_store", "lighter_burst")
# Experiments, never the default: each is a change to the daemon made from outside posmon, in bench/daemon_proc.py,
# to measure what a proposed fix would buy. name -> (environment variable for the daemon process, what it does)
EXPERIMENTS = {
    "gc-freeze": ("BENCH_GC_FREEZE", "gc.freeze() in the daemon once every actor watches"),
    "wake-on-cross": (
        "BENCH_WAKE_ON_CROSS",
        "a mark price wakes a position actor only when it reaches the actor's "
        "nearest TP (the slot compares; the actor is not scheduled for prices that trigger nothing)",
    ),
    "indexed-load": (
        "BENCH_INDEXED_LOAD",
        "actors load their tranches with status IN ('open', 'closing'), which "
        "the tranches index answers, instead of status != 'closed', which scans the table",
    ),
    "shared-snapshot": (
        "BENCH_SHARED_SNAPSHOT",
        "during start-up the actors' per-symbol account reads are answered "
        "from one account-wide positionRisk + openOrders",
    ),
}


def run(
    sizes: Sizes,
    *,
    profile: bool = False,
    results_dir: Path = RESULTS,
    keep: bool = False,
    experiments: tuple[str, ...] = (),
    phases: tuple[str, ...] = PHASES,
    large_handshake_timeout: float | None = None,
) -> Path:
    """One benchmark run: the working set's start-up and memory always, then ``phases``; writes and returns the JSON.

    ``experiments``: names from ``EXPERIMENTS`` (changes to the daemon to measure a proposed fix), never default.
    ``large_handshake_timeout``: the large store's ``[aster] request_timeout_seconds`` (default: posmon's 10 s).
    The work directory (stores, logs) is removed at the end, whatever happens, unless ``keep``.
    """
    started = dt.datetime.now(dt.UTC)
    commit = git_commit()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="posmon-bench-"))
    try:
        return _run(
            sizes,
            work,
            started,
            commit,
            stamp,
            profile=profile,
            results_dir=results_dir,
            experiments=experiments,
            phases=phases,
            large_handshake_timeout=large_handshake_timeout,
        )
    finally:
        if keep:
            print(f"work dir (stores, logs): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(
    sizes: Sizes,
    work: Path,
    started: dt.datetime,
    commit: str,
    stamp: str,
    *,
    profile: bool,
    results_dir: Path,
    experiments: tuple[str, ...],
    phases: tuple[str, ...],
    large_handshake_timeout: float | None,
) -> Path:
    profiler = Profiler(results_dir / "profiles" / f"{stamp}-{commit[:12]}" if profile else None)
    daemon_env = {EXPERIMENTS[name][0]: "1" for name in experiments}
    out: dict[str, Any] = {
        "schema": 1,
        "kind": sizes.name,
        "started_at": started.isoformat(),
        "git_commit": commit,
        "machine": machine(),
        "sizes": asdict(sizes),
        "phases": list(phases),
        "profiled": profile,
        "experiment": "; ".join(EXPERIMENTS[name][1] for name in experiments) or None,
        "method": {
            "auth": "v3 (EIP-712, the default)",
            "transport": "HTTP + websockets on 127.0.0.1, simulator and daemon in separate processes",
            "rate_limits": "simulator publishes 1e9 weight/orders per minute: neither its "
            "429s nor the gateway's token buckets pace the runs",
            "tranches": "seeded directly into the store and onto the exchange",
            "websocket_handshake_timeout_s": {
                "working_set": HANDSHAKE_TIMEOUT,
                "large_store": large_handshake_timeout or 10.0,
            },
        },
    }
    t_start = time.monotonic()
    log(
        f"{sizes.name} run, commit {commit[:12]}, phases {','.join(phases)}, work dir {work}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    spec = PlanSpec(
        symbols=sizes.symbols,
        idle_per_side=sizes.idle_per_side,
        windows=(
            Window(SLOW, sizes.slow_steps, sizes.slow_triggers),
            Window(FAST, sizes.fast_steps, sizes.fast_triggers),
        ),
        probes=sizes.probes,
        spare_symbols=sizes.spare,
    )
    w = World("working_set", spec, work, handshake_timeout=HANDSHAKE_TIMEOUT, daemon_env=daemon_env)
    try:
        out["setup"] = {"working_set": w.setup}
        log(f"working set seeded: {w.setup}")
        startup = w.start_daemon(sizes.startup_cap_s, profiler, quiet_s=sizes.quiet_s)
        log(f"working-set daemon: {startup}")
        out["startup"] = {"working_set": startup}
        if not startup["finished"]:
            raise RuntimeError("the daemon never started watching prices; see the logs in " + str(w.work))
        assert w.daemon is not None
        held = w.daemon.call("metrics")["tranches"]
        out["memory"] = {
            "working_set": {
                "tranches": held,
                **memory_kib(w.daemon.pid),
                "when_loaded": startup["memory_kib_when_loaded"],
                "tranches_loaded": startup["tranches_loaded"],
                "census": w.daemon.call("census", timeout=120),
            }
        }
        if sizes.name != "smoke":
            time.sleep(sizes.quiet_s)  # let the end of start-up (a last reconcile, a collection) pass first
        idle = idle_cpu(w, sizes.idle_seconds)
        out["idle_1hz"] = idle
        log(f"idle 1 Hz: {idle}")
        if "latency" in phases:
            out["latency"] = {}
            for window, rate in ((SLOW, sizes.slow_rate), (FAST, sizes.fast_rate)):
                res = latency_run(w, window, rate, sizes.drain_s, profiler)
                out["latency"][window] = res
                log(
                    f"latency {window}: {res['tick_to_order']} missing={res['missing']} cpu={res['daemon_cpu_pct']}% "
                    f"load={res['machine_load']}"
                )
        if "throughput" in phases:
            out["throughput"] = throughput(w, sizes, profiler)
            out["throughput"]["cpu_at_1hz_pct"] = out.get("latency", {}).get(SLOW, {}).get("daemon_cpu_pct")
            out["throughput"]["cpu_at_1hz_idle_pct"] = idle["daemon_cpu_pct"]
        if "rest" in phases:
            rest = rest_calls(w, sizes.rest_repeats, sizes.settle_quiet_s)
            out["rest"] = {**rest, **rest_comparison(rest["per_event"], idle["requests_per_hour"]), "idle": idle}
            log(f"rest: {out['rest']['comparison']}")
        out["working_set_metrics"] = w.daemon.call("metrics")["counters"]
    finally:
        w.stop()
    if "large_store" in phases:
        big_spec = PlanSpec(symbols=sizes.symbols, idle_per_side=sizes.big_idle_per_side)
        big = World("large_store", big_spec, work, handshake_timeout=large_handshake_timeout, daemon_env=daemon_env)
        try:
            out["setup"]["large_store"] = big.setup
            log(f"large store seeded: {big.setup}")
            rate = out["startup"]["working_set"].get("order_lookups_per_s")
            startup = big.start_daemon(sizes.big_startup_cap_s, profiler, quiet_s=sizes.quiet_s, lookup_rate=rate)
            log(f"large-store daemon: {startup}")
            out["startup"]["large_store"] = startup
            assert big.daemon is not None
            held = big.daemon.call("metrics", timeout=60)["tranches"]
            out["memory"]["large_store"] = {
                "tranches": held,
                **memory_kib(big.daemon.pid),
                "when_loaded": startup["memory_kib_when_loaded"],
                "tranches_loaded": startup["tranches_loaded"],
                "measured_at": "after start-up"
                if startup["finished"]
                else f"{startup['gave_up_after_s']}s into start-up (still recovering)",
                "census": big.daemon.call("census", timeout=300),
            }
        finally:
            big.stop()
        out["memory"].update(memory_figures(out["memory"]))
    if "lighter_burst" in phases:  # its own simulator and daemon (bench/lighter_burst.py)
        from bench import lighter_burst

        out["lighter_burst"] = lighter_burst.run(smoke=sizes.name == "smoke")
        log(f"lighter burst: {out['lighter_burst']['price_to_tx']}")
    log("parsing micro-benchmark (in-process)")
    out["parse"] = parse_bench.measure(smoke=sizes.name == "smoke")
    out["targets"] = targets(out)
    out["duration_s"] = round(time.monotonic() - t_start, 1)
    if profile:
        from bench.profile import summarize

        out["profiles"] = {
            name: {"file": path, "top": summarize(Path(path))}
            for name, path in profiler.files.items()
            if Path(path).exists()
        }
    results_dir.mkdir(parents=True, exist_ok=True)
    suffix = (
        ("-smoke" if sizes.name == "smoke" else "")
        + "".join(f"-{name}" for name in experiments)
        + ("" if tuple(phases) == PHASES else "-partial")
    )
    path = results_dir / f"{stamp}-{commit[:12]}{suffix}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(report.table(out))
    print(f"\nresults: {path}")
    return path


def memory_figures(m: dict[str, Any]) -> dict[str, Any]:
    """KiB per tranche: whole process / tranches, and the marginal cost between the two sizes.

    The marginal figure compares the two daemons right after every tranche was loaded from the store (before the
    start-up reconcile has churned through the orders), so it is the cost of holding an idle tranche.
    """
    ws, ls = m["working_set"], m["large_store"]
    out: dict[str, Any] = {
        "kib_per_tranche_working_set": round(ws["VmRSS"] / max(1, ws["tranches"]), 3),
        "kib_per_tranche_large_store": round(ls["VmRSS"] / max(1, ls["tranches"]), 3),
    }
    a, b = ws.get("when_loaded"), ls.get("when_loaded")
    if a and b and (ls["tranches_loaded"] or 0) > (ws["tranches_loaded"] or 0):
        out["kib_per_tranche_marginal"] = round(
            (b["VmRSS"] - a["VmRSS"]) / (ls["tranches_loaded"] - ws["tranches_loaded"]), 3
        )
    if ls["tranches"] > ws["tranches"]:
        # The figure: both processes after start-up (the start-up snapshot released, its high-water kept).
        out["kib_per_tranche_after_startup"] = round((ls["VmRSS"] - ws["VmRSS"]) / (ls["tranches"] - ws["tranches"]), 3)
        out.setdefault("kib_per_tranche_marginal", out["kib_per_tranche_after_startup"])
        a_c, b_c = ws.get("census"), ls.get("census")
        if a_c and b_c and "census_by_type" in b_c:
            # What an added tranche costs by type, among the daemon's reachable objects (sys.getsizeof).
            a_types = {name: (b, n) for name, b, n in a_c["census_by_type"]}
            d = ls["tranches"] - ws["tranches"]
            rows = []
            for name, b, n in b_c["census_by_type"]:
                b0, n0 = a_types.get(name, (0, 0))
                rows.append((name, round((b - b0) / d, 1), round((n - n0) / d, 2)))
            out["census_per_added_tranche"] = rows
            out["census_bytes_per_added_tranche"] = round((b_c["census_bytes"] - a_c["census_bytes"]) / d, 1)
    return out


def targets(out: dict[str, Any]) -> dict[str, Any]:
    """Each target's measured value and whether it is met (None: the phase that measures it was not run)."""

    def row(value: Any, target: float, ok: bool | None, note: str = "") -> dict[str, Any]:
        return {
            "value": value,
            "target": target,
            "met": None if value is None else ok,
            **({"note": note} if note else {}),
        }

    lat = out.get("latency", {}).get(SLOW, {}).get("tick_to_order", {}).get("p99_ms")

    def p99(load: str, figure: str) -> dict[str, Any]:
        key = f"p99_{figure}_{load}_ms"
        v = out.get("latency", {}).get(load, {}).get(figure, {}).get("p99_ms")
        return row(v, TARGETS[key], v is not None and v < TARGETS[key])

    thr = out.get("throughput", {}).get("max_updates_per_s")
    mem = out["memory"].get("kib_per_tranche_marginal", out["memory"].get("kib_per_tranche_large_store"))
    mem_after = out["memory"].get("kib_per_tranche_after_startup")
    ws_start = out["startup"]["working_set"]
    ws_s = ws_start.get("recovered_s") if ws_start.get("finished") else None
    big = out["startup"].get("large_store")
    start, note = None, ""
    if big is not None:
        start = big["recovered_s"] if big["finished"] else (big.get("projection") or {}).get("recovered_s")
        note = (
            "cut short; value projected from the progress so far"
            if not big["finished"]
            else "REST recovery only: the price stream hung, no actor ever watched prices"
            if big["recovered_without_prices"]
            else ""
        )
    rest = out.get("rest", {})
    fill = rest.get("comparison", {}).get("protected_fill", {}).get("posmon")
    red = rest.get("example_hour", {}).get("reduction_pct")
    speedup = out.get("parse", {}).get("aster_marks_doc", {}).get("speedup")
    t = TARGETS
    return {
        "p99_tick_to_order_1hz_ms": row(
            lat, t["p99_tick_to_order_1hz_ms"], lat is not None and lat < t["p99_tick_to_order_1hz_ms"]
        ),
        "p99_tick_to_close_1hz_ms": p99(SLOW, "tick_to_close"),
        "p99_tick_to_order_10hz_ms": p99(FAST, "tick_to_order"),
        "p99_tick_to_close_10hz_ms": p99(FAST, "tick_to_close"),
        "updates_per_s": row(thr, t["updates_per_s"], thr is not None and thr >= t["updates_per_s"]),
        "kib_per_idle_tranche": row(
            mem, t["kib_per_idle_tranche"], mem is not None and mem < t["kib_per_idle_tranche"]
        ),
        "startup_100k_s": row(
            start,
            t["startup_100k_s"],
            big is not None
            and big["finished"]
            and start is not None
            and not big["recovered_without_prices"]
            and start < t["startup_100k_s"],
            note,
        ),
        "rest_calls_per_protected_fill": row(
            fill, t["rest_calls_per_protected_fill"], fill is not None and fill <= t["rest_calls_per_protected_fill"]
        ),
        "rest_reduction_pct": row(red, t["rest_reduction_pct"], red is not None and red >= t["rest_reduction_pct"]),
        "startup_12k_s": row(ws_s, t["startup_12k_s"], ws_s is not None and ws_s < t["startup_12k_s"]),
        "kib_per_idle_tranche_after_startup": row(
            mem_after,
            t["kib_per_idle_tranche_after_startup"],
            mem_after is not None and mem_after <= t["kib_per_idle_tranche_after_startup"],
        ),
        **_lighter_burst_target(out, t["lighter_burst_p50_ms"], row),
        "mark_frame_parse_speedup": row(
            speedup,
            t["mark_frame_parse_speedup"],
            speedup is not None and speedup >= t["mark_frame_parse_speedup"],
            "1,008-symbol frame, in-process (bench/parse.py)",
        ),
    }


def _lighter_burst_target(out: dict[str, Any], target: float, row: Any) -> dict[str, Any]:
    """Lighter: price frame -> the close's transaction received (sendTxBatch), p50 of 50 stop-outs at once."""
    lb = out.get("lighter_burst", {})
    p = lb.get("price_to_tx", {})
    p50 = p.get("p50_ms")
    note = (
        f"max {p.get('max_ms')} ms; {lb.get('requests_per_burst')} request(s) per burst; sign threads "
        f"{lb.get('sign_threads')}"
        if lb
        else ""
    )
    return {"lighter_burst_p50_ms": row(p50, target, p50 is not None and p50 < target, note)}
