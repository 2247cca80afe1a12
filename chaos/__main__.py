"""``python -m chaos --runs N --seed S [--venue aster|lighter|both] [--smoke] [--cluster | --two-venue]``: the
campaign, its table and JSON. ``--cluster`` runs each seed against two or three instances of one cluster on a
throwaway PostgreSQL server (``chaos/cluster_run.py``), with instance kills, pauses and database restarts among the
faults; ``--two-venue`` runs both simulators in one daemon with hedge pairs (``chaos/twovenue.py``).

Run ``i`` (0-based) uses seed ``S + i``; a failing run prints ``--seed <its seed> --runs 1 --venue <venue>``
(or ``--two-venue``: both simulators, one daemon, hedge pairs), which replays exactly its random choices.
Results go to ``chaos/results/chaos-<time>.json`` (git-ignored) and failing runs' directories (config, store,
daemon log) to ``chaos/results/runs/``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import trio
import trio.lowlevel

from chaos.cluster_run import CLUSTER_INVARIANTS, ClusterRunResult, one_cluster_run
from chaos.invariants import INVARIANTS, PAIR_INVARIANTS
from chaos.run import Options, RunResult, one_run, venue_for
from chaos.twovenue import TWO_VENUE, two_venue_run

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_RUNS = 4
SMOKE_TWO_VENUE_RUNS = 2
CLUSTER_SMOKE_RUNS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="number of runs (default 20)")
    p.add_argument("--seed", type=int, default=None, help="first run's seed (default: from the clock)")
    p.add_argument(
        "--venue",
        choices=("aster", "lighter", "both"),
        default="both",
        help="simulator to run against; both alternates by seed (default)",
    )
    p.add_argument(
        "--two-venue",
        action="store_true",
        help="both simulators in one daemon (venues = aster, lighter) with hedge pairs opened over the API",
    )
    p.add_argument(
        "--duration", type=float, default=None, help="seconds of trading and faults per run (default 5; cluster 10)"
    )
    p.add_argument("--settle", type=float, default=30.0, help="seconds the daemon gets to settle (default 30)")
    p.add_argument("--smoke", action="store_true", help=f"CI smoke: {SMOKE_RUNS} short runs over both venues")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default chaos/results/...)")
    p.add_argument(
        "--jobs", type=int, default=None, help="runs at a time (default 2, cluster 1; a run is 2 to 5 processes)"
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="two or three instances of one cluster on a throwaway PostgreSQL server per run (issue 17)",
    )
    p.add_argument("--quiet", action="store_true", help="no line per run")
    p.add_argument(
        "--daemon-src",
        type=Path,
        default=None,
        help="run the daemon from this source tree (e.g. `git archive COMMIT | tar -x -C DIR`)",
    )
    p.add_argument("--keep-all", action="store_true", help="keep every run's directory, not only failing ones")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 10.0 if args.cluster else 5.0
    if args.jobs is None:
        args.jobs = 1 if args.cluster else 2
    if args.runs < 1:
        p.error(f"--runs: expected a number >= 1, got {args.runs}")
    if args.jobs < 1:
        p.error(f"--jobs: expected a number >= 1, got {args.jobs}")
    if args.duration <= 0 or args.settle <= 0:
        p.error("--duration and --settle must be > 0")
    if args.cluster and args.two_venue:
        p.error("--cluster and --two-venue: choose one")
    if args.smoke and args.cluster:
        args.runs, args.venue, args.duration = CLUSTER_SMOKE_RUNS, "both", min(args.duration, 6.0)
    elif args.smoke:
        runs = SMOKE_TWO_VENUE_RUNS if args.two_venue else SMOKE_RUNS
        args.runs, args.venue, args.duration, args.jobs = runs, "both", min(args.duration, 4.0), 2
    if args.two_venue:
        args.venue = TWO_VENUE
    if args.seed is None:
        args.seed = int(time.time()) % 1_000_000
    return args


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 3),
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": round(ordered[-1], 3),
    }


def commit() -> str:
    """The checkout's commit, ``+dirty`` when files differ from it (a replay needs the same code)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def summarize(results: list[RunResult], args: argparse.Namespace, wall: float, at_commit: str = "") -> dict[str, Any]:
    faults: Counter[str] = Counter()
    workload: Counter[str] = Counter()
    checked = (
        INVARIANTS + (CLUSTER_INVARIANTS if args.cluster else ()) + (PAIR_INVARIANTS if args.venue == TWO_VENUE else ())
    )
    violations: Counter[str] = Counter({name: 0 for name in checked})
    by_venue: dict[str, dict[str, int]] = {}
    for r in results:
        faults.update(r.faults)
        workload.update(r.workload)
        for v in {v.invariant for v in r.violations}:
            violations[v] += 1
        row = by_venue.setdefault(r.venue, {"runs": 0, "kills": 0, "failed_runs": 0})
        row["runs"] += 1
        row["kills"] += r.kills
        row["failed_runs"] += 0 if r.ok else 1
    protect = [t for r in results for t in r.protect_times]
    settle = [r.settle_seconds for r in results if r.settle_seconds is not None]
    return {
        "seed": args.seed,
        "venue": args.venue,
        "runs": len(results),
        "duration_s": args.duration,
        "commit": at_commit or commit(),
        "daemon_src": str(args.daemon_src) if args.daemon_src else None,
        "wall_s": round(wall, 1),
        "kills": sum(r.kills for r in results),
        "daemon_starts": sum(r.starts for r in results),
        "faults": sum(faults.values()),
        "faults_by_kind": dict(sorted(faults.items())),
        "workload": dict(sorted(workload.items())),
        "failed_runs": sum(1 for r in results if not r.ok),
        "campaign_errors": sum(1 for r in results if r.error is not None),
        "violations_by_invariant": dict(violations),
        "invariants_checked": list(checked),
        "time_to_protect_s": percentiles(protect),
        "settle_s": percentiles(settle),
        "by_venue": by_venue,
        "failing_seeds": [
            {
                "seed": r.seed,
                "venue": r.venue,
                "replay": replay(r),
                "invariants": sorted({v.invariant for v in r.violations}),
                "kept": r.kept,
                "error": r.error,
            }
            for r in results
            if not r.ok
        ],
        "seeds": [r.seed for r in results],
        "results": [r.to_json() for r in results],
    } | (cluster_summary(results) if args.cluster else {"cluster": False})


