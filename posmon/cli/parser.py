"""The ``posmon`` argument parser: each sub-command group is registered by one function in ``COMMANDS``.

Every sub-command carries its own ``handler(args) -> int`` (an ``ExitCode``), so adding a command is one entry in
that tuple.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from posmon.cli.commands import EXIT_CODES_HELP, add_ops_commands
from posmon.cli.history import add_history
from posmon.cli.ops import add_verify_protect
from posmon.cli.run import add_demo, add_run

__all__ = ["COMMANDS", "Subparsers", "build_parser", "main"]

Subparsers = Any  # argparse's _SubParsersAction is private

# One registration function per command group: each adds its sub-parsers and sets ``handler``.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_run,
    add_demo,
    add_ops_commands,
    add_verify_protect,
    add_history,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posmon",
        description="Keeps every open futures position protected.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="configuration file (default: $POSMON_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
