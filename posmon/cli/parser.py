"""The ``posmon`` argument parser: each sub-command group is registered by one function in ``COMMANDS``.

Every sub-command carries its own ``handler(args) -> int`` (an ``ExitCode``), so adding a command is one entry in
that tuple. Options every command shares (``--config``) are added to each sub-command here, once, so they may be
written before or after the command's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import metadata
from typing import Any

from posmon.cli.commands import EXIT_CODES_HELP, add_ops_commands
from posmon.cli.completion import add_completion
from posmon.cli.history import add_history
from posmon.cli.ops import add_verify_protect
from posmon.cli.pairs import add_pair
from posmon.cli.run import add_demo, add_run
from posmon.cluster.status import add_cluster

__all__ = ["COMMANDS", "Subparsers", "build_parser", "main", "version"]

Subparsers = Any  # argparse's _SubParsersAction is private

# One registration function per command group: each adds its sub-parsers and sets ``handler``.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_run,
    add_demo,
    add_ops_commands,
    add_verify_protect,
    add_history,
    add_pair,
    add_cluster,
    add_completion,
)
CONFIG_HELP = "configuration file (default: $POSMON_CONFIG or ./config.toml)"
# Commands that read no configuration: ``--config`` with them is refused rather than silently ignored.
WITHOUT_CONFIG = frozenset({"demo", "completion"})


def version() -> str:
    """The installed distribution's version; a source tree that was never installed falls back to the package's."""
    try:
        return metadata.version("posmon")
    except metadata.PackageNotFoundError:
        from posmon import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posmon",
        description="Keeps every open futures position protected.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"posmon {version()}")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    for name, command in sub.choices.items():
        if name in WITHOUT_CONFIG:
            continue
        # SUPPRESS: absent after the command, the value given before it (or None) stands; given, it wins.
        command.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in WITHOUT_CONFIG and args.config is not None:
        parser.error(f"{args.command} reads no configuration file; drop --config")
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