def cluster_summary(results: list[RunResult]) -> dict[str, Any]:
    """The cluster campaign's own figures: its faults and the takeover times after each kill or pause."""
    rs = [r for r in results if isinstance(r, ClusterRunResult)]
    return {
        "cluster": True,
        "instances": dict(sorted(Counter(str(r.instances) for r in rs).items())),
        "owner_kills": sum(r.kills for r in rs),
        "standby_kills": sum(r.standby_kills for r in rs),
        "pauses": sum(r.pauses for r in rs),
        "db_restarts": sum(r.db_restarts for r in rs),
        "takeovers": sum(r.takeovers for r in rs),
        "audited_writes": sum(r.audited_writes for r in rs),
        "takeover_lease_s": percentiles([t for r in rs for t in r.takeover_lease_s]),
        "takeover_ready_s": percentiles([t for r in rs for t in r.takeover_ready_s]),
    }


def replay(r: RunResult) -> str:
    if r.venue == TWO_VENUE:
        return f"python -m chaos --seed {r.seed} --runs 1 --two-venue"
    cluster = " --cluster" if isinstance(r, ClusterRunResult) else ""
    return f"python -m chaos{cluster} --seed {r.seed} --runs 1 --venue {r.venue}"


def table(s: dict[str, Any]) -> str:
    lines = [
        f"chaos{' --cluster' if s.get('cluster') else ''}: {s['runs']} runs (seed {s['seed']}, venue {s['venue']}, "
        f"{s['duration_s']} s each), "
        f"wall {s['wall_s']} s, commit {s['commit']}"
    ]
    rows: list[tuple[str, str]] = [
        ("runs", str(s["runs"])),
        ("failed runs", str(s["failed_runs"])),
        ("campaign errors", str(s["campaign_errors"])),
        ("SIGKILLs", str(s["kills"])),
        ("daemon starts", str(s["daemon_starts"])),
        ("faults", str(s["faults"])),
    ]
    rows += [(f"  fault {k}", str(v)) for k, v in s["faults_by_kind"].items()]
    if s.get("cluster"):
        rows += [
            ("instances per run", ", ".join(f"{k}: {v} runs" for k, v in s["instances"].items())),
            ("owner SIGKILLs", str(s["owner_kills"])),
            ("standby SIGKILLs", str(s["standby_kills"])),
            ("owner pauses (SIGSTOP)", str(s["pauses"])),
            ("PostgreSQL restarts", str(s["db_restarts"])),
            ("takeovers", str(s["takeovers"])),
            ("audited writes", str(s["audited_writes"])),
        ]
        for name, key in (("takeover, lease (s)", "takeover_lease_s"), ("takeover, ready (s)", "takeover_ready_s")):
            p = s[key]
            rows.append((name, f"n={p['count']} p50={p['p50']} max={p['max']}"))
    rows += [(f"  workload {k}", str(v)) for k, v in s["workload"].items()]
    rows += [(f"violations {k}", str(v)) for k, v in s["violations_by_invariant"].items()]
    for name, key in (("time to protect (s)", "time_to_protect_s"), ("settle (s)", "settle_s")):
        p = s[key]
        rows.append((name, f"n={p['count']} p50={p['p50']} p90={p['p90']} p99={p['p99']} max={p['max']}"))
    for venue, row in sorted(s["by_venue"].items()):
        rows.append((f"venue {venue}", f"{row['runs']} runs, {row['kills']} kills, {row['failed_runs']} failed"))
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    for f in s["failing_seeds"]:
        what = ", ".join(f["invariants"] + (["campaign error"] if f["error"] else []))
        lines.append(f"  FAILED seed {f['seed']} ({f['venue']}): {what}; replay: {f['replay']}")
    return "\n".join(lines)


