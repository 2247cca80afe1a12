"""Assembles the actors for one venue account and runs them in one supervised nursery.

Start order matters: the operator API first (``/health`` answers "starting" while a large book loads), then
the venue's rules, the gateway (everything else talks to it), the price router, the notifier, an actor for every
(symbol, side) the store still holds tranches or unfinished orders for (all read from the store at once), the
account sweep (a whole-account read for every actor on a timer), and last the user stream, which sweeps on
every connection: its first read is the restored actors' start-up reconcile, and it discovers positions nobody
watches yet. Stopping the daemon cancels the nursery: nothing is sent on the way out, and the store already
holds every decision.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from posmon.actors.directory import PositionDirectory
from posmon.actors.gateway import GatewayPolicy, GatewayState, OrderGateway
from posmon.actors.messages import GatewayRequest, Notice
from posmon.actors.notifier import Notifier
from posmon.actors.position import ActorConfig
from posmon.actors.price_router import PriceRouter, RouterRequest
from posmon.actors.reconciler import AccountReconciler
from posmon.actors.risk_guard import RiskGuard
from posmon.actors.supervisor import RestartPolicy, supervise
from posmon.actors.user_stream import UserStream
from posmon.api.app import create_app
from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings
from posmon.config import Settings
from posmon.control import DaemonControl
from posmon.domain.instruments import InstrumentTable
from posmon.domain.orders import Side, SymbolRules, WorkingType
from posmon.domain.tranche import Risk
from posmon.exchange.venue import Venue
from posmon.metrics import Metrics, render
from posmon.notify import NotifyService, NotifySettings
from posmon.readiness import Readiness
from posmon.sdnotify import SdNotify
from posmon.startup import CONNECT_TIMEOUT_SECONDS, connect_venue
from posmon.store.store import Store

log = logging.getLogger(__name__)


def risk_of(settings: Settings, symbol: str) -> Risk:
    r = settings.risk_for(symbol)
    return Risk(
        tp_pct=r.tp_pct,
        sl_pct=r.sl_pct,
        tranche_pnl_increment_pct=r.tranche_pnl_increment_pct,
        max_tranches=r.max_tranches_per_symbol_side,
        max_hold_seconds=r.max_hold_seconds,
        plan=r.plan,
    )


def instruments_of(venue: str, rules: Mapping[str, SymbolRules], settings: Settings) -> InstrumentTable:
    """The unified names of ``venue``'s symbols (with the ``[instruments]`` overrides); what is off is logged."""
    table = InstrumentTable.build({venue: rules}, settings.instruments)
    for problem in table.problems:
        log.warning("instruments: %s", problem)
    return table


@dataclass(slots=True)
class Daemon:
    """The running daemon's parts, for status, control and tests."""

    settings: Settings
    venue: Venue
    store: Store
    metrics: Metrics
    rules: dict[str, SymbolRules] = field(default_factory=dict)
    instruments: InstrumentTable | None = None  # unified names of the venue's symbols, built with the rules
    directory: PositionDirectory | None = None
    router: PriceRouter | None = None
    gateway: trio.MemorySendChannel[GatewayRequest] | None = None
    gateway_state: GatewayState | None = None  # its rate budgets, for the status report
    cancel_scope: trio.CancelScope | None = None
    control: DaemonControl | None = None
    api_url: str | None = None  # where the operator API listens, when it is served
    reconciler: AccountReconciler | None = None
    user_stream: UserStream | None = None
    risk_guard: RiskGuard | None = None  # the risk limits' account-wide view; None when no limit is set
    readiness: Readiness = field(default_factory=Readiness)  # start-up over? (/ready, systemd's READY=1)

    def risk_of(self, symbol: str) -> Risk:
        return risk_of(self.settings, symbol)

    def stop(self) -> None:
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()


async def _freeze_after_startup(directory: PositionDirectory, limit: float = 600.0) -> None:
    """Once the restored actors have recovered, move the long-lived heap out of the garbage collector's sight.

    Every tranche, order and Decimal lives for hours; a full collection walking them all paused the loop for
    175-240 ms at 12,640 tranches (bench). Frozen objects are still freed by reference counting.
    """
    with trio.move_on_after(limit):
        for actor in directory.actors():
            await actor.ready.wait()
    gc.collect()
    gc.freeze()
    log.info("start-up done: %d long-lived objects moved out of the collector's generations", gc.get_freeze_count())
    _release_freed_memory()


