"""The ``verify`` and ``protect`` sub-commands, registered in ``posmon.cli.parser.COMMANDS``; the work is in
``posmon.ops.command``."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import TYPE_CHECKING

import trio

from posmon.cli.exit_codes import ExitCode, exit_codes_help
from posmon.config import ConfigError, load_settings
from posmon.logs import configure
from posmon.ops.command import protect_command, verify_command

if TYPE_CHECKING:
    from posmon.cli.parser import Subparsers

EXIT_HELP = exit_codes_help(
    {
        ExitCode.OK: "clean (protect: clean after the repair)",
        ExitCode.FAILED: "gaps found on any venue (protect: gaps left, or a dry run with something to do)",
        ExitCode.CONFIG: "configuration or store error",
        ExitCode.UNREACHABLE: "an exchange unreachable (the other venues' accounts are still checked)",
        ExitCode.STORE: "the store is held by another process (a running daemon): protect refused",
    }
)

VENUE_HELP = "only this venue account (one of daemon.venues); default: every configured one"


def _handler(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"posmon: configuration error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    configure("WARNING")  # the report is the output; the log shows only what needs attention
    if args.command == "verify":
        return trio.run(functools.partial(verify_command, settings, as_json=args.json, venue=args.venue))
    return trio.run(
        functools.partial(protect_command, settings, dry_run=args.dry_run, as_json=args.json, venue=args.venue)
    )


def add_verify_protect(sub: Subparsers) -> None:
    """``posmon verify [--venue V] [--json]`` and ``posmon protect [--venue V] [--dry-run] [--json]``."""
    v = sub.add_parser(
        "verify",
        help="compare the exchange with the store; non-zero on any gap",
        description="Every position covered by tranches that add up, every tranche protected, "
        "no orphan orders. Read-only. With several venues (daemon.venues) every account is checked against its "
        "own venue, the report grouped per venue.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("--venue", help=VENUE_HELP)
    v.add_argument("--json", action="store_true", help="print a JSON document instead of the report")
    v.set_defaults(handler=_handler)
    p = sub.add_parser(
        "protect",
        help="adopt unknown positions, place missing protection, cancel orphans",
        description="Repairs what verify finds. Writes the store and trades the account: never run "
        "it while the daemon runs on the same store/account (it refuses when the store is locked). With several "
        "venues every account is repaired on its own venue.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--venue", help=VENUE_HELP)
    p.add_argument("--dry-run", action="store_true", help="print the plan; change neither the store nor the exchange")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of the report")
    p.set_defaults(handler=_handler)
