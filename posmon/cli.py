"""The ``posmon`` command: ``run`` the daemon, or a short scripted ``demo`` on the simulator."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

from posmon.actors.supervisor import RestartBudgetExhausted
from posmon.config import ConfigError, Settings, load_settings
from posmon.daemon import run_daemon
from posmon.logs import configure
from posmon.store.errors import StoreError
from posmon.store.store import Store
from posmon.venues import open_venue

log = logging.getLogger("posmon")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


async def _stop_on_signals(scope: trio.CancelScope, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                           ) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s: stopping (no orders are sent on the way out; state is in the store)",
                     signal.Signals(signum).name)
            scope.cancel()
            return


async def run_main(settings: Settings) -> None:
    store = Store.open(settings.daemon.store)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_stop_on_signals, nursery.cancel_scope)
            async with open_venue(settings, nursery) as venue:
                await run_daemon(settings, venue, store)
    finally:
        store.close()
    log.info("posmon stopped")


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posmon", description="Keeps every open futures position protected.")
    parser.add_argument("--config", help="configuration file (default: $POSMON_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon headless until SIGINT/SIGTERM")
    demo = sub.add_parser("demo", help="a short scripted session on the simulated exchange")
    demo.add_argument("--seconds", type=float, default=20.0, help="how long to replay prices (default 20)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"posmon: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # The demo narrates on stdout; its log shows only what needs attention.
    configure(settings.daemon.log_level if args.command == "run" else "WARNING")
    try:
        if args.command == "run":
            trio.run(run_main, settings)
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
        if isinstance(exc, RestartBudgetExhausted | StoreError):
            log.critical("posmon stopped: %s", exc)
            return EXIT_FAILED
        raise
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
