"""``posmon run``: the daemon until SIGINT/SIGTERM, and ``posmon demo``, a scripted session on the simulator.

``run`` validates the whole configuration before any network; the demo brings its own (written beside its
store). Both turn every expected failure into one line on stderr and an ``ExitCode``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from posmon.actors.supervisor import RestartBudgetExhausted
from posmon.api.settings import ApiSettings
from posmon.cli.exit_codes import ExitCode, exit_codes_help
from posmon.cluster.accounts import accounts_of, opener_of
from posmon.cluster.run import run_clustered
from posmon.cluster.settings import ClusterSettings
from posmon.config import ConfigError, Settings, load_settings
from posmon.daemon import run_daemon
from posmon.logs import LOG_FORMATS, configure
from posmon.notify import NotifySettings
from posmon.ops.lock import StoreLocked, hold_store_lock
from posmon.startup import (
    CONNECT_TIMEOUT_SECONDS,
    StartupFailure,
    check_recording,
    retry_startup,
    venue_is_embedded,
)
from posmon.store.errors import StoreError, StoreUnavailable
from posmon.store.store import Store
from posmon.venues import open_venue, opened_rules, venue_openers

if TYPE_CHECKING:
    from posmon.cli.parser import Subparsers

log = logging.getLogger("posmon")

RUN_EXIT_CODES_HELP = exit_codes_help(
    {
        ExitCode.OK: "stopped by SIGINT/SIGTERM",
        ExitCode.FAILED: "an actor exhausted its restart budget",
        ExitCode.CONFIG: "configuration error (the message names the key), including a mistyped sim.recording",
        ExitCode.UNREACHABLE: "the exchange could not be reached within --connect-timeout, refused start-up, or "
        "rejected the credentials",
        ExitCode.STORE: "the store cannot be used: locked by another process, read-only, disk full, corrupt, not "
        "posmon's, newer; a PostgreSQL store: a malformed URL, the server unreachable at start-up (a cluster's "
        "instance waits up to --connect-timeout for it first)",
    },
    title="exit codes of run",
)

__all__ = ["add_demo", "add_run", "run_main"]


async def _stop_on_signals(
    scope: trio.CancelScope,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info(
                "received %s: stopping (no orders are sent on the way out; state is in the store)",
                signal.Signals(signum).name,
            )
            scope.cancel()
            return


@contextmanager
def _store_for_run(path: str) -> Iterator[Store]:
    """The store, locked against a second daemon for the whole run; any problem is one ``StoreError`` line."""
    try:
        lock = hold_store_lock(path)
        lock.__enter__()
    except OSError as exc:  # the lock file sits beside the store: a read-only or missing directory shows here
        raise StoreError(
            f"store {path}: cannot create its lock file ({exc.strerror or exc}); make the store's directory writable"
        ) from exc
    try:
        store = Store.open(path)
        try:
            yield store
        finally:
            store.close()
    finally:
        lock.__exit__(None, None, None)


async def _wait_for_store(url: str, within: float) -> None:
    """A cluster's instance (re)started while its PostgreSQL server restarts waits for the server, up to ``within``
    seconds (``--connect-timeout``, as for the venue), instead of exiting: its peers ride the restart out too.
    Anything but an unreachable server (a bad URL, not posmon's) is left for ``Store.open`` to report."""
    from posmon.store.location import redacted
    from posmon.store.postgres import PgConn

    deadline = trio.current_time() + within
    logged = False
    while True:
        try:
            await trio.to_thread.run_sync(lambda: PgConn(url, f"store {redacted(url)}").close())
            return
        except StoreUnavailable as exc:
            if trio.current_time() >= deadline:
                return  # Store.open says why, in one line
            if not logged:
                log.warning("%s; waiting for it (up to %.0f s)", exc, within)
                logged = True
        except Exception:  # not an outage (a bad URL, no driver): Store.open reports it in one line
            return
        await trio.sleep(0.5)


async def _open_venue_with_retries(
    settings: Settings, nursery: trio.Nursery, stack: AsyncExitStack, connect_timeout: float
) -> Any:
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
    return await retry_startup(
        attempt,
        venue=name,
        what="connecting",
        give_up_after=connect_timeout,
        log=log,
        per_try=settings.daemon.request_timeout_seconds * 4,
        auth=auth,
        retry=not venue_is_embedded(settings),
    )


async def _run_account(
    settings: Settings, store: Store, api: ApiSettings | None, connect_timeout: float, **daemon: Any
) -> None:
    """Open the venue (with retries) and run the daemon on it until cancelled; ``daemon``: more ``run_daemon``
    arguments (a cluster's ``order_gate`` and ``metrics``)."""
    if settings.accounts or len(settings.daemon.venue_names) > 1:  # each account opens its venue itself
        openers = [opener_of(a) for a in accounts_of(settings)] if settings.accounts else venue_openers(settings)
        await run_daemon(settings, openers, store, api=api, connect_timeout=connect_timeout, **daemon)
        return
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        venue = await _open_venue_with_retries(settings, nursery, stack, connect_timeout)
        await run_daemon(
            settings, venue, store, api=api, connect_timeout=connect_timeout, rules=opened_rules(venue), **daemon
        )


async def run_main(
    settings: Settings,
    api: ApiSettings | None = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    cluster: ClusterSettings | None = None,
) -> None:
    """The daemon until SIGINT/SIGTERM; ``api`` (validated before any network) serves the operator API.

    The store's lock is held for the whole run: a second daemon (or ``posmon protect``) on the same store and
    account would be a second writer and a second order sender. The store is opened and checked before the
    venue: a store that cannot be used stops start-up before anything is sent. ``cluster`` enabled: the account
    runs only while this instance holds its lease (``posmon.cluster.run``), on a shared PostgreSQL store.
    """
    check_recording(settings)
    if cluster is not None and cluster.enabled:
        await _wait_for_store(settings.daemon.store, connect_timeout)
    with _store_for_run(settings.daemon.store) as store:
        async with trio.open_nursery() as nursery:
            await nursery.start(_stop_on_signals, nursery.cancel_scope)
            start = functools.partial(_run_account, settings, store, api, connect_timeout)
            if cluster is not None and cluster.enabled:
                await run_clustered(settings, store, cluster, start, connect_timeout=connect_timeout, api=api)
            else:
                await start()
            nursery.cancel_scope.cancel()
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


def _report(group: BaseException) -> int:
    """The exit code for what ``trio.run`` raised, after one line on stderr; a bug is re-raised (traceback)."""
    exc = _unwrap(group)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.OK
    if isinstance(exc, ConfigError):
        print(f"posmon: configuration error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if isinstance(exc, StartupFailure):
        print(f"posmon: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, StoreLocked):
        print(f"posmon: {exc}; not starting a second daemon on the same store", file=sys.stderr)
        return ExitCode.STORE
    if isinstance(exc, StoreError):
        print(f"posmon: {exc}", file=sys.stderr)
        return ExitCode.STORE
    if isinstance(exc, RestartBudgetExhausted):
        log.critical("posmon stopped: %s", exc)
        return ExitCode.FAILED
    raise group


def _run_daemon_command(args: argparse.Namespace) -> int:
    """``run``: validate the whole configuration first, so a typo stops start-up before any network."""
    try:
        settings = load_settings(args.config)
        if args.store is not None:
            if not args.store.strip():
                raise ConfigError("--store: expected an SQLite file path or a postgresql:// URL")
            settings = dataclasses.replace(settings, daemon=dataclasses.replace(settings.daemon, store=args.store))
        api = ApiSettings.from_config(settings.api, os.environ)
        notify = NotifySettings.from_config(settings.notify, os.environ)
        cluster = ClusterSettings.from_config(settings.cluster, settings.daemon.store)
        accounts_of(settings)  # [accounts.<name>]: a bad section stops start-up here
    except ConfigError as error:
        print(f"posmon: configuration error: {error}", file=sys.stderr)
        return ExitCode.CONFIG
    log_format = args.log_format or settings.daemon.log_format
    configure(
        settings.daemon.log_level,
        json_lines=log_format == "json" or notify.json_logs,  # [notify] json_logs: the deprecated spelling
    )
    timeout = settings.daemon.startup_timeout_seconds if args.connect_timeout is None else args.connect_timeout
    try:
        trio.run(functools.partial(run_main, settings, api, connect_timeout=timeout, cluster=cluster))
    except BaseException as group:
        return _report(group)
    return ExitCode.OK


def _say(line: str) -> None:
    print(line, flush=True)


def _demo_command(args: argparse.Namespace) -> int:
    """``demo``: the scripted session, narrated on stdout; its summary printed from the result it returns."""
    from posmon.demo import run_demo

    configure("WARNING")  # the narration is on stdout; the log shows only what needs attention
    # --fast: trio's virtual clock jumps over every wait once all tasks are idle, so the story needs no wall time.
    clock = trio.testing.MockClock(autojump_threshold=0) if args.fast else None
    try:
        if args.pair:
            from posmon.demo.pair import run_pair_demo

            story: Any = functools.partial(run_pair_demo, args.dir, emit=_say)
        else:
            story = functools.partial(run_demo, args.dir, emit=_say, open_browser=args.open_browser)
        result = trio.run(story, clock=clock)
    except BaseException as group:
        return _report(group)
    _say(result.summary())
    return ExitCode.OK


def add_run(sub: Subparsers) -> None:
    p = sub.add_parser(
        "run",
        help="run the daemon headless until SIGINT/SIGTERM",
        epilog=RUN_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="keep retrying an unreachable or failing exchange at start-up this long, then exit 3 "
        "(default: [daemon] startup_timeout_seconds)",
    )
    p.add_argument(
        "--store",
        default=None,
        metavar="PATH_OR_URL",
        help="the store: an SQLite file, or postgresql://user@host:port/db for a PostgreSQL one "
        "(default: [daemon] store)",
    )
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="log lines as text or as JSON objects with venue, symbol, side and tranche fields "
        "(default: [daemon] log_format)",
    )
    p.set_defaults(handler=_run_daemon_command)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected seconds from 0 to 86400")
    return value


DEMO_EXIT_CODES_HELP = exit_codes_help(
    {
        ExitCode.OK: "the story ran to its end, or Ctrl-C",
        ExitCode.FAILED: "the daemon gave up during the demo (an actor exhausted its restart budget)",
        ExitCode.STORE: "--dir cannot hold the demo's store: it already holds one, or is not writable",
    },
    title="exit codes of demo",
)


def add_demo(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="a scripted ~30 s session on the simulated Aster venue: every kind of exit, a merge, a restart, "
        "exit plans and a risk limit",
        description="posmon trades the embedded Aster-protocol simulator on 127.0.0.1 while a script plays the "
        "market: a TP fill on the exchange, an instant close through the TP, a stop-loss, a timeout, a second "
        "tranche at -5 %, a merge past the tranche limit, a restart on the same store, a TP ladder with break-even, a "
        "trailing stop and a risk limit refusing an operator entry. The demo uses its own "
        "configuration (never --config, never a live account), written beside its store so `posmon history` can "
        "read it afterwards.",
        epilog=DEMO_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="run on a virtual clock: the same story in about a second (too quick to watch the dashboard)",
    )
    p.add_argument(
        "--open",
        action="store_true",
        dest="open_browser",
        help="open the dashboard in a graphical browser, when there is one",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the demo's store and configuration in DIR (default: a new temporary directory)",
    )
    p.add_argument(
        "--pair",
        action="store_true",
        help="the hedge-pair scenario instead (~10 s): BTC long on the Aster simulator, short on the Lighter one, "
        "one daemon watching both; the Aster leg is stopped out on the venue and posmon closes the Lighter leg",
    )
    p.set_defaults(handler=_demo_command)
