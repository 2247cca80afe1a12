"""The ``posmon`` command: ``run`` the daemon, a scripted ``demo``, and operator commands over the HTTP API.

Each sub-command is registered by one function in ``COMMANDS`` and carries its own ``handler(args) -> int``,
so adding a command is one entry in that tuple.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable

import trio

from posmon.actors.supervisor import RestartBudgetExhausted
from posmon.api.commands import (
    EXIT_CODES_HELP,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    Subparsers,
    add_ops_commands,
)
from posmon.api.settings import ApiSettings
from posmon.config import ConfigError, Settings, load_settings
from posmon.daemon import run_daemon
from posmon.logs import configure
from posmon.notify import NotifySettings
from posmon.ops.cli import add_verify_protect
from posmon.ops.lock import StoreLocked, hold_store_lock
from posmon.store.errors import StoreError
from posmon.store.store import Store
from posmon.venues import open_venue

log = logging.getLogger("posmon")

__all__ = ["COMMANDS", "EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "build_parser", "main"]


async def _stop_on_signals(scope: trio.CancelScope, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                           ) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s: stopping (no orders are sent on the way out; state is in the store)",
                     signal.Signals(signum).name)
            scope.cancel()
            return


async def run_main(settings: Settings, api: ApiSettings | None = None) -> None:
    """The daemon until SIGINT/SIGTERM; ``api`` (validated before any network) serves the operator API.

    The store's lock is held for the whole run: a second daemon (or ``posmon protect``) on the same store and
    account would be a second writer and a second order sender.
    """
    with hold_store_lock(settings.daemon.store):
        store = Store.open(settings.daemon.store)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(_stop_on_signals, nursery.cancel_scope)
                async with open_venue(settings, nursery) as venue:
                    await run_daemon(settings, venue, store, api=api)
        finally:
            store.close()
    log.info("posmon stopped")


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _run_daemon_command(args: argparse.Namespace) -> int:
    """``run`` and ``demo``: validate the whole configuration first, so a typo stops start-up before any network."""
    try:
        settings = load_settings(args.config)
        api = ApiSettings.from_config(settings.api, os.environ) if args.command == "run" else None
        notify = NotifySettings.from_config(settings.notify, os.environ)
    except ConfigError as exc:
        print(f"posmon: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # The demo narrates on stdout; its log shows only what needs attention.
    configure(settings.daemon.log_level if args.command == "run" else "WARNING", json_lines=notify.json_logs)
    try:
        if args.command == "run":
            trio.run(run_main, settings, api)
        else:
            from posmon.demo import run_demo

            trio.run(run_demo, settings, args.seconds)
    except BaseException as group:
        exc = _unwrap(group)
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_OK
        if isinstance(exc, ConfigError):
            print(f"posmon: configuration error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if isinstance(exc, StoreLocked):
            print(f"posmon: {exc}; not starting a second daemon on the same store", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, RestartBudgetExhausted | StoreError):
            log.critical("posmon stopped: %s", exc)
            return EXIT_FAILED
        raise
    return EXIT_OK


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run the daemon headless until SIGINT/SIGTERM")
    p.set_defaults(handler=_run_daemon_command)


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="a short scripted session on the simulated exchange")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to replay prices (default 20)")
    p.set_defaults(handler=_run_daemon_command)


# One registration function per command group: each adds its sub-parsers and sets ``handler``.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (_add_run, _add_demo, add_ops_commands, add_verify_protect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posmon", description="Keeps every open futures position protected.",
                                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="configuration file (default: $POSMON_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
