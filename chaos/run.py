"""One run of the campaign: a simulator, the real daemon as a process, a random schedule, settling, invariants.

Every random choice of a run is drawn up front from its seed into a ``Schedule`` (workload, marks, faults,
kills, restart delays), so ``--seed S --runs 1`` replays the same choices; only the daemon's timing differs.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import trio

from chaos.invariants import Violation, check_history, check_log, check_state, read_store
from chaos.venues import VENUES, Venue
from posmon.domain.orders import Side

ROOT = Path(__file__).resolve().parent.parent
MARK_STEP_S = 0.25


@dataclass(frozen=True)
class Options:
    duration: float = 5.0  # seconds of chaos per run
    settle_timeout: float = 30.0  # seconds the daemon gets to reach every state invariant afterwards
    start_timeout: float = 30.0  # seconds a (re)started daemon gets to connect its streams
    keep: Path | None = None  # where failing runs' directories (config, store, log) are kept
    reconcile_interval: float = 2.0  # [daemon] reconcile_interval_seconds, when this posmon has the key
    keep_all: bool = False  # keep passing runs' directories too
    daemon_src: Path | None = None  # run the daemon from this source tree (another commit) instead of ours


@dataclass(frozen=True)
class Action:
    t: float
    kind: str  # "marks" | "entry" | "silent" | "liquidate" | "fault" | "partial_tp" | pair events (chaos.pairs)
    args: dict[str, Any]
    venue: str = ""  # the venue it acts on in a two-venue run ("": the run's only venue)


@dataclass
class Schedule:
    seed: int
    venue: str
    pre_entries: list[dict[str, Any]]
    actions: list[Action]
    kills: list[tuple[float, str, float, float]]  # (at, wait for, extra wait, restart delay)
    instant_tp: bool
    late: list[Action] = field(default_factory=list)  # after the faults, the daemon connected: no restart helps
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> its [risk.symbols.X] exit plan


# The exit plans a run's symbols may get (issue 15), sized to the marks' moves: offsets drift by ~0.3 % a step and
# jump 1.2-2.6 %, so ladder levels fill one by one or several at once, trails activate and move, stops get to
# break-even, and plain 1 % / 2 % tranches stay in the mix.
PLANS: tuple[dict[str, Any], ...] = (
    {},
    {"tp_levels": [[0.5, 30], [1.0, 30], [1.5, 40]]},
    {"tp_levels": [[0.6, 50], [1.2, 50]], "breakeven_after_tp": 1, "breakeven_offset_pct": 0.1},
    {"trailing_activation_pct": 0.3, "trailing_callback_pct": 0.6, "trailing_min_step_pct": 0.1},
    {"breakeven_trigger_pct": 0.8, "breakeven_offset_pct": 0.1},
    {
        "tp_levels": [[0.8, 50], [1.6, 50]],
        "trailing_activation_pct": 0.5,
        "trailing_callback_pct": 0.7,
        "breakeven_after_tp": 1,
    },
)


def plans_for(seed: int, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """Each symbol's exit plan, drawn from its own stream so the rest of a seed's schedule stays as it was."""
    rng = random.Random(f"{seed}-plans")
    return {s: p for s in symbols if (p := rng.choice(PLANS))}


@dataclass
class RunResult:
    seed: int
    venue: str
    kills: int = 0
    starts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    workload: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    protect_times: list[float] = field(default_factory=list)
    settle_seconds: float | None = None
    wall_seconds: float = 0.0
    kept: str | None = None
    error: str | None = None  # the campaign itself failed (a bug of chaos/, not of the daemon)

    @property
    def ok(self) -> bool:
        return not self.violations and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "venue": self.venue,
            "ok": self.ok,
            "kills": self.kills,
            "starts": self.starts,
            "faults": dict(self.faults),
            "workload": dict(self.workload),
            "violations": [{"invariant": v.invariant, "detail": v.detail} for v in self.violations],
            "protect_times_s": [round(t, 3) for t in self.protect_times],
            "settle_s": None if self.settle_seconds is None else round(self.settle_seconds, 3),
            "wall_s": round(self.wall_seconds, 2),
            "kept": self.kept,
            "error": self.error,
        }


def venue_for(seed: int, venue: str) -> str:
    """``both`` alternates by seed, so a replayed seed picks the same venue."""
    return ("aster", "lighter")[seed % 2] if venue == "both" else venue


def plan(seed: int, venue: Venue, opts: Options, stream: str = "") -> Schedule:
    """A venue's schedule; ``stream`` names an independent draw from the same seed (a two-venue run's venue)."""
    rng = random.Random(f"{seed}-{stream}" if stream else seed)
    d = opts.duration
    symbols = list(venue.symbols)
    actions: list[Action] = []
    offsets = {s: 0.0 for s in symbols}
    steps = int(d / MARK_STEP_S)
    for i in range(1, steps + 1):
        prices = {}
        for s in symbols:
            o = offsets[s] * 0.92 + rng.gauss(0, 0.3)
            if rng.random() < 0.06:
                o += rng.choice((-1, 1)) * rng.uniform(1.2, 2.6)  # through TPs (1 %) and SLs (2 %)
            offsets[s] = max(-4.0, min(4.0, o))
            prices[s] = offsets[s]
        actions.append(Action(i * MARK_STEP_S, "marks", {"offsets": prices}))
    for _ in range(rng.randint(3, 6)):
        actions.append(
            Action(
                rng.uniform(0, d),
                "entry",
                {
                    "symbol": rng.choice(symbols),
                    "side": rng.choice(("LONG", "SHORT")),
                    "notional": rng.randint(40, 200),
                },
            )
        )
    for _ in range(rng.choice((0, 1, 1, 2))):
        actions.append(
            Action(
                rng.uniform(0, d),
                "silent",
                {
                    "symbol": rng.choice(symbols),
                    "side": rng.choice(("LONG", "SHORT")),
                    "how": rng.choice(("appear", "grow", "shrink", "vanish")),
                    "factor": rng.uniform(0.2, 0.8),
                    "notional": rng.randint(40, 200),
                    "frame": rng.random() < 0.6,
                    "pick": rng.random(),
                },
            )
        )
    for _ in range(rng.choice((0, 1, 2)) if venue.hedge else 0):
        actions.append(Action(rng.uniform(0, d), "partial_tp", {"pick": rng.random(), "factor": rng.uniform(0.2, 0.8)}))
    if rng.random() < 0.4:
        actions.append(
            Action(
                rng.uniform(0, d),
                "liquidate",
                {
                    "symbol": rng.choice(symbols),
                    "side": rng.choice(("LONG", "SHORT")),
                    "adl": rng.random() < 0.4,
                    "partial": rng.random() < 0.4,
                    "factor": rng.uniform(0.2, 0.8),
                    "pick": rng.random(),
                },
            )
        )
    for i in range(rng.randint(2, 5)):
        actions.append(
            Action(
                rng.uniform(0, d), "fault", {"kind": rng.choice(venue.fault_kinds), "seed": f"{seed}{stream}-fault-{i}"}
            )
        )
    actions.sort(key=lambda a: a.t)
    # (at, after: "alive" = any moment of the process, "connected" = during its start-up reconcile, extra delay,
    # restart delay)
    kills = sorted(
        (rng.uniform(0.2, d), rng.choice(("alive", "connected")), rng.uniform(0.0, 0.5), rng.uniform(0.0, 1.0))
        for _ in range(rng.choice((1, 2, 2, 3, 3)))
    )
    pre = [
        {"symbol": rng.choice(symbols), "side": rng.choice(("LONG", "SHORT")), "notional": rng.randint(40, 200)}
        for _ in range(rng.choice((0, 0, 1, 2)))
    ]
    instant_tp = rng.random() < 0.5
    late = []
    if rng.random() < 0.5:
        late.append(
            Action(
                0.0,
                "silent",
                {
                    "symbol": rng.choice(symbols),
                    "side": rng.choice(("LONG", "SHORT")),
                    "how": rng.choice(("appear", "grow", "shrink", "vanish")),
                    "factor": rng.uniform(0.2, 0.8),
                    "notional": rng.randint(40, 200),
                    "frame": rng.random() < 0.5,
                    "pick": rng.random(),
                },
            )
        )
    if rng.random() < 0.2:
        late.append(
            Action(
                0.0,
                "liquidate",
                {
                    "symbol": rng.choice(symbols),
                    "side": rng.choice(("LONG", "SHORT")),
                    "adl": rng.random() < 0.4,
                    "partial": rng.random() < 0.4,
                    "factor": rng.uniform(0.2, 0.8),
                    "pick": rng.random(),
                },
            )
        )
    return Schedule(
        seed, venue.name, pre, actions, kills, instant_tp=instant_tp, late=late, plans=plans_for(seed, symbols)
    )


def _has_reconcile_key(src: Path) -> bool:
    try:
        return "reconcile_interval_seconds" in (src / "posmon" / "config.py").read_text()
    except OSError:
        return False


def _has_plan_keys(src: Path) -> bool:
    """An older posmon (``--daemon-src``) refuses exit-plan keys it does not know: it runs without plans."""
    return (src / "posmon" / "domain" / "exitplan.py").exists()


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plan_sections(plans: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"\n[risk.symbols.{symbol}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in fields.items())
        for symbol, fields in sorted(plans.items())
    )


def write_config(
    path: Path,
    store: Path,
    venue: Venue,
    rest_url: str,
    ws_url: str,
    schedule: Schedule,
    opts: Options,
    *,
    others: tuple[tuple[Venue, str, str], ...] = (),
    api_port: int | None = None,
) -> None:
    """The daemon's config; ``others`` are more venues in the same daemon, ``api_port`` enables the API on it."""
    venues = [venue.name] + [v.name for v, _, _ in others]
    which = f"venues = {venues!r}".replace("'", '"') if others else f'venue = "{venue.name}"'
    api = "enabled = false" if api_port is None else f'enabled = true\nhost = "127.0.0.1"\nport = {api_port}'
    sections = "\n".join(v.config(r, w) for v, r, w in others)
    has_key = _has_reconcile_key(opts.daemon_src or ROOT)
    reconcile = f"reconcile_interval_seconds = {opts.reconcile_interval}\n" if has_key else ""
    plans = _plan_sections(schedule.plans) if _has_plan_keys(opts.daemon_src or ROOT) else ""
    path.write_text(f"""[daemon]
{which}
store = "{store}"
hedge_mode = {str(venue.hedge).lower()}
log_level = "INFO"
stale_stream_seconds = 3.0
request_timeout_seconds = 2.0
restart_backoff_seconds = 0.2
restart_budget = 50
{reconcile}
[risk]
tp_pct = 1.0
sl_pct = 2.0
instant_tp_enabled = {str(schedule.instant_tp).lower()}
{plans}
[api]
{api}

{venue.config(rest_url, ws_url)}{sections}""")


