"""Assembles the actors for each venue account and runs them in one supervised nursery.

Process-wide parts (the store and its writer, metrics, notices and notifier, the operator API, readiness) are
started once, the API first (``/health`` answers "starting" while a large book loads). Each venue account
(``AccountRuntime``: its venue, rules, gateway, router, user stream, reconciler and position actors keyed by
(venue, symbol, side)) starts under its own nursery, concurrently with the others, so one unreachable venue never
holds another's start-up or exits. Within an account start order matters: the venue's rules, the gateway
(everything else talks to it), the price router, an actor for every (symbol, side) the store still holds tranches
or unfinished orders for (all read from the store at once), the account sweep (a whole-account read for every
actor on a timer), and last the user stream, which sweeps on every connection: its first read is the restored
actors' start-up reconcile, and it discovers positions nobody watches yet. Stopping the daemon cancels the
nursery: nothing is sent on the way out, and the store already holds every decision.

With several accounts the hedge-pair coordinator (``posmon.actors.pairs``) runs too: made before the accounts start
(every ``exit``/``partial_exit`` notice is teed into its inbox from the first one on), started once every account
has started or found its venue out (its restore sends the closes of legs that exited while down), subscribed to the
marks of every pair leg's symbol (``Daemon.follow_pair_marks``), and finding a leg's actor through its account's
directory at each use (``AccountDirectories``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from posmon.actors.directory import PositionDirectory
from posmon.actors.gateway import GatewayPolicy, GatewayState, OrderGateway
from posmon.actors.messages import GatewayRequest, Notice
from posmon.actors.notifier import Notifier
from posmon.actors.pairs import LegMarkSlot, PairCoordinator, PairMessage, leg_exit_from_notice
from posmon.actors.position import ActorConfig
from posmon.actors.price_router import PriceRouter, RouterRequest, Subscribe
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
from posmon.notify.kinds import NoticeKind
from posmon.readiness import Readiness
from posmon.sdnotify import SdNotify
from posmon.startup import (
    CONNECT_TIMEOUT_SECONDS,
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    MIN_TRY_SECONDS,
    VenueUnreachable,
    connect_venue,
    retry_startup,
)
from posmon.store.store import Store
from posmon.venues import VenueOpener, opened_rules

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


class Unaddressed(LookupError):
    """A part of "the" account asked of a daemon running several (``Daemon.venue`` with two venues)."""


class AccountDirectories:
    """The pair coordinator's ``LegDirectory`` over the daemon's accounts, looked up at each use: an account's
    position directory exists only once it is up (a venue unreachable at start-up comes up later)."""

    def __init__(self, accounts: Mapping[str, AccountRuntime]) -> None:
        self._accounts = accounts

    def inbox(self, venue: str, symbol: str, side: Side) -> trio.MemorySendChannel[Any]:
        account = self._accounts.get(venue)
        if account is None or account.directory is None:
            raise KeyError(f"the {venue} account is not up")
        return account.directory.inbox(symbol, side)


class LegExitTee:
    """A notice sink: every ``exit``/``partial_exit`` a position actor raises, as a ``LegExited`` to the pair
    coordinator (the one path from the legs to it; the coordinator ignores tranches of no pair)."""

    def __init__(self, inbox: trio.MemorySendChannel[PairMessage], metrics: Metrics) -> None:
        self._inbox, self._metrics = inbox, metrics

    def offer(self, notice: Notice) -> None:
        if (leg := leg_exit_from_notice(notice)) is not None:
            self._inbox.send_nowait(leg)
        elif notice.kind == NoticeKind.PAIR_CLOSED:
            self._metrics.inc("pair_exits", reason=str(notice.data.get("reason") or "UNKNOWN"))


@dataclass(slots=True)
class AccountRuntime:
    """One venue account's parts: its venue adapter, rules, actors, gateway (its own rate budget) and streams.

    Each runs under its own nursery inside the daemon's one supervisor, so one venue's outage (unreachable at
    start-up, streams down later) never stalls another's. ``venue`` is None while the account connects.
    """

    name: str
    venue: Venue | None = None
    rules: dict[str, SymbolRules] = field(default_factory=dict)
    instruments: InstrumentTable | None = None  # unified names of the venue's symbols, built with the rules
    directory: PositionDirectory | None = None
    router: PriceRouter | None = None  # the current incarnation (replaced when it restarts)
    router_requests: trio.MemorySendChannel[RouterRequest] | None = None  # Subscribe/... to its router, any incarnation
    gateway: trio.MemorySendChannel[GatewayRequest] | None = None
    gateway_state: GatewayState | None = None  # its rate budgets, for the status report
    reconciler: AccountReconciler | None = None
    user_stream: UserStream | None = None
    risk_guard: RiskGuard | None = None  # the risk limits' account-wide view; None when no limit is set
    readiness: Readiness = field(default_factory=Readiness)  # this account's start-up (the daemon's when alone)
    state: str = "connecting"  # "connecting", "starting" (actors reconciling), "ready"
    started: trio.Event = field(default_factory=trio.Event)  # up, or its first connect attempt failed


@dataclass(slots=True)
class Daemon:
    """The running daemon's parts, for status, control and tests.

    Process-wide: settings, the one store (tranches carry their venue), metrics (venue-labelled), the operator
    API and readiness. Per venue account: ``accounts[name]`` (``account(name)``). With one account,
    ``daemon.venue``, ``.rules``, ``.directory``... are that account's.
    """

    settings: Settings
    store: Store
    metrics: Metrics
    accounts: dict[str, AccountRuntime] = field(default_factory=dict)  # by venue name, in configured order
    cancel_scope: trio.CancelScope | None = None
    control: DaemonControl | None = None
    api_url: str | None = None  # where the operator API listens, when it is served
    readiness: Readiness = field(default_factory=Readiness)  # every account up? (/ready, systemd's READY=1)
    pairs: PairCoordinator | None = None  # hedge pairs across the accounts (a daemon running several venues)
    pairs_inbox: trio.MemorySendChannel[PairMessage] | None = None
    _pair_marks: set[tuple[str, str]] = field(default_factory=set)  # (venue, symbol) the coordinator gets marks of

    def follow_pair_marks(self) -> None:
        """Subscribe the coordinator to the marks of every pair leg's symbol it does not hear yet, on each account
        whose router is up (called when pairs are restored or made, and when an account comes up)."""
        if self.pairs is None or self.pairs_inbox is None:
            return
        for pair in list(self.pairs.pairs.values()):
            for leg in pair.legs:
                account = self.accounts.get(leg.venue)
                key = (leg.venue, leg.symbol)
                if key in self._pair_marks or account is None or account.router_requests is None:
                    continue
                account.router_requests.send_nowait(Subscribe(leg.symbol, LegMarkSlot(leg.venue, self.pairs_inbox)))
                self._pair_marks.add(key)

    def account(self, venue: str) -> AccountRuntime:
        """The account trading ``venue`` (KeyError naming the venues run when there is none)."""
        try:
            return self.accounts[venue]
        except KeyError:
            raise KeyError(f"no account on {venue!r}; this daemon runs {', '.join(self.accounts)}") from None

    def instrument_table(self) -> InstrumentTable:
        """Unified names across every account that has its rules (the same base pairs over venues: a hedge)."""
        rules = {name: a.rules for name, a in self.accounts.items() if a.rules}
        return InstrumentTable.build(rules, self.settings.instruments)

    @property
    def only(self) -> AccountRuntime:
        """The one account of a single-venue daemon; ``Unaddressed`` when it runs several."""
        if len(self.accounts) != 1:
            raise Unaddressed(f"this daemon runs {', '.join(self.accounts)}: name the venue (daemon.account(name))")
        return next(iter(self.accounts.values()))

    @property
    def venue(self) -> Venue:
        venue = self.only.venue
        assert venue is not None, "the venue is not open yet"
        return venue

    # A single-venue daemon's account parts, as before there were several (tests and tools use them).
    @property
    def rules(self) -> dict[str, SymbolRules]:
        return self.only.rules

    @property
    def instruments(self) -> InstrumentTable | None:
        return self.only.instruments

    @property
    def directory(self) -> PositionDirectory | None:
        return self.only.directory

    @property
    def router(self) -> PriceRouter | None:
        return self.only.router

    @property
    def gateway(self) -> trio.MemorySendChannel[GatewayRequest] | None:
        return self.only.gateway

    @property
    def gateway_state(self) -> GatewayState | None:
        return self.only.gateway_state

    @property
    def reconciler(self) -> AccountReconciler | None:
        return self.only.reconciler

    @property
    def user_stream(self) -> UserStream | None:
        return self.only.user_stream

    @property
    def risk_guard(self) -> RiskGuard | None:
        return self.only.risk_guard

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


async def _announce_ready(
    directory: PositionDirectory, readiness: Readiness, watching: str, poll: float = 1.0, *, who: str = "posmon"
) -> None:
    """Ready once every position actor has done its start-up reconcile and acts on ticks.

    The list is read again after each wait: an actor restarted meanwhile is a new incarnation with its own event,
    and an account read may have started actors for positions nobody watched yet.
    """
    while waiting := [a for a in directory.actors() if not a.ready.is_set()]:
        readiness.progress(f"reconciling positions: {len(waiting)} of {len(directory.actors())} not done yet")
        with trio.move_on_after(poll):
            await waiting[0].ready.wait()
    readiness.set_ready(f"{watching}, {_count(len(directory.keys()), 'position')}")
    log.info("%s ready: %s", who, readiness.detail)


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


async def _publish_pair_gauges(daemon: Daemon, metrics: Metrics, every: float = 5.0) -> None:
    """Open pairs and each pair's leg imbalance, from the coordinator's own state (no I/O)."""
    seen: set[str] = set()
    while True:
        if daemon.pairs is not None:
            views = daemon.pairs.views()
            metrics.set("open_pairs", len(views))
            now = {str(v.id) for v in views}
            for v in views:
                metrics.set("pair_leg_imbalance_pct", float(v.imbalance_pct), pair=str(v.id))
            for gone in seen - now:
                metrics.set("pair_leg_imbalance_pct", 0.0, pair=gone)
            seen = now
        await trio.sleep(every)


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every account's actors share: the restart policy, the notices' channel and the operator's sinks."""

    policy: RestartPolicy
    notice_send: trio.MemorySendChannel[Notice]
    clock: Callable[[], float]
    freeze_heap: bool
    connect_timeout: float
    per_try: float  # one try at reaching a venue of several (opening it, reading its rules)
    order_gate: Callable[[], Awaitable[None]] | None  # awaited by the order gateways before every venue call
    label: Callable[[str, str], str]  # a supervised task's name for an account ("gateway", "gateway:lighter")