def _release_freed_memory() -> None:
    """Hand the heap the start-up freed back to the system (glibc keeps it otherwise).

    The start-up read of the whole account (200,000 orders at 100,000 tranches: the JSON, its parse, the slices)
    is garbage once every actor has reconciled, but glibc's allocator keeps freed pages mapped: the process stayed
    at its start-up high-water mark (RSS 860 MiB for 220 MiB of live state). ``malloc_trim(0)`` returns every
    free page; elsewhere (no glibc) there is nothing to do.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


async def _announce_ready(directory: PositionDirectory, readiness: Readiness, watching: str, poll: float = 1.0) -> None:
    """Ready once every position actor has done its start-up reconcile and acts on ticks.

    The list is read again after each wait: an actor restarted meanwhile is a new incarnation with its own event,
    and an account read may have started actors for positions nobody watched yet.
    """
    while waiting := [a for a in directory.actors() if not a.ready.is_set()]:
        readiness.progress(f"reconciling positions: {len(waiting)} of {len(directory.actors())} not done yet")
        with trio.move_on_after(poll):
            await waiting[0].ready.wait()
    readiness.set_ready(f"{watching}, {_count(len(directory.keys()), 'position')}")
    log.info("posmon ready: %s", readiness.detail)


async def _publish_book_gauges(
    directory: PositionDirectory, metrics: Metrics, venue: str, store: Store, every: float = 5.0
) -> None:
    """Open tranches and unprotected positions, read from the actors' own state (no I/O) every few seconds.

    Yields to the scheduler every few hundred actors, so a large book never stalls price handling.
    """
    while True:
        tranches = unprotected = 0
        for i, actor in enumerate(directory.actors(), 1):
            tranches += len(actor.tranches)
            unprotected += actor.unprotected()
            if i % 200 == 0:
                await trio.lowlevel.checkpoint()
        metrics.set("open_tranches", tranches, venue=venue)
        metrics.set("unprotected_positions", unprotected, venue=venue)
        metrics.set("store_locked_seconds", store.busy_seconds, venue=venue)
        await trio.sleep(every)


async def run_daemon(
    settings: Settings,
    venue: Venue,
    store: Store,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    notice_listeners: Sequence[trio.MemorySendChannel[Notice]] = (),
    api: ApiSettings | None = None,
    freeze_heap: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    rules: Mapping[str, SymbolRules] | None = None,
    order_gate: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until cancelled (or until an actor exhausts its restart budget, which raises).

    ``api``: serve the operator HTTP API (status, open, close, stop, /metrics) with these settings.
    ``freeze_heap``: ``gc.freeze()`` once start-up is done (off for daemons sharing a process, e.g. in tests).
    ``connect_timeout``: how long the venue's trading rules are asked for (with backoff) before start-up gives up.
    ``rules``: the rules opening the venue just read (``opened_rules``); asked for again only when not given
    (at 1,000 symbols a second read of exchangeInfo costs about half a second of start-up).
    ``order_gate``: the order gateway awaits it before every venue call (a cluster's lease: ``posmon.cluster``).
    """
    d = settings.daemon
    metrics = metrics or Metrics()
    daemon = Daemon(settings, venue, store, metrics)
    daemon.control = DaemonControl(daemon, clock=clock, reply_timeout=d.request_timeout_seconds * 3)
    metrics.set_build_info(venue.name)
    sd_notify = SdNotify.from_env(os.environ)
    if sd_notify is not None:
        sd_notify.follow(daemon.readiness)  # `systemctl status` shows each start-up step
    policy = RestartPolicy(budget=d.restart_budget, window=d.restart_window_seconds, backoff=d.restart_backoff_seconds)
    gw_send, gw_recv = trio.open_memory_channel[GatewayRequest](math.inf)
    router_send, router_recv = trio.open_memory_channel[RouterRequest](math.inf)
    notice_send, notice_recv = trio.open_memory_channel[Notice](10_000)
    # Telegram/webhook channels and the stream watchdog from [notify]; an actor exhausting its restart budget
    # hands its notice straight to the channels and waits (bounded) for it to go out before the daemon stops.
    notify = NotifyService(
        NotifySettings.from_config(settings.notify, os.environ), metrics, notices=notice_send, venues=[venue.name]
    )
    policy = replace(policy, on_exhausted=notify.restart_budget_exhausted)
    daemon.gateway = gw_send

    with trio.CancelScope() as scope:
        daemon.cancel_scope = scope
        async with trio.open_nursery() as nursery:
            if sd_notify is not None:
                await nursery.start(sd_notify.run, daemon.readiness)
            # One writer: the actors' decisions of one scheduling round share a transaction (group commit).
            await nursery.start(store.run_writer)
            # The operator API first: while a large book starts, /health says "starting", /ready answers 503 and
            # commands that need the actors answer 503 with Retry-After (DaemonControl) instead of nothing.
            if api is not None and api.enabled:
                app = create_app(
                    daemon.control,
                    metrics_render=lambda: render(metrics),
                    token=api.token or None,
                    allowed_hosts=api.allowed_hosts,
                    health_timeout_seconds=api.health_timeout_seconds,
                    readiness=daemon.readiness,
                )
                # Supervised like every actor: a server failure after start-up restarts it (within the budget).
                daemon.api_url = await nursery.start(
                    functools.partial(
                        supervise,
                        "api",
                        lambda: functools.partial(serve_api, app, api),
                        policy,
                        metrics,
                        fail_fast=True,
                    )
                )
            nursery.start_soon(_log_progress, daemon)
            await _start(
                daemon,
                nursery,
                policy=policy,
                notify=notify,
                channels=(gw_recv, router_send, router_recv, notice_send, notice_recv),
                clock=clock,
                notice_listeners=notice_listeners,
                freeze_heap=freeze_heap,
                connect_timeout=connect_timeout,
                rules=rules,
                order_gate=order_gate,
            )
            task_status.started(daemon)