def _daemon_command(config: Path, src: Path | None = None) -> list[str]:
    """``posmon run``; with ``src``, posmon is imported from that tree (the editable install's finder removed)."""
    if src is None:
        script = Path(sys.executable).parent / "posmon"
        if script.exists():
            return [str(script), "--config", str(config), "run"]
        code = "import sys; from posmon.cli import main; sys.exit(main())"
    else:
        code = (
            "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
            f"getattr(f, '__module__', '')]; sys.path.insert(0, {str(src)!r}); "
            "from posmon.cli import main; sys.argv[0] = 'posmon'; sys.exit(main())"
        )
    return [sys.executable, "-c", code, "--config", str(config), "run"]


class Daemon:
    """``posmon run`` as a child process, its output appended to one log across restarts."""

    def __init__(self, config: Path, log: Path, env: dict[str, str], src: Path | None = None) -> None:
        self.config, self.log, self.env, self.src = config, log, env, src
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.died: list[str] = []  # exits the campaign did not cause

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== chaos: daemon start #{self.starts} at {time.time():.3f} ===\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                _daemon_command(self.config, self.src),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.log.parent,
            )

    def alive(self) -> bool:
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is not None and self.proc is not None:
            self.died.append(f"daemon start #{self.starts} exited by itself with code {code}")
            self.proc = None
        return code is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
            with self.log.open("ab") as out:
                out.write(f"\n=== chaos: SIGKILL at {time.time():.3f} ===\n".encode())
        self.proc = None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(8):
                while self.proc.poll() is None:  # noqa: ASYNC110 (a child process: nothing to wait on)
                    await trio.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _quantize(qty: Decimal, step: Decimal) -> Decimal:
    return (qty / step).to_integral_value(ROUND_FLOOR) * step


