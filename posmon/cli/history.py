"""``posmon history`` and ``posmon report``: the closed tranches of the store, read from it directly.

They need no running daemon (the store is opened like ``verify`` does, from the config's ``daemon.store``: an
SQLite file or a ``postgresql://`` URL), so a stopped daemon's history is still there; with the daemon running,
SQLite's WAL (or PostgreSQL) lets both read at once.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from posmon.analytics import duration, render_summary, summarize
from posmon.api.validation import parse_symbol, parse_venue
from posmon.cli.exit_codes import ExitCode, exit_codes_help
from posmon.config import ConfigError, load_settings
from posmon.domain.instruments import is_unified
from posmon.store.errors import StoreError
from posmon.store.history import FIELDS, ClosedTranche, History, parse_since
from posmon.store.location import is_url
from posmon.store.store import Store

if TYPE_CHECKING:
    from posmon.cli.parser import Subparsers

EXIT_HELP = exit_codes_help(
    {
        ExitCode.OK: "done (report: also when matplotlib is missing; the numbers are printed, the plots not)",
        ExitCode.FAILED: "the CSV file or the plots could not be written",
        ExitCode.CONFIG: "usage or configuration error (e.g. a --since that is not a date)",
        ExitCode.STORE: "the store is missing, locked, corrupt or not posmon's",
    }
)
DEFAULT_REPORT_DIR = "posmon-report"


class _Refused(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def _load(args: argparse.Namespace) -> History:
    """The filtered history, or ``_Refused`` with one line and the exit code."""
    try:
        since = None if args.since is None else parse_since(args.since)
    except ValueError as exc:
        raise _Refused(f"--since: {exc}", ExitCode.CONFIG) from None
    try:
        symbol = None if args.symbol is None else parse_symbol(args.symbol)
    except ValueError as exc:
        raise _Refused(f"--symbol: {exc}", ExitCode.CONFIG) from None
    if symbol is not None and is_unified(symbol):  # the store records venue symbols; only the daemon maps names
        raise _Refused(
            f"--symbol: {symbol} is a unified name, and the store records each venue's own symbol (BTCUSDT on "
            f"Aster, BTC on Lighter): give that, or ask the running daemon (GET /api/history?symbol={symbol})",
            ExitCode.CONFIG,
        )
    try:
        venue = None if getattr(args, "venue", None) is None else parse_venue(args.venue)
    except ValueError as exc:
        raise _Refused(f"--venue: {exc}", ExitCode.CONFIG) from None
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise _Refused(f"configuration error: {exc}", ExitCode.CONFIG) from None
    location = settings.daemon.store
    if not is_url(location) and not Path(location).is_file():
        raise _Refused(f"no store at {location} (daemon.store): nothing has been recorded there", ExitCode.STORE)
    try:
        store = Store.open(location)
    except StoreError as exc:
        raise _Refused(str(exc), ExitCode.STORE) from None
    try:
        return store.history(since=since, symbol=symbol, venue=venue)
    finally:
        store.close()


def _run(work: Callable[[argparse.Namespace, History], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            return work(args, _load(args))
        except _Refused as exc:
            print(f"posmon {args.command}: {exc}", file=sys.stderr)
            return exc.code

    return handler


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _plain(d: Decimal | None, places: int | None = None) -> str:
    if d is None:
        return "-"
    return f"{d:.{places}f}" if places is not None else format(d, "f")


def render_table(tranches: Sequence[ClosedTranche], history: History) -> str:
    head = (
        f"{'closed (UTC)':<20} {'id':>5} {'symbol':<10} {'side':<5} {'reason':<17} {'qty':>12} "
        f"{'entry':>14} {'exit':>14} {'pnl':>12} {'fees':>10} {'net':>12} {'held':>10}"
    )
    lines = [head]
    for t in tranches:
        lines.append(
            f"{_when(t.closed_at):<20} {t.id:>5} {t.symbol:<10} {t.side.value:<5} {t.exit_reason:<17} "
            f"{_plain(t.qty):>12} {_plain(t.entry):>14} {_plain(t.exit_price):>14} {_plain(t.realized_pnl, 4):>12} "
            f"{_plain(t.fees, 4):>10} {_plain(t.net_pnl, 4):>12} {duration(t.hold_seconds):>10}"
        )
    lines.append(
        f"{len(tranches)} closed tranches; realized PnL {history.realized_pnl:+.4f}, fees {history.fees:.4f}, "
        f"net {history.net_pnl:+.4f}"
    )
    return "\n".join(lines)


def write_csv(history: History, out: TextIO) -> None:
    """One row per closed tranche, the API's fields as columns; decimals exact, times unix seconds."""
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for t in history.tranches:
        row = t.as_dict()
        writer.writerow(["" if row[f] is None else _cell(row[f]) for f in FIELDS])


