"""The peer benchmark's runner: each row through NautilusTrader's OrderEmulator and through posmon, one table.

Each side of each row runs in its own fresh process, one after the other (2 cores: never both at once): the
peer in its own virtualenv (made here on first use, never in posmon's dependencies), posmon in this
interpreter's. See bench/README.md, *Peers*.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.proto import busy_cpu_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv-nautilus"
PEER_PYTHON = VENV / "bin" / "python"
PEER_PACKAGE = "nautilus_trader==1.221.0"  # the newest that installs on Python 3.11
ROW_TIMEOUT_S = 600


class PeersError(Exception):
    """A step of the benchmark failed; the message is the one line the user sees."""


@dataclass(frozen=True)
class Row:
    name: str
    stops: int  # resting stops that never trigger
    symbols: int  # spread round robin over this many symbols
    ticks: int  # quiet ticks, round robin over the symbols
    triggers: int  # more stops on the first symbol per injected tick (each tick crosses its own, after the quiet ones)
    rounds: int = 5  # injected triggering ticks


ROWS = (
    Row("no stops", 0, 1, 50_000, 0),
    Row("1,000 on 1 symbol", 1_000, 1, 10_000, 5),
    Row("10,000 on 1 symbol", 10_000, 1, 3_000, 5),
    Row("10,000 over 100 symbols", 10_000, 100, 30_000, 5),
)
SMOKE_ROWS = (
    Row("no stops", 0, 1, 300, 0),
    Row("20 on 1 symbol", 20, 1, 300, 2, rounds=2),
    Row("50 over 5 symbols", 50, 5, 300, 2, rounds=2),
)
# The peer on this machine when it was quiet (issue 14), for orientation: ticks/s per row name.
PEER_REFERENCE = {
    "no stops": 225_000,
    "1,000 on 1 symbol": 19_500,
    "10,000 on 1 symbol": 1_390,
    "10,000 over 100 symbols": 76_800,
}


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_peer() -> str:
    """The peer's virtualenv with NautilusTrader installed from wheels (made on first use); its version."""
    if not PEER_PYTHON.exists():
        log(f"creating {VENV.relative_to(ROOT)} and installing {PEER_PACKAGE} (wheels only, about a minute)")
        _check([sys.executable, "-m", "venv", "--clear", str(VENV)], "creating the peer's virtualenv")
    probe = [str(PEER_PYTHON), "-c", "import nautilus_trader; print(nautilus_trader.__version__)"]
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode != 0 or found.stdout.strip() != PEER_PACKAGE.split("==")[1]:
        # --only-binary: a source build would compile Rust and Cython for an hour on 2 cores; refuse instead.
        pip = [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "--only-binary=:all:", PEER_PACKAGE]
        _check(pip, f"installing {PEER_PACKAGE} into {VENV.relative_to(ROOT)} (no wheel for this platform?)")
        found = subprocess.run(probe, capture_output=True, text=True)
    return found.stdout.strip()


