"""``python -m bench`` (full, about 7 minutes on 2 cores) or ``python -m bench --smoke`` (about 12 seconds).

Sizes default to the issue's (1,000 symbols, 10,000 idle tranches, 100,000 in the large store); the flags below
change them, e.g. ``--symbols 200 --large-per-side 10`` for a quicker look, or ``--phases latency`` to re-run one
figure when the machine was busy.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
from pathlib import Path

from bench.runner import FULL, PHASES, RESULTS, SMOKE, run


def _rates(text: str) -> tuple[int, ...]:
    return tuple(int(r) for r in text.split(",") if r.strip())


def _phases(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = set(chosen) - set(PHASES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    return tuple(p for p in PHASES if p in chosen)


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the runner's cleanup (children stopped, work dir removed)


def main() -> None:
    # A runner started in the background (``nohup ... &``) ignores SIGINT: make SIGINT and SIGTERM clean up.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="the seconds-long version CI runs (toy sizes)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="attach py-spy to the daemon in each phase (slows it a little; figures are marked)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (stores, logs)")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment, not the benchmark: gc.freeze() in the daemon after start-up, to show what "
        "garbage collection of the long-lived heap costs",
    )
    parser.add_argument(
        "--wake-on-cross",
        action="store_true",
        help="experiment, not the benchmark: a price wakes a position actor only when it reaches the "
        "actor's nearest TP, to show what waking every actor on every frame costs",
    )
    parser.add_argument(
        "--indexed-load",
        action="store_true",
        help="experiment, not the benchmark: actors load their tranches with a condition the index "
        "answers (status IN ('open', 'closing'))",
    )
    parser.add_argument(
        "--shared-snapshot",
        action="store_true",
        help="experiment, not the benchmark: start-up reconciles share one account-wide snapshot",
    )
    parser.add_argument(
        "--phases",
        type=_phases,
        default=PHASES,
        help=f"comma-separated subset of {','.join(PHASES)} (default: all); the working set's "
        "start-up and memory are always measured",
    )
    sizes = parser.add_argument_group("sizes (default: the issue's; with --smoke: toy sizes)")
    sizes.add_argument("--symbols", type=int, help="symbols holding tranches (full: 1000)")
    sizes.add_argument(
        "--idle-per-side", type=int, help="idle tranches per (symbol, side) in the working set (full: 5 -> 10,000)"
    )
    sizes.add_argument(
        "--large-per-side", type=int, help="tranches per (symbol, side) in the large store (full: 50 -> 100,000)"
    )
    sizes.add_argument("--triggers", type=int, help="trigger tranches per latency run (full: 1120)")
    sizes.add_argument(
        "--rates",
        type=_rates,
        help="throughput ladder, updates/s, comma-separated "
        "(full: 5000,10000,20000,30000,40000,60000,80000,100000,150000)",
    )
    sizes.add_argument("--rate-seconds", type=float, help="seconds per throughput rate (full: 8)")
    sizes.add_argument(
        "--large-handshake-timeout",
        type=float,
        help="the large store's [aster] request_timeout_seconds (default: posmon's 10 s, with which its "
        "price stream hangs; 120 lets it connect)",
    )
    args = parser.parse_args()
    base = SMOKE if args.smoke else FULL
    changes = {
        k: v
        for k, v in (
            ("symbols", args.symbols),
            ("idle_per_side", args.idle_per_side),
            ("big_idle_per_side", args.large_per_side),
            ("slow_triggers", args.triggers),
            ("fast_triggers", args.triggers),
            ("rates", args.rates),
            ("rate_seconds", args.rate_seconds),
        )
        if v is not None
    }
    run(
        dataclasses.replace(base, **changes),
        profile=args.profile,
        results_dir=args.results,
        keep=args.keep,
        experiments=tuple(
            name
            for name, on in (
                ("gc-freeze", args.gc_freeze),
                ("wake-on-cross", args.wake_on_cross),
                ("indexed-load", args.indexed_load),
                ("shared-snapshot", args.shared_snapshot),
            )
            if on
        ),
        phases=args.phases,
        large_handshake_timeout=args.large_handshake_timeout,
    )


if __name__ == "__main__":
    main()