async def run_daemon(
    settings: Settings,
    venue: Venue | Sequence[Venue | VenueOpener],
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

    ``venue``: one opened venue (one account, as always), or several venue accounts, each an opened venue or a
    ``VenueOpener`` the account opens itself (``posmon run`` with ``[daemon] venues``). Several accounts start
    concurrently; one whose venue is unreachable keeps retrying (backoff up to 15 s, no give-up: the others are
    protecting positions meanwhile) while the rest run, and the daemon is ready once every account is. Refused
    credentials or a configuration error still stop the daemon, as they do with one venue.
    ``api``: serve the operator HTTP API (status, open, close, stop, /metrics) with these settings.
    ``freeze_heap``: ``gc.freeze()`` once start-up is done (off for daemons sharing a process, e.g. in tests).
    ``connect_timeout``: how long the venue's trading rules are asked for (with backoff) before start-up gives up
    (one venue) or the account says it is unreachable and keeps trying (several).
    ``rules``: the rules opening the (single) venue just read (``opened_rules``); asked for again only when not
    given (at 1,000 symbols a second read of exchangeInfo costs about half a second of start-up).
    ``order_gate``: every account's order gateway awaits it before every venue call (a cluster's lease:
    ``posmon.cluster``).
    """
    d = settings.daemon
    metrics = metrics or Metrics()
    sources: list[Venue | VenueOpener] = list(venue) if isinstance(venue, Sequence) else [venue]
    names = [src.name for src in sources]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"run_daemon: expected one account per venue, got {names}")
    single = len(sources) == 1
    daemon = Daemon(settings, store, metrics)
    for src in sources:
        daemon.accounts[src.name] = AccountRuntime(
            src.name,
            venue=None if isinstance(src, VenueOpener) else src,
            readiness=daemon.readiness if single else Readiness(f"connecting to {src.name}"),
        )
    if not single:
        _follow_accounts(daemon)
    daemon.control = DaemonControl(daemon, clock=clock, reply_timeout=d.request_timeout_seconds * 3)
    metrics.set_build_info(",".join(names))
    sd_notify = SdNotify.from_env(os.environ)
    if sd_notify is not None:
        sd_notify.follow(daemon.readiness)  # `systemctl status` shows each start-up step
    policy = RestartPolicy(budget=d.restart_budget, window=d.restart_window_seconds, backoff=d.restart_backoff_seconds)
    notice_send, notice_recv = trio.open_memory_channel[Notice](10_000)
    # Telegram/webhook channels and the stream watchdog from [notify]; an actor exhausting its restart budget
    # hands its notice straight to the channels and waits (bounded) for it to go out before the daemon stops.
    notify = NotifyService(
        NotifySettings.from_config(settings.notify, os.environ), metrics, notices=notice_send, venues=names
    )
    policy = replace(policy, on_exhausted=notify.restart_budget_exhausted)
    sinks: list[Any] = [notify]
    if not single:
        # Hedge pairs need two venues: the coordinator is made now (its inbox hears leg exits from the first
        # notice on) and runs once every account has started (its start-up closes reach the legs' actors).
        daemon.pairs, daemon.pairs_inbox = PairCoordinator.create(
            AccountDirectories(daemon.accounts), store, notice_send, clock, stale_seconds=d.stale_stream_seconds
        )
        sinks.append(LegExitTee(daemon.pairs_inbox, metrics))
    shared = _Shared(
        policy,
        notice_send,
        clock,
        freeze_heap,
        connect_timeout,
        d.request_timeout_seconds * 4,
        order_gate,
        (lambda what, _venue: what) if single else (lambda what, venue_name: f"{what}:{venue_name}"),
    )

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
            await nursery.start(supervise, "notify", lambda: notify.run, policy, metrics)
            await nursery.start(
                supervise,
                "notifier",
                lambda: Notifier(notice_recv, list(notice_listeners), sinks=sinks, metrics=metrics).run,
                policy,
                metrics,
            )
            if single and not isinstance(sources[0], VenueOpener):  # opened by the caller
                account = daemon.only
                await _start(daemon, account, nursery, shared=shared, rules=rules)
                account.started.set()
            else:
                for src in sources:
                    nursery.start_soon(_run_account, daemon, daemon.accounts[src.name], src, shared)
                for account in daemon.accounts.values():
                    await account.started.wait()  # up, or not reachable on its first try (it keeps trying)
                if (coordinator := daemon.pairs) is not None:
                    await nursery.start(supervise, "pairs", lambda: coordinator.run, policy, metrics)
                    daemon.follow_pair_marks()
                    nursery.start_soon(_publish_pair_gauges, daemon, metrics)
            task_status.started(daemon)


def _follow_accounts(daemon: Daemon) -> None:
    """The daemon's readiness from its accounts': ready once every account is, the laggards' steps meanwhile."""

    def changed(_: Readiness) -> None:
        accounts = daemon.accounts.values()
        if all(a.readiness.is_ready for a in accounts):
            if not daemon.readiness.is_ready:
                daemon.readiness.set_ready("; ".join(a.readiness.detail for a in accounts))
                log.info("posmon ready: %s", daemon.readiness.detail)
        else:
            daemon.readiness.progress(
                "; ".join(f"{a.name}: {a.readiness.detail}" for a in accounts if not a.readiness.is_ready)
            )

    for account in daemon.accounts.values():
        account.readiness.subscribe(changed)