def _cell(v: object) -> str:
    return format(v, "f") if isinstance(v, Decimal) else str(v)


def _history(args: argparse.Namespace, history: History) -> int:
    if args.csv != "-":  # the CSV on stdout is the whole output
        print(render_table(history.tranches, history))
    if args.csv is not None:
        try:
            if args.csv == "-":
                write_csv(history, sys.stdout)
            else:
                with open(args.csv, "w", newline="", encoding="utf-8") as f:
                    write_csv(history, f)
        except OSError as exc:
            print(f"posmon history: cannot write {args.csv}: {exc.strerror or exc}", file=sys.stderr)
            return ExitCode.FAILED
        if args.csv != "-":
            print(f"wrote {len(history.tranches)} rows to {args.csv}", file=sys.stderr)
    return ExitCode.OK


def _report(args: argparse.Namespace, history: History) -> int:
    print(render_summary(summarize(history.tranches)))
    from posmon.plots import PlotsUnavailable, write_plots  # the module itself imports matplotlib lazily

    try:
        paths = write_plots(history.tranches, Path(args.out))
    except PlotsUnavailable as exc:
        print(f"plots not written: {exc}")
        return ExitCode.OK
    except OSError as exc:
        print(f"posmon report: cannot write the plots to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.FAILED
    print("plots: " + ", ".join(str(p) for p in paths))
    return ExitCode.OK


def _filters(p: argparse.ArgumentParser) -> None:
    # Parsed in the handler, not by argparse: a bad value is one line and exit 2, not a usage dump.
    p.add_argument("--since", help="closed at or after: unix seconds or an ISO-8601 date/time (UTC unless given)")
    p.add_argument("--symbol", help="only this symbol")
    p.add_argument("--venue", help="only this venue account's (aster, lighter; default: every one's)")


def add_history(sub: Subparsers) -> None:
    """``posmon history [--since] [--symbol] [--csv FILE]`` and ``posmon report [--since] [--symbol] [--out DIR]``."""
    h = sub.add_parser(
        "history",
        help="closed tranches with exit price, reason, PnL, fees and hold time (reads the store)",
        description="Every closed tranche in the store, oldest first, and the totals. Reads the store "
        "file (daemon.store) directly: works with the daemon stopped.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _filters(h)
    h.add_argument("--csv", metavar="FILE", help="also write one CSV row per closed tranche to FILE ('-': stdout)")
    h.set_defaults(handler=_run(_history))
    r = sub.add_parser(
        "report",
        help="win rate, PnL by symbol and exit reason, hold times; PNG plots (with the report extra)",
        description="Analytics of the closed tranches, and an equity curve and a PnL-per-exit-reason chart "
        "as PNGs when matplotlib is installed (pip install 'posmon[report]'); without it, the numbers only.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _filters(r)
    r.add_argument("--out", metavar="DIR", default=DEFAULT_REPORT_DIR, help="where the PNGs go (default: %(default)s)")
    r.set_defaults(handler=_run(_report))