async def campaign(args: argparse.Namespace) -> list[RunResult]:
    opts = Options(
        duration=args.duration,
        settle_timeout=args.settle,
        keep=RESULTS / "runs",
        keep_all=args.keep_all,
        daemon_src=args.daemon_src,
    )
    results: list[RunResult] = []
    limiter = trio.CapacityLimiter(args.jobs)

    async def one(i: int) -> None:
        async with limiter:
            seed = args.seed + i
            if args.venue == TWO_VENUE:
                r = await two_venue_run(seed, opts)
            else:
                r = await (one_cluster_run if args.cluster else one_run)(seed, args.venue, opts)
        results.append(r)
        if not args.quiet:
            status = (
                "ok"
                if r.ok
                else "FAILED "
                + "; ".join(
                    [f"{v.invariant}: {v.detail}" for v in r.violations[:4]]
                    + ([f"campaign error {r.error}"] if r.error else [])
                )
            )
            print(
                f"[{len(results)}/{args.runs}] seed {seed} {venue_for(seed, args.venue)}: {r.kills} kills, "
                f"{sum(r.faults.values())} faults, {r.wall_seconds:.1f} s: {status}",
                flush=True,
            )
            if not r.ok:
                print(f"    replay: {replay(r)}" + (f"; kept in {r.kept}" if r.kept else ""), flush=True)

    async def stop_on_sigterm(scope: trio.CancelScope) -> None:
        """SIGTERM ends the campaign like Ctrl-C: each run's ``finally`` kills its daemon (no orphan left)."""
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                print("chaos: SIGTERM; stopping", file=sys.stderr, flush=True)
                scope.cancel()
                return

    async with trio.open_nursery() as outer:
        outer.start_soon(stop_on_sigterm, outer.cancel_scope)
        async with trio.open_nursery() as nursery:
            for i in range(args.runs):
                nursery.start_soon(one, i)
                await trio.lowlevel.checkpoint()  # started in seed order
        outer.cancel_scope.cancel()
    results.sort(key=lambda r: r.seed)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    at_commit = commit()  # when the campaign starts: the code its runs used
    results = trio.run(campaign, args)
    summary = summarize(results, args, time.monotonic() - t0, at_commit)
    kind = "chaos-cluster" if args.cluster else "chaos"
    out = args.out or RESULTS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(table(summary))
    print(f"JSON: {out}")
    return 0 if summary["failed_runs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