async def _run_account(daemon: Daemon, account: AccountRuntime, source: Venue | VenueOpener, shared: _Shared) -> None:
    """One account of several, under its own nursery: reach its venue (retrying until it answers, however long:
    the other accounts run meanwhile), start its actors, and keep its venue open until the daemon stops."""
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        rules = await _reach(account, source, nursery, stack, shared)
        await _start(daemon, account, nursery, shared=shared, rules=rules)
        account.started.set()
        await trio.sleep_forever()


async def _reach(
    account: AccountRuntime,
    source: Venue | VenueOpener,
    nursery: trio.Nursery,
    stack: AsyncExitStack,
    shared: _Shared,
) -> dict[str, SymbolRules]:
    """Open ``source`` (when it is an opener) and read its trading rules, one try at a time with backoff until the
    venue answers. Refused credentials, a missing signer and configuration errors are raised: they need the
    operator, and retrying would only hide them."""
    delay = FIRST_BACKOFF_SECONDS
    per_try = max(shared.per_try, MIN_TRY_SECONDS)
    for attempt in itertools.count(1):
        try:
            if account.venue is None:
                assert isinstance(source, VenueOpener)
                account.venue = await source.open_once(nursery, stack, per_try=per_try, log=log)
            venue = account.venue
            if opened := opened_rules(venue):
                return opened
            return await retry_startup(
                venue.load_rules,
                venue=venue.name,
                what="loading the trading rules",
                give_up_after=per_try,
                log=log,
                per_try=per_try,
                auth=venue.traits.auth,
                retry=False,
            )
        except VenueUnreachable as exc:
            if isinstance(source, VenueOpener) and source.embedded:
                raise  # a simulator posmon starts itself: a second start would be a second simulator
            account.state = "unreachable"
            account.readiness.progress(f"unreachable, retrying (try {attempt})")
            log.warning("%s; the other venues keep running; retrying in %.1f s", exc, delay)
            account.started.set()  # the daemon's start does not wait for it
            await trio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
    raise AssertionError("unreachable")


