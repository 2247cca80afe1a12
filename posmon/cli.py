"""The ``posmon`` command: ``run`` the daemon, a scripted ``demo``, and operator commands over the HTTP API.

Each sub-command is registered by one function in ``COMMANDS`` and carries its own ``handler(args) -> int``,
so adding a command is one entry in that tuple.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

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
from posmon.startup import (
    CONNECT_TIMEOUT_SECONDS,
    EXIT_STORE,
    StartupFailure,
    check_recording,
    retry_startup,
    venue_is_embedded,
)
from posmon.store.errors import StoreError
from posmon.store.store import Store
from posmon.venues import open_venue

log = logging.getLogger("posmon")

RUN_EXIT_CODES_HELP = """exit codes of run:
  0  stopped by SIGINT/SIGTERM
  1  an actor exhausted its restart budget
  2  configuration error (the message names the key), including a mistyped sim.recording
  3  the exchange could not be reached within --connect-timeout, refused start-up, or rejected the credentials
  4  the store cannot be used: locked by another process, read-only, disk full, corrupt, not posmon's, newer"""

__all__ = ["COMMANDS", "EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_STORE", "EXIT_UNREACHABLE", "build_parser",
           "main"]


async def _stop_on_signals(scope: trio.CancelScope, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                           ) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s: stopping (no orders are sent on the way out; state is in the store)",
                     signal.Signals(signum).name)
            scope.cancel()
            return


@contextmanager
def _store_for_run(path: str) -> Iterator[Store]:
    """The store, locked against a second daemon for the whole run; any problem is one ``StoreError`` line."""
    try:
        lock = hold_store_lock(path)
        lock.__enter__()
    except OSError as exc:  # the lock file sits beside the store: a read-only or missing directory shows here
        raise StoreError(f"store {path}: cannot create its lock file ({exc.strerror or exc}); make the store's "
                         "directory writable") from exc
    try:
        store = Store.open(path)
        try:
            yield store
        finally:
            store.close()
    finally:
        lock.__exit__(None, None, None)


async def _open_venue_with_retries(settings: Settings, nursery: trio.Nursery, stack: AsyncExitStack,
                                   connect_timeout: float) -> Any:
    """Open the configured venue, retrying an unreachable or failing one for ``connect_timeout`` seconds.

    Opening is where the venue is first asked anything (server time, rules, the account's position mode), so
    an outage, a ban or rejected keys are met here, before any actor runs and before anything is sent. An
    embedded simulator is opened once: it is started in ``nursery`` and a retry would start a second.
    """
    name = settings.daemon.venue

    async def attempt() -> Any:
        opener = open_venue(settings, nursery)
        venue = await opener.__aenter__()
        stack.push_async_exit(opener.__aexit__)
        return venue

    auth = None
    if name == "aster":
        from posmon.exchange.aster.settings import AsterSettings

        auth = AsterSettings.from_config(settings.aster, os.environ).auth
    return await retry_startup(attempt, venue=name, what="connecting", give_up_after=connect_timeout, log=log,
                               per_try=settings.daemon.request_timeout_seconds * 4, auth=auth,
                               retry=not venue_is_embedded(settings))


async def run_main(settings: Settings, api: ApiSettings | None = None, *,
                   connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """The daemon until SIGINT/SIGTERM; ``api`` (validated before any network) serves the operator API.

    The store's lock is held for the whole run: a second daemon (or ``posmon protect``) on the same store and
    account would be a second writer and a second order sender. The store is opened and checked before the
    venue: a store that cannot be used stops start-up before anything is sent.
    """
    check_recording(settings)
    with _store_for_run(settings.daemon.store) as store:
        async with trio.open_nursery() as nursery:
            await nursery.start(_stop_on_signals, nursery.cancel_scope)
            async with AsyncExitStack() as stack:
                venue = await _open_venue_with_retries(settings, nursery, stack, connect_timeout)
                await run_daemon(settings, venue, store, api=api, connect_timeout=connect_timeout)
    log.info("posmon stopped")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


_EXPECTED = (KeyboardInterrupt, ConfigError, StartupFailure, StoreLocked, StoreError, RestartBudgetExhausted)


def _unwrap(exc: BaseException) -> BaseException:
    """The failure to report from what trio raised: nurseries wrap it in (nested) exception groups.

    A group is unwrapped to its first expected failure when every other leaf is expected too or is a
    cancellation it caused; a group holding anything unexpected is left as it is (a bug: traceback).
    """
    leaves = _leaves(exc)
    expected = [leaf for leaf in leaves if isinstance(leaf, _EXPECTED)]
    if expected and all(isinstance(leaf, (*_EXPECTED, trio.Cancelled)) for leaf in leaves):
        return expected[0]
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _run_daemon_command(args: argparse.Namespace) -> int:
    """``run`` and ``demo``: validate the whole configuration first, so a typo stops start-up before any network."""
    try:
        settings = load_settings(args.config)
        api = ApiSettings.from_config(settings.api, os.environ) if args.command == "run" else None
        notify = NotifySettings.from_config(settings.notify, os.environ)
    except ConfigError as error:
        print(f"posmon: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    # The demo narrates on stdout; its log shows only what needs attention.
    configure(settings.daemon.log_level if args.command == "run" else "WARNING", json_lines=notify.json_logs)
    try:
        if args.command == "run":
            timeout = settings.daemon.startup_timeout_seconds if args.connect_timeout is None else args.connect_timeout
            trio.run(functools.partial(run_main, settings, api, connect_timeout=timeout))
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
        if isinstance(exc, StartupFailure):
            print(f"posmon: {exc}", file=sys.stderr)
            return exc.exit_code
        if isinstance(exc, StoreLocked):
            print(f"posmon: {exc}; not starting a second daemon on the same store", file=sys.stderr)
            return EXIT_STORE
        if isinstance(exc, StoreError):
            print(f"posmon: {exc}", file=sys.stderr)
            return EXIT_STORE
        if isinstance(exc, RestartBudgetExhausted):
            log.critical("posmon stopped: %s", exc)
            return EXIT_FAILED
        raise
    return EXIT_OK


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run the daemon headless until SIGINT/SIGTERM", epilog=RUN_EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connect-timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="keep retrying an unreachable or failing exchange at start-up this long, then exit 3 "
                        "(default: [daemon] startup_timeout_seconds)")
    p.set_defaults(handler=_run_daemon_command)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected seconds from 0 to 86400")
    return value


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="a short scripted session on the simulated exchange")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to replay prices (default 20)")
    p.set_defaults(handler=_run_daemon_command, connect_timeout=None)


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
