"""``python -m bench`` (full, under ~10 minutes) or ``python -m bench --smoke`` (seconds)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.runner import FULL, RESULTS, SMOKE, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="the seconds-long version CI runs")
    parser.add_argument("--profile", action="store_true",
                        help="attach py-spy to the daemon in each phase (slows it a little; figures are marked)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (stores, logs)")
    args = parser.parse_args()
    run(SMOKE if args.smoke else FULL, profile=args.profile, results_dir=args.results, keep=args.keep)


if __name__ == "__main__":
    main()