async def _start(
    daemon: Daemon,
    account: AccountRuntime,
    nursery: trio.Nursery,
    *,
    shared: _Shared,
    rules: Mapping[str, SymbolRules] | None,
) -> None:
    """Reach the venue, start the account's actors and restore every (symbol, side) the store holds for it;
    returns once the user stream is up (the account's readiness follows when every restored actor has
    reconciled)."""
    settings, store, metrics = daemon.settings, daemon.store, daemon.metrics
    venue = account.venue
    assert venue is not None
    d = settings.daemon
    policy, clock = shared.policy, shared.clock
    notice_send = shared.notice_send

    def label(what: str) -> str:
        return shared.label(what, venue.name)

    account.state = "starting"
    gw_send, gw_recv = trio.open_memory_channel[GatewayRequest](math.inf)
    router_send, router_recv = trio.open_memory_channel[RouterRequest](math.inf)
    account.gateway, account.router_requests = gw_send, router_send
    if rules:
        account.rules = dict(rules)
    else:
        account.rules = await connect_venue(venue, give_up_after=shared.connect_timeout, log=log)
    account.instruments = instruments_of(venue.name, account.rules, settings)
    account.readiness.progress("starting the actors")
    symbols = sorted(account.rules)
    # A venue with only one position mode (Lighter: one-way) says so; otherwise the configuration does.
    hedge_mode = venue.traits.hedge_mode(d.hedge_mode)

    def config_for(symbol: str, side: Side) -> ActorConfig:
        if symbol not in account.rules:
            raise KeyError(f"{venue.name} does not list {symbol}")
        r = settings.risk_for(symbol)
        # Venues that cannot be trusted with conditional orders (Lighter) say so; posmon then holds the exits.
        traits = venue.traits
        return ActorConfig(
            venue=venue.name,
            symbol=symbol,
            side=side,
            rules=account.rules[symbol],
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

    account.readiness.progress("loading the positions from the store")
    # Every key's rows in three queries, not three per actor; read before the streams connect, so that the
    # seconds it takes at 100,000 tranches do not pass for a silent price stream (and yielding, so /health and
    # the progress line answer meanwhile).
    restored = await store.restore_async(venue.name)
    if RiskGuard.wanted(settings):
        account.risk_guard = RiskGuard(settings, gw_send, reply_timeout=d.request_timeout_seconds * 3)
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
        risk=account.risk_guard,
    )
    account.directory = directory
    gw_policy = GatewayPolicy(request_timeout=d.request_timeout_seconds)
    # The gateway's queue outlives its incarnations: a restart sends what was waiting, and answers what was
    # in flight as outcome-unknown at once (its requesters look it up), instead of every actor reconciling.
    gw_state = account.gateway_state = GatewayState()
    await nursery.start(
        supervise,
        label("gateway"),
        lambda: (
            OrderGateway(venue, gw_recv, metrics, gw_policy, clock=clock, state=gw_state, gate=shared.order_gate).run
        ),
        policy,
        metrics,
    )

    def make_router() -> Callable[..., Any]:
        account.router = PriceRouter(venue, router_recv, metrics, symbols=symbols, stale_after=d.stale_stream_seconds)
        return account.router.run

    await nursery.start(supervise, label("price_router"), make_router, policy, metrics)
    daemon.follow_pair_marks()  # an account up after the pairs were restored: its legs' marks
    if (guard := account.risk_guard) is not None:
        guard.holdings = directory
        await nursery.start(supervise, label("risk_guard"), lambda: guard.run, policy, metrics)
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
    account.reconciler = reconciler
    # Restored actors reconcile from the user stream's first whole-account read (made once the stream is
    # connected, so nothing between the read and the stream's first frame is missed): one read of the account
    # for the whole start-up, not one more before it.
    for (symbol, side), rows in restored.items():
        directory.inbox(symbol, side, restored=rows, await_sweep=True)
    del restored  # each actor drops its rows once loaded
    await nursery.start(supervise, label("reconciler"), lambda: reconciler.run, policy, metrics)
    user_stream = UserStream(
        venue, directory, reconciler, store, metrics, hedge_mode=hedge_mode, prefix=d.client_id_prefix
    )
    account.user_stream = user_stream
    account.readiness.progress("connecting the user stream and reconciling the account")
    stream_up = trio.Event()
    nursery.start_soon(_sweep_unless, stream_up, reconciler, d.request_timeout_seconds * 3)
    await nursery.start(supervise, label("user_stream"), lambda: user_stream.run, policy, metrics)
    stream_up.set()
    nursery.start_soon(_publish_book_gauges, directory, metrics, venue.name, store)
    if shared.freeze_heap:
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
        await _announce_ready(directory, account.readiness, watching, who=shared.label("posmon", venue.name))
        account.state = "ready"
    else:
        nursery.start_soon(_ready_then_mark, account, directory, watching, shared.label("posmon", venue.name))