def _price(venue: Venue, symbol: str, offset_pct: float) -> Decimal:
    base, tick = venue.base_price(symbol), venue.tick(symbol)
    return (base * (1 + Decimal(str(round(offset_pct, 4))) / 100) / tick).to_integral_value() * tick


class Runner:
    """Runs one schedule; the campaign makes one per run."""

    def __init__(self, schedule: Schedule, venue: Venue | list[Venue], opts: Options) -> None:
        venues = venue if isinstance(venue, list) else [venue]
        self.schedule, self.venue, self.opts = schedule, venues[0], opts
        self.venues = {v.name: v for v in venues}
        self.result = RunResult(schedule.seed, schedule.venue)
        self.work = Path(tempfile.mkdtemp(prefix=f"chaos-{schedule.seed}-"))
        self.store = self.work / "posmon.sqlite"
        self.log = self.work / "daemon.log"
        self.daemon: Daemon | None = None
        self.unprotected_since: float | None = None
        self.marks: dict[str, dict[str, Decimal]] = {
            v.name: {s: v.base_price(s) for s in v.symbols} for v in self.venues.values()
        }
        self.chaos_over = False
        self.journal: list[str] = []
        self._did = ""

    # ---- the run ------------------------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        t0 = time.monotonic()
        try:
            async with trio.open_nursery() as nursery:
                urls = [(v, *await v.serve(nursery)) for v in self.venues.values()]
                config = self.work / "config.toml"
                self.write_config(config, urls)
                env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
                for v in self.venues.values():
                    env.update(v.env())
                self.daemon = Daemon(config, self.log, env, self.opts.daemon_src)
                try:
                    await self._run(nursery)
                except Exception as exc:  # reported with the seed that replays it; the campaign goes on
                    self.result.error = f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=-3)})"
                nursery.cancel_scope.cancel()
        except BaseException:  # cancelled (SIGTERM, Ctrl-C): no daemon or directory is left behind
            if self.daemon is not None:
                self.daemon.kill()
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        if self.daemon is not None:
            self.daemon.kill()
        self.result.wall_seconds = time.monotonic() - t0
        self._finish()
        return self.result

    def write_config(self, path: Path, urls: list[tuple[Venue, str, str]]) -> None:
        venue, rest_url, ws_url = urls[0]
        write_config(path, self.store, venue, rest_url, ws_url, self.schedule, self.opts)

    def _v(self, name: str) -> Venue:
        """The venue an action or entry names ("": the run's only venue)."""
        return self.venues[name] if name else self.venue

    def connected(self) -> bool:
        return all(v.connected() for v in self.venues.values())

    def check_state(self) -> list[Violation]:
        """The state invariants on every venue (a two-venue run's details name the venue)."""
        store = read_store(self.store)
        if len(self.venues) == 1:
            return check_state(self.venue, store)
        return [
            Violation(v.invariant, f"{venue.name}: {v.detail}")
            for venue in self.venues.values()
            for v in check_state(venue, store, by_venue=True)
        ]

    def check_history(self) -> list[Violation]:
        if len(self.venues) == 1:
            return check_history(self.venue.fill_log)
        return [
            Violation(v.invariant, f"{venue.name}: {v.detail}")
            for venue in self.venues.values()
            for v in check_history(venue.fill_log)
        ]

    async def _run(self, nursery: trio.Nursery) -> None:
        daemon = self.daemon
        assert daemon is not None
        for entry in self.schedule.pre_entries:
            self._v(entry.get("venue", "")).entry(entry["symbol"], Side(entry["side"]), Decimal(entry["notional"]))
            self.result.workload["entry_before_start"] += 1
        nursery.start_soon(self._heartbeat)
        daemon.start()
        if not await self._wait_connected():
            return
        if self.schedule.pre_entries:
            self._changed()
        nursery.start_soon(self._monitor)
        async with trio.open_nursery() as chaos:
            kills_done = trio.Event()

            async def kills() -> None:
                await self._kills()
                kills_done.set()

            chaos.start_soon(kills)
            await self._workload(chaos)
            with trio.move_on_after(self.opts.start_timeout):  # the schedule's kills all happen, even if late
                await kills_done.wait()
            chaos.cancel_scope.cancel()
        self.chaos_over = True
        for venue in self.venues.values():
            venue.clear_faults()
        self._note("faults cleared")
        if not daemon.alive() and not daemon.died:
            daemon.start()
        if self.schedule.late and await self._wait_connected():
            await trio.sleep(0.5)  # past its start-up reconcile: only frames or a periodic reconcile can see these
            for action in self.schedule.late:
                before = sum(self.result.workload.values())
                self._apply(action, nursery)
                if sum(self.result.workload.values()) > before:  # it changed the account (not a no-op)
                    self.result.workload[f"late_{action.kind}"] += 1
        await self._settle()
        self.result.violations += self.check_history()
        if not daemon.alive():
            self.result.violations.append(Violation("daemon_alive", "; ".join(daemon.died) or "not running"))
        await daemon.stop()

    async def _wait_connected(self) -> bool:
        """Until the (re)started daemon holds its streams; a daemon that cannot start is a violation."""
        daemon = self.daemon
        assert daemon is not None
        with trio.move_on_after(self.opts.start_timeout):
            while not (daemon.alive() and self.connected()):
                if daemon.died:
                    break
                await trio.sleep(0.05)
            else:
                return True
        if daemon.alive() and self.connected():
            return True
        self.result.violations.append(
            Violation(
                "daemon_alive", "; ".join(daemon.died) or f"not connected {self.opts.start_timeout:.0f} s after start"
            )
        )
        return False

    async def _heartbeat(self) -> None:
        """The current marks again every half second, so quiet streams are not taken for dead ones."""
        while True:
            await trio.sleep(0.5)
            for name, venue in self.venues.items():
                venue.set_marks(dict(self.marks[name]))

    async def _workload(self, nursery: trio.Nursery) -> None:
        start = trio.current_time()
        for action in self.schedule.actions:
            await trio.sleep_until(start + action.t)
            self._apply(action, nursery)
        await trio.sleep_until(start + self.opts.duration)

    def _note(self, text: str) -> None:
        """One line of the run's journal (``chaos.log`` in a kept run directory), timed like the daemon's log."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
        positions = ", ".join(
            (f"{venue.name} " if len(self.venues) > 1 else "") + f"{s} {side.value} {q}"
            for venue in self.venues.values()
            for (s, side), q in sorted(venue.positions().items())
        )
        self.journal.append(f"{stamp} {text} | positions: {positions or 'none'}")

    def _apply(self, action: Action, nursery: trio.Nursery) -> None:
        self._did = ""
        self._apply_action(action, nursery)
        if action.kind != "marks":
            where = f"{action.venue} " if action.venue else ""
            self._note(f"{where}{action.kind} {action.args}{': ' + self._did if self._did else ''}")

    def _apply_action(self, action: Action, nursery: trio.Nursery) -> None:
        venue, a, counts = self._v(action.venue), action.args, self.result.workload
        if action.kind == "marks":
            self.marks[venue.name] = {s: _price(venue, s, o) for s, o in a["offsets"].items()}
            venue.set_marks(dict(self.marks[venue.name]))
            return
        if action.kind == "fault":
            venue.inject(a["kind"], random.Random(a["seed"]), nursery)
            self.result.faults[a["kind"]] += 1
            return
        if action.kind == "partial_tp":
            if venue.partial_tp(a["pick"], a["factor"]):
                counts["partial_tp"] += 1
                self._changed()
            return
        symbol, side = a["symbol"], Side(a["side"])
        if action.kind == "liquidate" or (action.kind == "silent" and a["how"] != "appear"):
            symbol, side = self._held_or(venue, symbol, side, a["pick"])
        if action.kind == "entry":
            if venue.entry(symbol, side, Decimal(a["notional"])):
                counts["entry"] += 1
                self._changed()
        elif action.kind == "silent":
            step = venue.exchange.engine.rules[symbol].step_size
            held = venue.exchange.engine.position(symbol, side)
            qty = held.qty if held is not None else Decimal(0)
            how = a["how"]
            if how == "appear" or (qty == 0 and how == "grow"):
                if qty == 0:
                    new = venue.exchange.entry_qty(symbol, Decimal(a["notional"])) or Decimal(0)
                else:
                    new = qty + _quantize(qty * Decimal(str(a["factor"])), step)
                how = "appear" if qty == 0 else "grow"
            elif qty == 0:
                return  # nothing to shrink or remove
            elif how == "grow":
                new = qty + max(step, _quantize(qty * Decimal(str(a["factor"])), step))
            elif how == "shrink":
                new = max(step, _quantize(qty * Decimal(str(a["factor"])), step))
                if new >= qty:
                    return
            else:
                new = Decimal(0)
            venue.silent(symbol, side, new, frame=a["frame"])
            self._did = f"{symbol} {side.value} {qty} -> {new} ({how}, {'frame' if a['frame'] else 'no frame'})"
            counts[f"silent_{how}_{'frame' if a['frame'] else 'no_frame'}"] += 1
            self._changed()
        elif action.kind == "liquidate":
            held = venue.exchange.engine.position(symbol, side)
            if held is None:
                return
            qty = None
            if a["partial"]:
                step = venue.exchange.engine.rules[symbol].step_size
                qty = max(step, _quantize(held.qty * Decimal(str(a["factor"])), step))
            self._did = f"{symbol} {side.value} {held.qty} minus {qty or 'all'}"
            if venue.liquidate(symbol, side, qty, adl=a["adl"]):
                counts["adl" if a["adl"] else "liquidation"] += 1
                self._changed()

    def _held_or(self, venue: Venue, symbol: str, side: Side, pick: float) -> tuple[str, Side]:
        """``(symbol, side)`` if a position is held there, else one of the positions held (by ``pick``)."""
        held = sorted(venue.positions())
        if not held or (symbol, side) in held:
            return symbol, side
        return held[min(len(held) - 1, int(pick * len(held)))]

    def _changed(self) -> None:
        if self.unprotected_since is None:
            self.unprotected_since = trio.current_time()

    async def _kills(self) -> None:
        daemon = self.daemon
        assert daemon is not None
        start = trio.current_time()
        for at, wait_for, extra, restart_delay in self.schedule.kills:
            await trio.sleep_until(start + at)
            while not daemon.alive() or (wait_for == "connected" and not self.connected()):
                if daemon.died:
                    return
                await trio.sleep(0.02)
            await trio.sleep(extra)
            daemon.kill()
            self._note("SIGKILL")
            await trio.sleep(restart_delay)
            daemon.start()
            self._note(f"daemon start #{daemon.starts}")

    async def _monitor(self) -> None:
        """Time from a change of the account (workload) to every position protected again."""
        while not self.chaos_over:
            await trio.sleep(0.2)
            self._check_protected()

    def _check_protected(self) -> bool:
        ok = not self.check_state()
        if ok and self.unprotected_since is not None:
            self.result.protect_times.append(trio.current_time() - self.unprotected_since)
            self.unprotected_since = None
        return ok

    async def _settle(self) -> None:
        self._note("settling")
        start = trio.current_time()
        passes = 0
        deadline = start + self.opts.settle_timeout
        while trio.current_time() < deadline:
            await trio.sleep(0.25)
            daemon = self.daemon
            if daemon is not None and not daemon.alive() and daemon.died:
                break
            if self._check_protected():
                passes += 1
                if passes >= 2:
                    self.result.settle_seconds = trio.current_time() - start
                    self._note(f"settled in {self.result.settle_seconds:.2f} s")
                    return
            else:
                passes = 0
        self.result.violations += self.check_state()
        self._note(f"not settled after {self.opts.settle_timeout:.0f} s")

    def _finish(self) -> None:
        daemon = self.daemon
        if daemon is not None:
            self.result.kills, self.result.starts = daemon.kills, daemon.starts
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            text = ""
        self.result.violations += check_log(text)
        resting = "\n".join(f"  resting {v.name} {o}" for v in self.venues.values() for o in v.resting())
        (self.work / "chaos.log").write_text(
            "\n".join(self.journal)
            + "\n"
            + resting
            + "\n"
            + "\n".join(f"  violation {v}" for v in self.result.violations)
            + "\n"
        )
        if (self.result.violations or self.opts.keep_all) and self.opts.keep is not None:
            dest = self.opts.keep / f"{self.result.venue}-seed-{self.schedule.seed}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(self.work, dest, ignore=shutil.ignore_patterns("*.lock"))
            self.result.kept = str(dest)
        shutil.rmtree(self.work, ignore_errors=True)


async def one_run(seed: int, venue_name: str, opts: Options) -> RunResult:
    venue = VENUES[venue_for(seed, venue_name)]()
    return await Runner(plan(seed, venue, opts), venue, opts).run()