def _check(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PeersError(f"{what} failed: {tail[0]}")


def _side(cmd: list[str], what: str) -> dict[str, Any]:
    """Run one side of one row in a fresh process; its last stdout line is its JSON figures."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=ROW_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise PeersError(f"{what} took longer than {ROW_TIMEOUT_S} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PeersError(f"{what} failed (exit {done.returncode}): {tail[0]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def posmon_side(row: Row) -> dict[str, Any]:
    env_cmd = [sys.executable, "-m", "bench.peers.posmon_side", json.dumps(asdict(row))]
    return _side(env_cmd, f"posmon's side of {row.name!r}")


def peer_side(row: Row) -> dict[str, Any]:
    cmd = [str(PEER_PYTHON), str(HERE / "nautilus_side.py"), json.dumps(asdict(row))]
    return _side(cmd, f"NautilusTrader's side of {row.name!r}")


class Load:
    """The machine's CPU used by processes other than this runner and its children, in % of one core."""

    def __init__(self) -> None:
        self.loadavg = os.getloadavg()[0]
        self.t0 = time.monotonic()
        self.busy0 = busy_cpu_seconds()
        self.ours0 = sum(os.times()[:4])  # the runner and its finished children (each side's process)

    def result(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self.t0)
        others = (busy_cpu_seconds() - self.busy0) - (sum(os.times()[:4]) - self.ours0)
        return {"loadavg_1m": round(self.loadavg, 2), "others_cpu_pct": round(max(0.0, 100 * others / wall), 1)}


def ratio(posmon: int | None, peer: int | None) -> float | None:
    return round(posmon / peer, 2) if posmon and peer else None


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the highest rate (the one other processes disturbed least), with every run's rate."""
    best = dict(max(runs, key=lambda r: r[key] or 0))
    best[f"runs_{key}"] = [r[key] for r in runs]
    return best


def run_rows(rows: tuple[Row, ...], *, with_peer: bool, repeats: int = 1) -> list[dict[str, Any]]:
    """Each row ``repeats`` times, the two sides alternating; per side the best run is reported."""
    out = []
    for row in rows:
        load = Load()
        entry: dict[str, Any] = {"row": asdict(row)}
        peer_runs, posmon_runs = [], []
        for i in range(repeats):
            if with_peer:
                log(f"{row.name}: NautilusTrader ({i + 1}/{repeats}) ...")
                peer_runs.append(peer_side(row))
            log(f"{row.name}: posmon ({i + 1}/{repeats}) ...")
            posmon_runs.append(posmon_side(row))
        if peer_runs:
            entry["nautilus"] = _best(peer_runs, "ticks_per_s")
        entry["posmon"] = _best(posmon_runs, "handed_ticks_per_s")
        entry["posmon"]["wire_ticks_per_s"] = max(r["wire_ticks_per_s"] for r in posmon_runs)
        entry["posmon"]["runs_wire_ticks_per_s"] = [r["wire_ticks_per_s"] for r in posmon_runs]
        p, n = entry["posmon"], entry.get("nautilus", {})
        entry["ratio_handed"] = ratio(p["handed_ticks_per_s"], n.get("ticks_per_s"))
        entry["ratio_wire"] = ratio(p["wire_ticks_per_s"], n.get("ticks_per_s"))
        entry["machine_load"] = load.result()
        out.append(entry)
    return out


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:g}"


def _ms(values: list[float | None] | None) -> str:
    """Median (max) of the triggering ticks' costs."""
    done = sorted(v for v in values or [] if v is not None)
    return f"{statistics.median(done):.2f} ({done[-1]:.2f})" if done else "-"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table bench/README.md quotes."""
    head = (
        "| row | NautilusTrader ticks/s | posmon ticks/s (handed) | ratio | posmon ticks/s (wire) | ratio "
        "| triggering tick ms, median (max): Nautilus | posmon | others_cpu_pct |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for e in results:
        p, n, row = e["posmon"], e.get("nautilus", {}), e["row"]
        peer_trig = _ms(n.get("trigger", {}).get("to_last_release_ms"))
        posmon_trig = _ms(p.get("trigger", {}).get("to_last_close_ms"))
        lines.append(
            f"| {row['name']} | {_n(n.get('ticks_per_s'))} | {_n(p['handed_ticks_per_s'])} | "
            f"{_n(e['ratio_handed'])} | {_n(p['wire_ticks_per_s'])} | {_n(e['ratio_wire'])} | {peer_trig} | "
            f"{posmon_trig} | {_n(e['machine_load']['others_cpu_pct'])} |"
        )
    return "\n".join(lines)


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="toy sizes, posmon's side only (the peer is skipped)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per row and side, best kept (full: 3)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        version = None if args.smoke else ensure_peer()
        if version is None:
            log("smoke run: NautilusTrader's side skipped (posmon's side at toy sizes only)")
        repeats = args.repeats or (1 if args.smoke else 3)
        results = run_rows(SMOKE_ROWS if args.smoke else ROWS, with_peer=not args.smoke, repeats=repeats)
    except PeersError as exc:
        print(f"bench.peers: {exc}", file=sys.stderr)
        return 1
    print(table(results))
    if version:
        print(f"\nNautilusTrader {version}; reference ticks/s on this machine when quiet: {PEER_REFERENCE}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = args.results / f"{stamp}-{git_commit()}-peers{'-smoke' if args.smoke else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "nautilus_trader": version,
        "commit": git_commit(),
        "cpu_count": os.cpu_count(),
        "smoke": args.smoke,
        "repeats": repeats,
        "rows": results,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0