async def _ready_then_mark(account: AccountRuntime, directory: PositionDirectory, watching: str, who: str) -> None:
    await _announce_ready(directory, account.readiness, watching, who=who)
    account.state = "ready"


async def _sweep_unless(stream_up: trio.Event, reconciler: AccountReconciler, within: float) -> None:
    """The restored actors' start-up read when the user stream does not connect in time: they act on ticks
    meanwhile (the stream's own read follows once it connects); the daemon stays "starting" until it does."""
    with trio.move_on_after(within):
        await stream_up.wait()
        return
    log.warning("the user stream is not up after %.0f s; reconciling the restored positions without it", within)
    await reconciler.sweep()


async def _log_progress(daemon: Daemon, every: float = 1.0, quiet_repeat: float = 30.0) -> None:
    """One line a second while starting: the step, and the actors loaded and reconciled of how many. With several
    accounts the same line again (one venue out for minutes while the others run) only every ``quiet_repeat`` s."""
    last, last_at = "", -math.inf
    while not daemon.readiness.is_ready:
        with trio.move_on_after(every):
            await daemon.readiness.wait()
        if daemon.readiness.is_ready:
            return
        actors = [a for acc in daemon.accounts.values() if acc.directory is not None for a in acc.directory.actors()]
        loaded = sum(1 for a in actors if a.loaded)
        done = sum(1 for a in actors if a.ready.is_set())
        line = (
            f"starting: {daemon.readiness.detail}; {loaded} of {len(actors)} actors loaded, "
            f"{done} of {len(actors)} reconciled"
        )
        now = trio.current_time()
        if len(daemon.accounts) == 1 or line != last or now - last_at >= quiet_repeat:
            log.info("%s", line)
            last, last_at = line, now