async def _start(
    daemon: Daemon,
    nursery: trio.Nursery,
    *,
    policy: RestartPolicy,
    notify: NotifyService,
    channels: tuple[Any, ...],
    clock: Callable[[], float],
    notice_listeners: Sequence[trio.MemorySendChannel[Notice]],
    freeze_heap: bool,
    connect_timeout: float,
    rules: Mapping[str, SymbolRules] | None,
    order_gate: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Reach the venue, start the actors and restore every (symbol, side) the store holds; returns once the
    user stream is up (readiness follows when every restored actor has reconciled)."""
    settings, venue, store, metrics = daemon.settings, daemon.venue, daemon.store, daemon.metrics
    d = settings.daemon
    gw_recv, router_send, router_recv, notice_send, notice_recv = channels
    gw_send = daemon.gateway
    assert gw_send is not None
    if rules:
        daemon.rules = dict(rules)
    else:
        daemon.rules = await connect_venue(venue, give_up_after=connect_timeout, log=log)
    daemon.instruments = instruments_of(venue.name, daemon.rules, settings)
    daemon.readiness.progress("starting the actors")
    symbols = sorted(daemon.rules)
    # A venue with only one position mode (Lighter: one-way) says so; otherwise the configuration does.
    hedge_mode = venue.traits.hedge_mode(d.hedge_mode)

    def config_for(symbol: str, side: Side) -> ActorConfig:
        if symbol not in daemon.rules:
            raise KeyError(f"{venue.name} does not list {symbol}")
        r = settings.risk_for(symbol)
        # Venues that cannot be trusted with conditional orders (Lighter) say so; posmon then holds the exits.
        traits = venue.traits
        return ActorConfig(
            venue=venue.name,
            symbol=symbol,
            side=side,
            rules=daemon.rules[symbol],
            risk=risk_of(settings, symbol),
            instant_tp=r.instant_tp_enabled,
            working_type=WorkingType(r.working_type),
            hedge_mode=hedge_mode,
            prefix=d.client_id_prefix,
            protection_failure_action=d.protection_failure_action,
            reply_timeout=d.request_timeout_seconds * 6,
            emulated_exits=traits.emulated_exits,
            close_slippage=traits.close_slippage,
        )

    daemon.readiness.progress("loading the positions from the store")
    # Every key's rows in three queries, not three per actor; read before the streams connect, so that the
    # seconds it takes at 100,000 tranches do not pass for a silent price stream (and yielding, so /health and
    # the progress line answer meanwhile).
    restored = await store.restore_async(venue.name)
    if RiskGuard.wanted(settings):
        daemon.risk_guard = RiskGuard(settings, gw_send, reply_timeout=d.request_timeout_seconds * 3)
    directory = PositionDirectory(
        nursery,
        config_for,
        router=router_send,
        gateway=gw_send,
        notices=notice_send,
        store=store,
        metrics=metrics,
        clock=clock,
        policy=policy,
        unmonitored=store.unmonitored(venue.name),
        risk=daemon.risk_guard,
    )
    daemon.directory = directory
    gw_policy = GatewayPolicy(request_timeout=d.request_timeout_seconds)
    # The gateway's queue outlives its incarnations: a restart sends what was waiting, and answers what was
    # in flight as outcome-unknown at once (its requesters look it up), instead of every actor reconciling.
    gw_state = daemon.gateway_state = GatewayState()
    await nursery.start(
        supervise,
        "gateway",
        lambda: OrderGateway(venue, gw_recv, metrics, gw_policy, clock=clock, state=gw_state, gate=order_gate).run,
        policy,
        metrics,
    )

    def make_router() -> Callable[..., Any]:
        daemon.router = PriceRouter(venue, router_recv, metrics, symbols=symbols, stale_after=d.stale_stream_seconds)
        return daemon.router.run

    await nursery.start(supervise, "price_router", make_router, policy, metrics)
    if (guard := daemon.risk_guard) is not None:
        guard.holdings = directory
        await nursery.start(supervise, "risk_guard", lambda: guard.run, policy, metrics)
    await nursery.start(supervise, "notify", lambda: notify.run, policy, metrics)
    await nursery.start(
        supervise,
        "notifier",
        lambda: Notifier(notice_recv, list(notice_listeners), sinks=[notify], metrics=metrics).run,
        policy,
        metrics,
    )
    reconciler = AccountReconciler(
        venue.name,
        directory,
        gw_send,
        metrics,
        interval=d.reconcile_interval_seconds,
        reply_timeout=d.request_timeout_seconds * 6,
        prefix=d.client_id_prefix,
        clock=clock,
    )
    daemon.reconciler = reconciler
    # Restored actors reconcile from the user stream's first whole-account read (made once the stream is
    # connected, so nothing between the read and the stream's first frame is missed): one read of the account
    # for the whole start-up, not one more before it.
    for (symbol, side), rows in restored.items():
        directory.inbox(symbol, side, restored=rows, await_sweep=True)
    del restored  # each actor drops its rows once loaded
    await nursery.start(supervise, "reconciler", lambda: reconciler.run, policy, metrics)
    user_stream = UserStream(
        venue, directory, reconciler, store, metrics, hedge_mode=hedge_mode, prefix=d.client_id_prefix
    )
    daemon.user_stream = user_stream
    daemon.readiness.progress("connecting the user stream and reconciling the account")
    stream_up = trio.Event()
    nursery.start_soon(_sweep_unless, stream_up, reconciler, d.request_timeout_seconds * 3)
    await nursery.start(supervise, "user_stream", lambda: user_stream.run, policy, metrics)
    stream_up.set()
    nursery.start_soon(_publish_book_gauges, directory, metrics, venue.name, store)
    if freeze_heap:
        nursery.start_soon(_freeze_after_startup, directory)
    watching = f"watching {venue.name} ({_count(len(symbols), 'symbol')})"
    log.info(
        "posmon watching %s with %s (%d symbols, %d position keys)",
        venue.name,
        settings.source,
        len(symbols),
        len(directory.keys()),
    )
    if all(a.ready.is_set() for a in directory.actors()):
        # Nothing to reconcile (or all done): ready before run_daemon returns, so commands work at once.
        await _announce_ready(directory, daemon.readiness, watching)
    else:
        nursery.start_soon(_announce_ready, directory, daemon.readiness, watching)


async def _sweep_unless(stream_up: trio.Event, reconciler: AccountReconciler, within: float) -> None:
    """The restored actors' start-up read when the user stream does not connect in time: they act on ticks
    meanwhile (the stream's own read follows once it connects); the daemon stays "starting" until it does."""
    with trio.move_on_after(within):
        await stream_up.wait()
        return
    log.warning("the user stream is not up after %.0f s; reconciling the restored positions without it", within)
    await reconciler.sweep()


async def _log_progress(daemon: Daemon, every: float = 1.0) -> None:
    """One line a second while starting: the step, and the actors loaded and reconciled of how many."""
    while not daemon.readiness.is_ready:
        with trio.move_on_after(every):
            await daemon.readiness.wait()
        if daemon.readiness.is_ready:
            return
        actors = daemon.directory.actors() if daemon.directory is not None else []
        loaded = sum(1 for a in actors if a.loaded)
        done = sum(1 for a in actors if a.ready.is_set())
        log.info(
            "starting: %s; %d of %d actors loaded, %d of %d reconciled",
            daemon.readiness.detail,
            loaded,
            len(actors),
            done,
            len(actors),
        )
