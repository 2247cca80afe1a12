"""The position actor: sole owner of one (venue, symbol, side)'s tranches and their orders.

Everything reaches it as a message in its inbox (fills and order updates from
the user stream, results from the gateway, commands, price wake-ups), so it
needs no locks. For each message it decides with the pure domain functions,
writes the decision to the store, and only then sends intents to the gateway.

On the exchange each tranche keeps a reduce-only TP limit and a stop-market SL
for its whole quantity. A changed tranche gets its new pair placed before the
old pair is cancelled (no unprotected gap). A mark through a tranche's TP (or
past its hold time) closes it: its TP and SL are cancelled first (so a TP that
fills meanwhile cannot be doubled by the market close), then the rest is
closed at market.

A tranche with an exit plan (``domain.exitplan``) runs it here through the same
paths: a TP before the last ladder level closes that level's share (its TP leg
filling, or a mark through it closing the share at market once that leg is
cancelled; the SL keeps protecting meanwhile) and the tranche goes on, advanced
to the next level and re-protected; a mark that reaches a tranche's stop gate
may move its stop (trailing, break-even), persisted before the new stop is
placed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar, assert_never

import trio

from posmon.actors.messages import (
    AccountSnapshot,
    Action,
    CancelOrders,
    CloseTranches,
    EntryOutcome,
    FetchAccount,
    GatewayRequest,
    Notice,
    OpenEntry,
    OrderResult,
    OrderResults,
    PlaceOrders,
    PositionMessage,
    PriceWake,
    Priority,
    ProtectTranches,
    QueryOrders,
    Reconcile,
    ResumeMonitoring,
    StopMonitoring,
    TrimTranche,
)
from posmon.actors.price_slot import PriceSlot
from posmon.actors.risk_guard import RiskGuard, growth
from posmon.domain.exitplan import after_level_filled, moved_stop, trailing_stop
from posmon.domain.exits import CloseSlippage, EmulatedExits, ExitContext, ExitPolicy, RestingExits
from posmon.domain.orders import OrderState, OrderStatus, Purpose, Side, SymbolRules, WorkingType
from posmon.domain.protection import (
    LocalState,
    OrderRecord,
    parse_client_order_id,
)
from posmon.domain.rounding import round_down
from posmon.domain.tranche import (
    EntryDecision,
    ExitReason,
    Risk,
    Tranche,
    apply_entry_fill,
    apply_reduction,
    booked_exit,
    extend_tranche,
    implied_entry,
    new_tranche,
    realized_pnl,
)
from posmon.exchange.errors import OrderNotFound, VenueError, WouldTriggerImmediately
from posmon.exchange.events import OrderUpdate, PositionUpdate
from posmon.logs import bind
from posmon.metrics import Metrics
from posmon.notify.kinds import NoticeKind
from posmon.store.store import Changes, Event, PendingEntry, Restored, Store

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# A trim under way is persisted in the tranche's ``closing`` as ``TRIM:<quantity still to close>:<reason>``: a
# restart finds what is left to close there (its close order, if one went out, is settled by the reconcile first).
_TRIM = "TRIM:"


def _trim_marker(left: Decimal, reason: str) -> str:
    return f"{_TRIM}{left}:{reason}"


def _trim_of(closing: str | None) -> tuple[Decimal, str] | None:
    """(quantity still to close, reason) of a trim under way; None for no trim."""
    if closing is None or not closing.startswith(_TRIM):
        return None
    left, _, reason = closing[len(_TRIM) :].partition(":")
    return Decimal(left), reason


def _reply(channel: trio.MemorySendChannel[_T] | None, answer: _T) -> None:
    """Answer a waiting requester without ever blocking (it may have given up and closed its channel)."""
    if channel is not None:
        with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            channel.send_nowait(answer)


@dataclass(frozen=True, slots=True)
class _AccountRead:
    """The answer to a reconcile's account read (None: none came in time), tagged with the reconcile it serves."""

    generation: int
    snapshot: AccountSnapshot | None


@dataclass(frozen=True, slots=True)
class _Lookups:
    """The answer to a reconcile's look-ups by client id (None: none came in time)."""

    generation: int
    answer: OrderResults | None


# What a position actor's inbox carries: the messages others send it, and the answers its own reconcile reads
# queue back to it.
ActorInbox = PositionMessage | _AccountRead | _Lookups


@dataclass(slots=True)
class _Reconciliation:
    """One reconcile under way: what it knew when it asked, so it never judges what was sent after."""

    generation: int
    known: frozenset[str]  # client ids tracked when the read was asked for: only these may be looked up
    read_at: float | None  # when the account read was asked for (None: unknown, e.g. the start-up snapshot)
    snapshot: AccountSnapshot | None = None


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """Everything a position actor is told at birth; identical across restarts."""

    venue: str
    symbol: str
    side: Side
    rules: SymbolRules
    risk: Risk
    instant_tp: bool
    working_type: WorkingType
    hedge_mode: bool
    prefix: str
    protection_failure_action: str = "alert"
    reply_timeout: float = 60.0
    retry_seconds: float = 5.0
    reconcile_grace: float = 2.0
    # A position frame that the tranches do not explain is looked at again after this long (an order update
    # for the same trade usually follows within milliseconds); a gap still there is confirmed by a REST read.
    position_frame_grace: float = 1.0
    # A protection order the venue refuses is retried after a doubling pause up to this long (not every
    # ``retry_seconds`` forever); the operator is told once.
    rejected_retry_max_seconds: float = 300.0
    # After a read settled a gap, stream fills older than the read are taken as already in it, for this long
    # (a late update arrives within seconds; an older event time much later is a venue's creation time instead).
    late_update_window: float = 60.0
    # A key first seen in a live fill needs no start-up reconcile: the fill itself is the news. Restored
    # keys, discovered positions and restarts (which reload state) reconcile before acting.
    reconcile_on_start: bool = True
    # Venues whose conditional orders cannot be trusted (Lighter): no resting TP/SL; posmon watches TP, SL
    # and the hold time itself and closes with reduce-only market orders bounded by ``close_slippage``
    # (``domain.exits.EmulatedExits``); otherwise the venue holds them (``RestingExits``).
    emulated_exits: bool = False
    close_slippage: CloseSlippage = field(default_factory=CloseSlippage)

    def exit_policy(self) -> ExitPolicy:
        """The exit policy this (symbol, side) runs with: a new exit kind is a new class in ``domain.exits``."""
        ctx = ExitContext(
            side=self.side,
            rules=self.rules,
            prefix=self.prefix,
            hedge_mode=self.hedge_mode,
            working_type=self.working_type,
            instant_tp=self.instant_tp,
            watch_hold_time=self.risk.max_hold_seconds > 0,
            retry_seconds=self.retry_seconds,
        )
        return EmulatedExits(ctx, self.close_slippage) if self.emulated_exits else RestingExits(ctx)


@dataclass(slots=True)
class ActorLinks:
    """The channels and shared services an actor talks through (they outlive its restarts)."""

    inbox: trio.MemoryReceiveChannel[ActorInbox]
    self_send: trio.MemorySendChannel[ActorInbox]
    slot: PriceSlot
    gateway: trio.MemorySendChannel[GatewayRequest]
    notices: trio.MemorySendChannel[Notice]
    store: Store
    metrics: Metrics
    clock: Callable[[], float]
    risk: RiskGuard | None = None  # the account-wide risk limits; None when none is configured


class PositionActor:
    def __init__(
        self,
        cfg: ActorConfig,
        links: ActorLinks,
        *,
        snapshot: AccountSnapshot | None = None,
        restored: Restored | None = None,
        await_sweep: bool = False,
    ) -> None:
        """``snapshot``: this symbol's slice of an account snapshot the daemon took at start-up, used for the
        start-up reconcile instead of asking the exchange again (one read for every restored actor).
        ``restored``: this key's rows from the daemon's one start-up read of the store (``Store.restore``), used
        instead of reading them again; both are dropped once used. ``await_sweep``: the start-up reconcile waits
        for the account sweep's ``Reconcile`` (the daemon's one whole-account read) instead of reading."""
        self.cfg = cfg
        self._startup_snapshot = snapshot
        self._restored = restored
        # Until when a restored actor waits for the sweep's read before reading its own (None: not waiting).
        self._sweep_deadline: float | None = None
        self._await_sweep = await_sweep
        self.loaded = False  # its state is loaded from the store (start-up progress)
        self.links = links
        self.store = links.store
        self.tranches: dict[int, Tranche] = {}
        self.orders: dict[str, OrderRecord] = {}  # every active order, by client id
        # The same, per tranche (no scans): a tuple, not a dict per tranche (72 bytes against 200 for its two legs)
        self._orders_by_tranche: dict[int, tuple[OrderRecord, ...]] = {}
        self.exits = cfg.exit_policy()
        self.book = self.exits.trigger_book()
        self._merged_into: dict[int, int] = {}
        self._retry_at: float | None = None
        self._confirm_at: float | None = None
        self._pending_diff: Decimal | None = None
        self._close_hold: dict[int, float] = {}  # no new close order for the tranche before this time
        self._tick_at: float | None = None  # trio time of the frame behind the current decision
        self._entries: dict[str, PendingEntry] = {}  # operator entries not yet ended, by client id
        self._entry_replies: dict[str, trio.MemorySendChannel[EntryOutcome]] = {}
        self._entry_seen: dict[str, Decimal] = {}  # cumulative filled quantity already applied, per entry
        self.stopped = False  # the operator stopped monitoring this symbol: hold nothing, adopt nothing
        self.running = False  # run() is under way (a crashed incarnation waiting for its restart is not)
        self.ready = trio.Event()  # set once the start-up reconcile is done and the actor acts on ticks
        self._nursery: trio.Nursery | None = None  # runs the reconcile's reads, so they never block a tick
        self._recon: _Reconciliation | None = None  # the reconcile under way
        self._recon_generation = 0
        self._recon_again: tuple[AccountSnapshot | None, float | None] | None = None  # asked for meanwhile
        self._awaiting: set[str] = set()  # placements this incarnation sent whose answer has not come yet
        self._last_change_at = -math.inf  # when a stream fact last changed the tranches (actor's clock)
        self._settled_through: float | None = None  # a confirmed gap was settled from a read asked at this time
        self._frame_qty: Decimal | None = None  # the venue's position as the newest position frame showed it
        self._frame_check_at: float | None = None
        # While the loop handles a turn: its decisions, committed together before ``_after_commit`` runs.
        self._deferred: list[Changes] | None = None
        self._after_commit: list[Callable[[], None]] = []
        # Protection orders the venue refused, per tranche leg: how often, and no new try before when.
        self._rejections: dict[tuple[int, Purpose], tuple[int, float]] = {}
        # Ladder levels being closed at market (a mark ran through their TP): what each still has to close. Lost
        # on a restart, where the level's close order (or its share) says it again.
        self._level_left: dict[int, Decimal] = {}
        self._mark_again = False  # a level advanced: look at the newest mark again (it may be through the next)
        # A pair's tight stops asked for before any mark was known: (stop_pct, reason) per tranche, applied at the
        # next mark (every mark wakes the actor meanwhile). Lost on a restart, where the pair's restore asks again.
        self._protect_waiting: dict[int, tuple[Decimal, str]] = {}

    # --- lifecycle ----------------------------------------------------------------------------------------

    @property
    def mark(self) -> Decimal | None:
        """The newest mark price of the symbol, whether or not it woke this actor."""
        last = self.links.slot.last
        return last.price if last is not None else None

    @property
    def name(self) -> str:
        return f"{self.cfg.venue}:{self.cfg.symbol}:{self.cfg.side.value}"

    def _load(self) -> None:
        """Rebuild this actor's state from the store (at start and after every restart)."""
        c = self.cfg
        restored, self._restored = self._restored, None
        if restored is None:  # a restart, or a key started after start-up: read its own rows
            restored = Restored(
                tranches=self.store.open_tranches(c.venue, c.symbol, c.side),
                entries=self.store.pending_entries(c.venue, c.symbol, c.side),
                stopped=c.symbol in self.store.unmonitored(c.venue),
            )
            owned = sorted({*(t.id for t in restored.tranches), *self._closed_with_active_orders()})
            restored.orders = self.store.active_orders(owned)
        for t in restored.tranches:
            self.tranches[t.id] = t
            if not t.closing:
                self.book.add(t)
        for rec in restored.orders:
            self._remember(rec)
        for e in restored.entries:
            self._entries[e.client_id] = e
        self.stopped = restored.stopped
        self.loaded = True

    def _closed_with_active_orders(self) -> list[int]:
        """Closed tranches of this key that still have active orders (e.g. merged away)."""
        c = self.cfg
        return self.store.tranches_with_active_orders(c.venue, c.symbol, c.side)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """``_run`` with ``running`` true while it runs (status tells whether emulated exits are watched)."""
        self.running = True
        c = self.cfg
        bind(venue=c.venue, symbol=c.symbol, side=c.side.value)  # every line this task and its children log
        try:
            await self._run(task_status)
        finally:
            self.running = False

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handle messages one at a time; reconcile reads run beside the loop and come back as messages.

        Until the start-up reconcile is done the actor does not act on prices or hold times (its loaded state
        may be stale: a leg may have filled while the daemon was down); from then on nothing waits behind a
        reconcile, a command or a read.
        """
        self._load()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            if self._await_sweep:
                # Not ready until the sweep's Reconcile (or any other reconcile) is done; a sweep that never
                # comes (its read failed) is replaced by a read of our own after a reply timeout.
                self._sweep_deadline = self.links.clock() + self.cfg.reply_timeout
            elif self.tranches or self.orders or self.cfg.reconcile_on_start:
                snapshot, self._startup_snapshot = self._startup_snapshot, None
                self._request_reconcile(snapshot)
            else:
                self._become_ready()
            while True:
                wake = self._next_wake()
                msg = None
                with trio.move_on_after(max(0.0, wake - self.links.clock()) if wake < math.inf else math.inf):
                    msg = await self.links.inbox.receive()
                # One turn: decide on everything, then commit it in one go and act (``_settle``).
                self._deferred = []
                try:
                    if msg is not None:
                        self._handle(msg)
                    self._on_clock()
                    if self.ready.is_set() and (self.links.slot.latest is not None or self._mark_again):
                        self._on_price()
                    # Only a mark that reaches the nearest TP or SL wakes this actor again (hold deadlines and
                    # retries wake it by the clock); any mark while a tight stop waits for one.
                    self.links.slot.gate = None if self._protect_waiting else self.book.price_gates()
                except BaseException:
                    self._settle_now()
                    raise
                await self._settle()

    def _become_ready(self) -> None:
        if self.ready.is_set():
            return
        self.ready.set()
        # A predecessor may have died holding the slot's wake-up token: look at the slot now, which re-arms it.
        self._on_price()

    def unprotected(self) -> bool:
        """Whether some held tranche lacks one of its policy's resting legs live right now (emulated exits rest
        none: they are always armed)."""
        legs = self.exits.legs
        if not legs:
            return False
        for t in self.tranches.values():
            if t.closing:
                continue
            live = {o.purpose for o in self._orders_by_tranche.get(t.id, ()) if o.state is LocalState.LIVE}
            if not live.issuperset(legs):
                return True
        return False

    def _next_wake(self) -> float:
        deadline = self.book.next_deadline() if self.ready.is_set() else None
        times = [
            t
            for t in (deadline, self._retry_at, self._confirm_at, self._frame_check_at, self._sweep_deadline)
            if t is not None
        ]
        return min(times, default=math.inf)

    def _handle(self, msg: ActorInbox) -> None:
        match msg:
            case PriceWake():
                if self.ready.is_set():
                    self._on_price()
            case OrderUpdate():
                self._on_order_update(msg)
            case PositionUpdate():
                self._on_position_frame(msg)
            case OrderResults():
                for r in msg.results:
                    self._on_result(r)
            case _AccountRead():
                self._on_account_read(msg)
            case _Lookups():
                self._on_lookups(msg)
            case Reconcile():
                self._request_reconcile(msg.snapshot, msg.read_at)
            case OpenEntry():
                self._open_entry(msg)
            case StopMonitoring():
                self._stop_monitoring(msg)
            case ResumeMonitoring():
                # Repeated resumes coalesce: one reconcile under way answers them all, and none blocks a tick.
                self.stopped = False
                self._request_reconcile()
            case CloseTranches():
                for tid in msg.tranche_ids or tuple(self.tranches):
                    if (t := self.tranches.get(tid)) is not None and (not t.closing or self._partial_closing(t)):
                        self._start_close(t, msg.reason)
            case TrimTranche():
                self._trim(msg)
            case ProtectTranches():
                for tid in msg.tranche_ids:
                    self._tighten_stop(tid, msg.stop_pct, msg.reason)
            case _:
                assert_never(msg)

    def _on_clock(self) -> None:
        now = self.links.clock()
        if self.ready.is_set() and self.book.next_deadline() is not None:
            for tid, reason in list(self.book.pop_triggered(None, now)):
                self._start_close(self.tranches[tid], reason)
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._ensure_protected()
        if self._frame_check_at is not None and now >= self._frame_check_at:
            self._frame_check_at = None
            self._check_position_frame()
        if self._confirm_at is not None and now >= self._confirm_at:
            self._confirm_at = None
            self._request_reconcile()
        if self._sweep_deadline is not None and now >= self._sweep_deadline:
            log.warning("%s: no account sweep came since start-up; reading the account itself", self.name)
            self._request_reconcile()

    # --- prices -------------------------------------------------------------------------------------------

    def _on_price(self) -> None:
        received_at = self.links.slot.received_at
        mark = self.links.slot.take()
        if mark is None and self._mark_again:
            mark = self.links.slot.last
        self._mark_again = False
        if mark is None:
            return
        for tid, (pct, reason) in list(self._protect_waiting.items()):
            self._tighten_stop(tid, pct, reason)
        if not self.book:
            return
        self._tick_at = received_at
        try:
            for tid, reason in list(self.book.pop_triggered(mark.price, self.links.clock())):
                self.links.metrics.inc("exits_triggered", venue=self.cfg.venue, reason=reason)
                self._start_close(self.tranches[tid], reason)
            for tid in list(self.book.pop_gated(mark.price)):
                self._maybe_move_stop(self.tranches[tid], mark.price)
        finally:
            self._tick_at = None

    def _maybe_move_stop(self, t: Tranche, mark: Decimal) -> None:
        """The mark reached ``t``'s stop gate: move its stop if the plan says so (``moved_stop``), else watch the
        gate again beyond this mark. Decide, persist the new stop and best mark, then replace the resting stop
        (new one placed, the old cancelled once it is live) or, emulated, watch the new level."""
        moved = moved_stop(t, mark, self.cfg.rules)
        if moved is None:
            self.book.regate(t, mark)
            return
        tr = t.plan.trailing
        trailing = (
            tr is not None
            and moved.best_mark is not None
            and moved.sl == trailing_stop(t.side, moved.best_mark, tr.callback_pct, self.cfg.rules)
        )
        why = "trailing" if trailing else "break-even"
        self._move_stop(t, moved, why, "trailing" if trailing else "breakeven")

    def _move_stop(self, t: Tranche, moved: Tranche, why: str, metric: str) -> None:
        """Persist ``t``'s new stop (``moved``), then replace the resting stop (new one placed, the old cancelled
        once it is live) or, emulated, watch the new level."""
        self.links.metrics.inc("stop_moves", venue=self.cfg.venue, reason=metric)
        self.tranches[t.id] = moved
        self.book.add(moved)
        self._persist(
            Changes(
                tranches=[moved],
                events=[self._event("stop_moved", moved, old=t.sl, new=moved.sl, best_mark=moved.best_mark, why=why)],
            )
        )
        log.info(
            "%s: stop of tranche %s moved %s -> %s (%s, best mark %s)",
            self.name,
            t.id,
            t.sl,
            moved.sl,
            why,
            moved.best_mark,
            extra={"tranche": t.id},
        )
        if self.exits.legs:
            self._protect(moved, self.exits.legs)

    def _tighten_stop(self, tid: int, stop_pct: Decimal, reason: str) -> None:
        """A hedge pair's protect: ``tid``'s stop ``stop_pct`` % behind the newest mark (at least a tick), only
        if that is tighter than the stop it has; through the stop-move path (persisted, then re-placed)."""
        self._protect_waiting.pop(tid, None)
        t = self.tranches.get(tid)
        mark = self.mark
        if t is None or t.closing:
            log.info("%s: protect of tranche %s ignored (%s)", self.name, tid, "closing" if t else "not held")
            return
        if mark is None:
            log.warning("%s: no mark yet for tranche %s's tight stop; placing it at the first mark", self.name, tid)
            self._protect_waiting[tid] = (stop_pct, reason)
            return
        sl = trailing_stop(t.side, mark, stop_pct, self.cfg.rules)
        if t.side.sign * (sl - t.sl) <= 0:
            log.info("%s: tranche %s keeps its tighter stop %s (protect asked %s)", self.name, t.id, t.sl, sl)
            return
        self._move_stop(t, replace(t, sl=sl), f"protect ({reason})", "protect")

    def _trim(self, msg: TrimTranche) -> None:
        """Close ``msg.qty`` of a tranche (rounded down to the step), keep the rest: decided and persisted in the
        tranche (``_trim_marker``), its TP cancelled (the SL keeps resting, as for a ladder level), then closed
        through the exit policy's close; each fill is booked as a partial close and the rest re-protected."""
        t = self.tranches.get(msg.tranche_id)
        if t is None:
            log.warning("%s: trim of tranche %s ignored (not held)", self.name, msg.tranche_id)
            return
        held = _trim_of(t.closing)
        if t.closing and held is None:
            log.warning("%s: trim of tranche %s ignored (closing: %s)", self.name, t.id, t.closing)
            return
        qty = round_down(min(msg.qty + (held[0] if held else 0), t.qty), self.cfg.rules.step_size)
        if qty <= 0:
            log.warning("%s: trim of %s of tranche %s is under one step; nothing to close", self.name, msg.qty, t.id)
            return
        if qty >= t.qty:
            self._start_close(t, msg.reason)
            return
        t = replace(t, closing=_trim_marker(qty, msg.reason))
        self.tranches[t.id] = t
        self.book.discard(t.id)
        changes = Changes(
            tranches=[t], events=[self._event("trim_started", t, qty=qty, reason=msg.reason, mark=self.mark)]
        )
        tp = [o for o in self._orders_of(t.id) if o.purpose is Purpose.TP]
        self._cancel(tp, Priority.EXIT, changes)  # a TP filling beside the close would close twice
        self._persist(changes)
        log.info("%s: trimming %s of tranche %s (%s)", self.name, qty, t.id, msg.reason, extra={"tranche": t.id})
        if not tp:
            self._continue_close(t)

    # --- order updates from the user stream ----------------------------------------------------------------

    def _on_order_update(self, u: OrderUpdate) -> None:
        if u.is_fill:
            self._last_change_at = self.links.clock()
        if u.client_id in self._entries:
            price = u.last_price if u.exec_type == "TRADE" else u.avg_price
            self._on_operator_entry(u.client_id, u.status, u.filled_qty, price)
            return
        if self.stopped:
            return
        if u.client_id in self.orders:
            price = u.last_price if u.exec_type == "TRADE" else u.avg_price
            self._observe(u.client_id, u.status, u.filled_qty, price, u.order_id, fee=self._fee(u))
            return
        own = parse_client_order_id(self.cfg.prefix, u.client_id)
        if own is not None and own[1] is Purpose.ENTRY:
            return  # an operator entry already settled (its fills were applied from the placement answer)
        if own is not None:
            if u.is_fill and (fee := self._fee(u)):
                self._book_late_fee(own[0], fee)  # its answer closed the tranche before the stream told the fee
            # One of ours we no longer track: a leftover of a closed tranche. Never let it act on the position.
            if not u.status.is_final and self._known_final(u.client_id):
                return  # a late "NEW" of an order whose end we already saw (the placement answer came first)
            if not u.status.is_final:
                log.warning("%s: cancelling orphan order %s", self.name, u.client_id)
                self._send(CancelOrders(self.cfg.symbol, (u.client_id,), self.links.self_send, Priority.EXIT))
            elif u.is_fill and not self._already_counted(u):
                log.warning("%s: fill of untracked order %s; reconciling", self.name, u.client_id)
                self._confirm_at = self.links.clock()
            return
        if not u.is_fill:
            return
        if u.forced is not None:  # the venue's liquidation or auto-deleveraging
            self._on_external_reduction(u.last_qty, source=u.client_id, price=u.last_price, reason=ExitReason(u.forced))
            return
        if (
            self._settled_through is not None
            and u.time <= self._settled_through
            and self.links.clock() - self._settled_through <= self.cfg.late_update_window
        ):
            # A late update of a fill that the last confirmed gap already adopted or shrunk: counted once.
            log.warning(
                "%s: late fill %s of %s at %s is already in the position read at %s; not counted again",
                self.name,
                u.client_id,
                u.last_qty,
                u.time,
                self._settled_through,
            )
            return
        if u.side == self.cfg.side.opening_order_side and not u.reduce_only:
            self._on_entry_fill(u.last_qty, u.last_price, source=u.client_id, at=u.time)
        else:
            self._on_external_reduction(u.last_qty, source=u.client_id, price=u.last_price)

    def _fee(self, u: OrderUpdate) -> Decimal:
        """The fee of an update's fill in the quote currency (what PnL is in); 0 for none or another asset."""
        if not u.is_fill or not u.commission:
            return Decimal(0)
        if u.commission_asset and not u.symbol.endswith(u.commission_asset):
            log.warning(
                "%s: fee %s %s of %s is not in the quote currency; not counted in the tranche's fees",
                self.name,
                u.commission,
                u.commission_asset,
                u.client_id,
            )
            return Decimal(0)
        return u.commission

    def _book_late_fee(self, tranche_id: int, fee: Decimal) -> None:
        """A fee reported after the fill it belongs to was applied: onto the tranche, open or closed."""
        changes = Changes(events=[replace(self._event("fee", None, fee=fee), tranche_id=tranche_id)])
        self._add_fee(tranche_id, fee, changes)
        self._persist(changes)

    def _add_fee(self, tranche_id: int, fee: Decimal, changes: Changes) -> None:
        tid = self._merged_into.get(tranche_id, tranche_id)
        t = self.tranches.get(tid)
        if t is None:
            changes.late_fees.append((tid, fee))
            return
        t = replace(t, fees=t.fees + fee)
        self.tranches[tid] = t
        changes.tranches.append(t)

    def _already_counted(self, u: OrderUpdate) -> bool:
        """A fill of one of our finished orders that its placement answer already reported (no read needed)."""
        rec = self.store.order(u.client_id)
        return rec is not None and rec.state is LocalState.DONE and rec.filled_qty >= u.filled_qty

    def _known_final(self, cid: str) -> bool:
        rec = self.store.order(cid)
        return (
            rec is not None
            and rec.state is LocalState.DONE
            and rec.final_status is not None
            and rec.final_status is not OrderStatus.CANCELED
        )

    # --- entries ------------------------------------------------------------------------------------------

    def _open_entry(self, msg: OpenEntry) -> None:
        """Decide (persist the entry and the risk its tranche will get), then send the entry order."""
        c = self.cfg
        e = PendingEntry(msg.entry.client_id, msg.tranche_id, c.venue, c.symbol, c.side, msg.entry.qty, msg.risk)
        self.store.add_entry(e)
        self._entries[e.client_id] = e
        if msg.reply_to is not None:
            self._entry_replies[e.client_id] = msg.reply_to
        self.stopped = False
        log.info("%s: operator entry %s for %s", self.name, e.client_id, e.qty)
        self._send(PlaceOrders((msg.entry,), self.links.self_send, Priority.PROTECT, since=self.links.clock()))

    def _on_operator_entry(self, cid: str, status: OrderStatus, filled: Decimal, price: Decimal) -> None:
        """A fill of an operator entry grows its own tranche, protected at the entry's risk.

        ``filled`` is cumulative (placement answers and stream updates may both report the same fill): only
        what exceeds the tranche's quantity so far is new.
        """
        e = self._entries[cid]
        held_qty = self.tranches[e.tranche_id].qty if e.tranche_id in self.tranches else Decimal(0)
        fill_qty = filled - self._entry_seen.get(cid, held_qty)
        if fill_qty > 0:
            self._entry_seen[cid] = filled
            held = self.tranches.get(e.tranche_id)
            c = self.cfg
            if held is None:
                index = max((t.index for t in self.tranches.values()), default=-1) + 1
                t = new_tranche(
                    id=e.tranche_id,
                    venue=c.venue,
                    symbol=c.symbol,
                    side=c.side,
                    index=index,
                    qty=fill_qty,
                    price=price,
                    now=self.links.clock(),
                    risk=e.risk,
                    rules=c.rules,
                )
                kind = NoticeKind.TRANCHE_OPENED
            else:
                t = extend_tranche(held, qty=fill_qty, price=price, risk=e.risk, rules=c.rules)
                kind = NoticeKind.TRANCHE_EXTENDED
            self._apply_decision(
                EntryDecision(changed=(t,)),
                events=[
                    self._event(
                        kind, t, qty=fill_qty, price=price, source=cid, entry=t.entry, total_qty=t.qty, tp=t.tp, sl=t.sl
                    )
                ],
            )
            self._notice(kind, t, f"tranche {t.id} {t.qty} @ {self._shown(t.entry)} TP {t.tp} SL {t.sl}")
        if status.is_final:
            self._end_entry(cid, status)

    def _end_entry(self, cid: str, status: OrderStatus, error: str | None = None) -> None:
        e = self._entries.pop(cid)
        self._entry_seen.pop(cid, None)
        self._persist(Changes(entries_ended=[(cid, status.value)]))
        t = self.tranches.get(e.tranche_id)
        if t is None and error is None:
            error = f"entry {cid} ended {status.value} without a fill"
        self._act(functools.partial(_reply, self._entry_replies.pop(cid, None), EntryOutcome(t, error)))

    def _stop_monitoring(self, msg: StopMonitoring) -> None:
        """Forget every tranche without closing the position; posmon's resting orders for them are cancelled."""
        now = self.links.clock()
        changes = Changes(events=[self._event("monitoring_stopped", None, tranches=sorted(self.tranches))])
        stopped = sorted(self.tranches)
        for tid in stopped:
            t = self.tranches.pop(tid)
            self.book.discard(tid)
            changes.closed.append((tid, ExitReason.UNMONITORED, now))
            changes.tranches.append(t)
        self._cancel(
            [o for o in self.orders.values() if o.purpose is not Purpose.ENTRY], Priority.HOUSEKEEPING, changes
        )
        self._persist(changes)
        self.stopped = True
        self._pending_diff = None
        self._level_left.clear()
        log.warning(
            "%s: monitoring stopped by the operator; %d tranches forgotten, position left open", self.name, len(stopped)
        )
        self._act(functools.partial(_reply, msg.reply_to, stopped))

    def _on_entry_fill(self, qty: Decimal, price: Decimal, *, source: str, at: float | None = None) -> None:
        """``at``: when the fill happened (the venue's time), so the oldest exposure is protected first."""
        c = self.cfg
        live = [t for t in self.tranches.values() if not t.closing]
        decision = apply_entry_fill(
            live,
            qty=qty,
            price=price,
            now=self.links.clock(),
            risk=c.risk,
            rules=c.rules,
            new_id=self.store.allocate_tranche_id(),
            venue=c.venue,
            symbol=c.symbol,
            side=c.side,
        )
        if self.links.risk is not None and self._breaches_limit(qty, price, decision, source=source, at=at):
            return
        kinds = {
            t.id: (NoticeKind.TRANCHE_OPENED if t.id not in self.tranches else NoticeKind.TRANCHE_EXTENDED)
            for t in decision.changed
        }
        self._apply_decision(
            decision,
            since=at,
            events=[
                self._event(
                    kinds[t.id],
                    t,
                    qty=qty,
                    price=price,
                    source=source,
                    entry=t.entry,
                    total_qty=t.qty,
                    tp=t.tp,
                    sl=t.sl,
                )
                for t in decision.changed
            ],
        )
        for t in decision.changed:
            self._notice(kinds[t.id], t, f"tranche {t.id} {t.qty} @ {self._shown(t.entry)} TP {t.tp} SL {t.sl}")

    def _breaches_limit(
        self, qty: Decimal, price: Decimal, decision: EntryDecision, *, source: str, at: float | None
    ) -> bool:
        """A fill from elsewhere that breaks a risk limit is told to the operator; with ``close_breaching_fills``
        it becomes its own tranche, closed at once through the normal close (True: the fill is dealt with).

        Its own tranche, not the one it would have joined: only the fill's quantity is closed, never the older
        exposure that kept inside the limits.
        """
        guard, c = self.links.risk, self.cfg
        assert guard is not None
        after = {t.id: t for t in self.tranches.values()}
        after.update((t.id, t) for t in decision.changed)
        for t in decision.removed:
            after.pop(t.id, None)
        entry = growth(
            c.symbol,
            c.side,
            qty,
            price,
            ((t.qty, t.entry, t.sl) for t in self.tranches.values()),
            ((t.qty, t.entry, t.sl) for t in after.values()),
        )
        breach = guard.check_fill(entry)
        if breach is None:
            return False
        close = guard.closes_breaching_fills(c.symbol)
        self.links.metrics.inc("risk_limit_breaches", venue=c.venue, limit=breach.name)
        log.warning("%s: fill %s of %s @ %s from outside posmon breaks %s", self.name, source, qty, price, breach.text)
        data: dict[str, Any] = {
            "limit": breach.name,
            "limit_value": str(breach.limit),
            "value": str(breach.value),
            "source": source,
        }
        if not close:
            self._notice(
                NoticeKind.RISK_LIMIT,
                None,
                f"a fill of {qty} @ {price} from outside posmon breaks {breach.text}; left open "
                "(close_breaching_fills is off)",
                needs_human=True,
                **data,
            )
            return False
        t = new_tranche(
            id=self.store.allocate_tranche_id(),
            venue=c.venue,
            symbol=c.symbol,
            side=c.side,
            index=max((t.index for t in self.tranches.values()), default=-1) + 1,
            qty=qty,
            price=price,
            now=self.links.clock(),
            risk=c.risk,
            rules=c.rules,
        )
        self.tranches[t.id] = t
        self._persist(
            Changes(
                tranches=[t],
                events=[self._event(NoticeKind.TRANCHE_OPENED, t, qty=qty, price=price, entry=t.entry, **data)],
            )
        )
        self._notice(
            NoticeKind.RISK_LIMIT,
            t,
            f"a fill of {qty} @ {price} from outside posmon breaks {breach.text}; closing it at market "
            f"(tranche {t.id})",
            **data,
        )
        self._start_close(t, ExitReason.RISK_LIMIT)
        return True

    def _on_external_reduction(
        self, qty: Decimal, *, source: str, price: Decimal | None, reason: ExitReason = ExitReason.EXTERNAL
    ) -> None:
        """The position shrank outside posmon: newest tranches first give up the quantity (``apply_reduction``).

        Their TP/SL are resized (placed anew, the old ones cancelled) or cancelled with the tranche, the realized
        PnL is recorded at ``price`` (the fill's, or the mark's when only a read showed the change) and the
        operator is told; a liquidation or auto-deleveraging (``reason``) needs a human.
        """
        if not self.tranches:
            return
        before = dict(self.tranches)
        decision = apply_reduction(list(before.values()), qty, self.cfg.rules)
        if price is not None:

            def booked(t: Tranche, rest: Decimal) -> Tranche:
                # The quantity the tranche gave up is recorded as an exit at ``price`` (no fee: not our order).
                closed = booked_exit(before[t.id], before[t.id].qty - rest, price)
                return replace(
                    t, realized_pnl=closed.realized_pnl, exit_qty=closed.exit_qty, exit_value=closed.exit_value
                )

            decision = EntryDecision(
                changed=tuple(booked(t, t.qty) for t in decision.changed),
                removed=tuple(booked(t, Decimal(0)) for t in decision.removed),
            )
        forced = reason in (ExitReason.LIQUIDATION, ExitReason.ADL)
        log.log(
            logging.ERROR if forced else logging.INFO,
            "%s: %s closed %s outside posmon (%s); shrinking tranches",
            self.name,
            source,
            qty,
            reason,
        )
        if forced:
            self.links.metrics.inc("forced_exits", venue=self.cfg.venue, kind=reason)
        self._apply_decision(
            decision,
            removed_reason=reason,
            events=[
                self._event(
                    "external_reduction",
                    None,
                    qty=qty,
                    source=source,
                    reason=reason,
                    price=price,
                    tranches=[t.id for t in (*decision.changed, *decision.removed)],
                )
            ],
        )
        for t in decision.changed:  # a tranche that kept part: a leg event with what it lost (hedge pairs)
            if (gone := before[t.id].qty - t.qty) > 0:
                self._partial_notice(t, gone, t.realized_pnl - before[t.id].realized_pnl, reason)
        if decision.changed:
            shown = ", ".join(f"{t.id}: {before[t.id].qty} -> {t.qty}" for t in decision.changed)
            self._notice(
                NoticeKind.POSITION_SHRUNK,
                decision.changed[0],
                f"{reason}: position reduced by {qty} outside posmon; tranches resized ({shown})",
                needs_human=forced,
                reason=reason,
            )

    def _apply_decision(
        self,
        decision: EntryDecision,
        *,
        events: list[Event],
        removed_reason: ExitReason = ExitReason.MERGED,
        since: float | None = None,
    ) -> None:
        """Persist changed tranches with fresh TP/SL (placed before the old ones go), close removed ones."""
        changes = Changes(events=events)
        to_place: list[tuple[OrderRecord, ...]] = []
        now = self.links.clock()
        for t in decision.changed:
            if t.closing:  # a close is under way: only the quantity changes
                self.tranches[t.id] = t
                changes.tranches.append(t)
                continue
            t, legs = self.exits.protection(t)
            self.tranches[t.id] = t
            self.book.add(t)
            changes.tranches.append(t)
            if legs:
                changes.orders += legs
                to_place.append(legs)
        survivor = decision.changed[0].id if decision.changed else None
        for t in decision.removed:
            self.tranches.pop(t.id, None)
            self.book.discard(t.id)
            changes.closed.append((t.id, removed_reason, now))
            if removed_reason is not ExitReason.MERGED:
                changes.tranches.append(t)  # its realized PnL
                self._notice(
                    NoticeKind.EXIT,
                    t,
                    f"tranche {t.id} ({t.qty}) was closed outside posmon by "
                    f"{removed_reason}, realized PnL {t.realized_pnl:.4f}",
                    reason=removed_reason,
                    pnl=str(t.realized_pnl),
                    needs_human=removed_reason in (ExitReason.LIQUIDATION, ExitReason.ADL),
                )
            if survivor is not None and removed_reason is ExitReason.MERGED and self.exits.legs:
                self._merged_into[t.id] = survivor  # its orders go once the survivor's legs are live
            else:
                self._cancel(self._orders_of(t.id), Priority.EXIT, changes)
        self._persist(changes)
        for legs in to_place:
            for o in legs:
                self._remember(o)
            self._send(
                PlaceOrders(
                    tuple(o.request for o in legs),
                    self.links.self_send,
                    Priority.PROTECT,
                    since=self.links.clock() if since is None else since,
                )
            )

    # --- what the exchange says about our orders --------------------------------------------------------

    def _on_result(self, r: OrderResult) -> None:
        if r.action is Action.PLACE:
            self._awaiting.discard(r.client_id)
        if r.state is not None and r.state.filled_qty > 0:
            self._last_change_at = self.links.clock()
        if r.client_id in self._entries:
            if r.state is not None:
                self._on_operator_entry(r.client_id, r.state.status, r.state.filled_qty, r.state.avg_price)
            elif r.error is not None:
                self._end_entry(r.client_id, OrderStatus.REJECTED, error=f"entry refused: {r.error}")
            elif r.unknown:  # the stream may still report it; if not, a reconcile settles it
                self._confirm_at = self.links.clock() + self.cfg.retry_seconds
            return
        rec = self.orders.get(r.client_id)
        if rec is None:
            self._on_untracked_result(r)
            return
        if r.sent is not None and r.sent != rec.request:
            # The gateway re-rounded the order onto a changed grid: remember what is really on the exchange.
            old, rec = rec, replace(rec, request=r.sent)
            changes = Changes()
            self._track(rec, changes)
            self._held_price_follows(old, rec, changes)
            self._persist(changes)
        if r.state is not None:
            s = r.state
            self._observe(r.client_id, s.status, s.filled_qty, s.avg_price, s.order_id)
        elif r.error is not None:
            self._on_error(rec, r.action, r.error)
        else:
            log.error("%s: %s of %s has an unknown outcome; will reconcile", self.name, r.action, r.client_id)
            self._retry_at = self.links.clock() + self.cfg.retry_seconds
            self._confirm_at = self.links.clock() + self.cfg.retry_seconds

    def _held_price_follows(self, old: OrderRecord, rec: OrderRecord, changes: Changes) -> None:
        """A re-rounded leg of a tranche with a plan, or a re-rounded stop: the tranche holds the price that rests
        (those legs are checked by price too, and the old grid's price would be refused again)."""
        t = self.tranches.get(rec.tranche_id)
        if t is None or t.closing or not (t.plan or rec.purpose is Purpose.SL):
            return
        was, now = old.request, rec.request
        if rec.purpose is Purpose.TP and was.price == t.tp and now.price is not None and now.price != t.tp:
            t = replace(t, tp=now.price)
        elif rec.purpose is Purpose.SL and was.stop_price == t.sl and now.stop_price not in (None, t.sl):
            t = replace(t, sl=now.stop_price)
        else:
            return
        self.tranches[t.id] = t
        self.book.add(t)
        changes.tranches.append(t)

    def _on_untracked_result(self, r: OrderResult) -> None:
        """A placement answered for an order no longer tracked (written off as never placed meanwhile).

        It rests on the exchange although posmon decided without it: cancel it, and re-read the position if
        it traded.
        """
        if r.action is not Action.PLACE or r.state is None or r.state.status.is_final:
            if r.state is not None and r.state.filled_qty > 0:
                self._confirm_at = self.links.clock()
            return
        if parse_client_order_id(self.cfg.prefix, r.client_id) is None or self._known_final(r.client_id):
            return  # not ours, or a late "NEW" of an order whose end the stream already reported
        log.warning("%s: %s was placed after being written off; cancelling it", self.name, r.client_id)
        self.links.metrics.inc("orphans_cancelled", venue=self.cfg.venue)
        self._send(CancelOrders(self.cfg.symbol, (r.client_id,), self.links.self_send, Priority.EXIT))
        if r.state.filled_qty > 0:
            self._confirm_at = self.links.clock()

    def _observe(
        self,
        cid: str,
        status: OrderStatus,
        filled: Decimal,
        price: Decimal,
        order_id: str,
        *,
        fee: Decimal = Decimal(0),
    ) -> None:
        """Fold an order's exchange state into ours; fills are applied once, by their cumulative quantity.

        ``fee``: what the venue charged for the fill this update reports (stream updates only); booked with the
        fill, or alone when the placement answer already applied the fill's quantity.
        """
        old = self.orders.get(cid)
        if old is None:
            return
        changes = Changes()
        delta = filled - old.filled_qty
        if status.is_final:
            new_state = LocalState.DONE
        elif old.state is LocalState.PENDING:
            new_state = LocalState.LIVE
        else:
            new_state = old.state
        rec = replace(
            old,
            state=new_state,
            filled_qty=max(filled, old.filled_qty),
            exchange_id=order_id,
            final_status=status if status.is_final else None,
        )
        if rec == old:
            if fee:
                self._book_late_fee(old.tranche_id, fee)
            return  # nothing new (a restart's reconcile re-reads every live order): no write, no follow-up
        self._track(rec, changes)
        if delta > 0:
            self._apply_own_fill(rec, delta, price, changes, fee)
        elif fee:
            self._add_fee(rec.tranche_id, fee, changes)
        self._persist(changes)
        if delta > 0:
            # A partial fill leaves legs sized for the old quantity: resize them (new ones first, then the
            # old ones go), so a stop never covers more or less than is held.
            self._ensure_protected()
        self._after_change(rec, ended_unfilled=status in (OrderStatus.CANCELED, OrderStatus.EXPIRED))

    def _track(self, rec: OrderRecord, changes: Changes) -> None:
        changes.orders.append(rec)
        if rec.active:
            self._remember(rec)
        else:
            self._forget(rec)

    def _remember(self, rec: OrderRecord) -> None:
        cid, tid = rec.client_id, rec.tranche_id
        self.orders[cid] = rec
        mine = self._orders_by_tranche.get(tid, ())
        for i, o in enumerate(mine):
            if o.client_id == cid:  # a newer state of a known order keeps its place
                self._orders_by_tranche[tid] = (*mine[:i], rec, *mine[i + 1 :])
                return
        self._orders_by_tranche[tid] = (*mine, rec)

    def _forget(self, rec: OrderRecord) -> None:
        cid, tid = rec.client_id, rec.tranche_id
        self.orders.pop(cid, None)
        mine = self._orders_by_tranche.get(tid)
        if mine is not None:
            rest = tuple(o for o in mine if o.client_id != cid)
            if rest:
                self._orders_by_tranche[tid] = rest
            else:
                del self._orders_by_tranche[tid]
                self._merged_into.pop(tid, None)  # a merged-away tranche is done once its orders are

    def _apply_own_fill(
        self, rec: OrderRecord, qty: Decimal, price: Decimal, changes: Changes, fee: Decimal = Decimal(0)
    ) -> None:
        tid = self._merged_into.get(rec.tranche_id, rec.tranche_id)
        t = self.tranches.get(tid)
        if t is None:
            # Both legs of one tranche filled (possible on venues without native OCO, e.g. while the daemon was
            # down): the second leg ate other tranches' quantity. The reconcile shrinks and re-protects them.
            log.error(
                "%s: fill of %s (%s) for tranche %s already closed; reconciling",
                self.name,
                rec.client_id,
                qty,
                rec.tranche_id,
            )
            self._notice(
                NoticeKind.DOUBLE_EXIT,
                None,
                f"{rec.purpose.name} {rec.client_id} filled {qty} after its tranche {rec.tranche_id} had closed: "
                "other tranches' quantity was closed; re-protecting the rest",
                needs_human=True,
                tranche_id=rec.tranche_id,
            )
            self._confirm_at = self.links.clock()
            if fee:
                changes.late_fees.append((rec.tranche_id, fee))
            return
        qty = min(qty, t.qty)
        pnl = realized_pnl(t.side, t.entry, price, qty)
        before = t
        t = booked_exit(t, qty, price, fee)  # closed quantity, exit price and fee kept for the history
        trim = _trim_of(before.closing)
        reason = (trim[1] if trim else t.closing) or {Purpose.TP: ExitReason.TP, Purpose.SL: ExitReason.SL}.get(
            rec.purpose, ExitReason.CLOSE
        )
        if rec.purpose is Purpose.SL and self._partial_closing(before):
            reason = ExitReason.SL  # the stop kept resting while a level or trim closed, and fired first
        changes.events.append(
            self._event(
                "fill", t, client_id=rec.client_id, purpose=rec.purpose.value, qty=qty, price=price, pnl=pnl, fee=fee
            )
        )
        if t.qty <= 0:
            self._finish(t, reason, changes)
            return
        if trim is not None and rec.purpose is Purpose.CLOSE:
            to_trim = trim[0] - qty
            self.links.metrics.inc("partial_closes", venue=self.cfg.venue)
            changes.events.append(
                self._event(
                    "partial_close",
                    t,
                    qty=qty,
                    price=price,
                    pnl=pnl,
                    left=t.qty,
                    reason=trim[1],
                    trim_left=max(to_trim, Decimal(0)),
                    client_id=rec.client_id,
                )
            )
            self._partial_notice(t, qty, pnl, trim[1])
            t = replace(t, closing=_trim_marker(to_trim, trim[1]) if to_trim > 0 else None)
            if to_trim <= 0:  # trimmed: held again at its smaller size, re-protected by the caller
                self._close_hold.pop(t.id, None)
                self.exits.forget(t.id)
                self._mark_again = True
        elif self._fills_level(before, rec):
            # A ladder level before the last: a partial close of the tranche, journaled with its PnL.
            left = self._level_left.get(t.id)
            left = rec.request.qty - rec.filled_qty if left is None else left - qty
            done = left <= 0
            self.links.metrics.inc("partial_closes", venue=self.cfg.venue)
            changes.events.append(
                self._event(
                    "partial_close",
                    t,
                    level=before.level + 1,
                    qty=qty,
                    price=price,
                    pnl=pnl,
                    left=t.qty,
                    level_done=done,
                    client_id=rec.client_id,
                )
            )
            self._partial_notice(t, qty, pnl, ExitReason.TP, level=before.level + 1)
            if done:
                t = self._advance_level(t, changes)
            elif self._level_closing(before):
                self._level_left[t.id] = left
        self.tranches[t.id] = t
        changes.tranches.append(t)
        if not t.closing:
            self.book.add(t)

    def _partial_notice(self, t: Tranche, qty: Decimal, pnl: Decimal, reason: str, **data: Any) -> None:
        """Part of ``t`` closed, the rest held: the operator's notice and a hedge pair's leg event (the pair
        coordinator reads it with ``leg_exit_from_notice``: its imbalance check sees what the leg lost)."""
        self._notice(
            NoticeKind.PARTIAL_EXIT,
            t,
            f"tranche {t.id}: {qty} closed by {reason}, {t.qty} held; realized PnL {pnl:.4f}",
            reason=reason,
            qty=str(qty),
            left=str(t.qty),
            pnl=str(pnl),
            **data,
        )

    def _partial_closing(self, t: Tranche) -> bool:
        """A close under way closes only part of ``t`` (a ladder level or a trim): its SL keeps resting."""
        return _trim_of(t.closing) is not None or self._level_closing(t)

    def _level_closing(self, t: Tranche) -> bool:
        """A close under way closes only ``t``'s current ladder level (the mark ran through its TP)."""
        return t.id in self._level_left or (
            t.closing == ExitReason.TP and self.exits.trigger_qty(t, ExitReason.TP) < t.qty
        )

    def _fills_level(self, t: Tranche, rec: OrderRecord) -> bool:
        """A fill of ``rec`` is a fill of ``t``'s current ladder level before the last: its TP leg (at the level's
        price), or the close of the level under way."""
        if not t.plan.tp_levels or self.exits.trigger_qty(t, ExitReason.TP) >= t.qty:
            return False
        if t.closing and not self._level_closing(t):
            return False  # a whole close under way: the rest goes at market anyway
        if rec.purpose is Purpose.TP:
            return rec.request.price == t.tp
        return rec.purpose is Purpose.CLOSE and t.closing is not None

    def _advance_level(self, t: Tranche, changes: Changes) -> Tranche:
        """``t``'s level filled: held again, at its next level (its TP), its stop re-derived (break-even may be
        earned now); the caller's re-protection places the next TP and the resized SL before the old ones go."""
        old_sl = t.sl
        t = after_level_filled(replace(t, closing=None), t.sl, self.cfg.rules)
        self._level_left.pop(t.id, None)
        self._close_hold.pop(t.id, None)
        self.exits.forget(t.id)
        self._mark_again = True
        changes.events.append(self._event("level_filled", t, level=t.level, qty=t.qty, tp=t.tp, sl=t.sl))
        if t.sl != old_sl:
            self.links.metrics.inc("stop_moves", venue=self.cfg.venue, reason="breakeven")
            changes.events.append(
                self._event("stop_moved", t, old=old_sl, new=t.sl, best_mark=t.best_mark, why="break-even")
            )
        log.info(
            "%s: ladder level %d of tranche %s filled; %s left, TP %s SL %s",
            self.name,
            t.level,
            t.id,
            t.qty,
            t.tp,
            t.sl,
            extra={"tranche": t.id},
        )
        return t

    def _finish(self, t: Tranche, reason: str, changes: Changes) -> None:
        """The tranche is flat: record it, cancel whatever still rests for it (siblings first, urgently)."""
        now = self.links.clock()
        self._close_hold.pop(t.id, None)
        self._level_left.pop(t.id, None)
        self.exits.forget(t.id)
        for purpose in (Purpose.TP, Purpose.SL):
            self._rejections.pop((t.id, purpose), None)
        self.tranches.pop(t.id, None)
        self.book.discard(t.id)
        changes.tranches.append(t)
        changes.closed.append((t.id, reason, now))
        changes.events.append(
            self._event(
                "tranche_closed",
                t,
                reason=reason,
                pnl=t.realized_pnl,
                entry=t.entry,
                exit_price=t.exit_price,
                closed_qty=t.exit_qty,
                fees=t.fees,
            )
        )
        self._cancel(self._orders_of(t.id), Priority.EXIT, changes)
        self.links.metrics.inc("tranches_closed", venue=self.cfg.venue, reason=reason)
        self._notice(
            NoticeKind.EXIT,
            t,
            f"tranche {t.id} closed by {reason}, realized PnL {t.realized_pnl:.4f}",
            reason=reason,
            pnl=str(t.realized_pnl),
        )

    def _after_change(self, rec: OrderRecord, *, ended_unfilled: bool) -> None:
        """Follow-ups once an order's state moved: retire stale orders, continue closes, restore lost protection."""
        t = self.tranches.get(self._merged_into.get(rec.tranche_id, rec.tranche_id))
        if t is None:
            return
        if t.closing:
            if rec.purpose is Purpose.CLOSE and rec.state is LocalState.DONE:
                self._close_fell_short(t, f"close order {rec.client_id} ended {rec.final_status}")
            self._continue_close(t)
            return
        if rec.state is LocalState.LIVE:
            self._cancel_stale(t)
        elif (
            rec.state is LocalState.DONE
            and rec.purpose in (Purpose.TP, Purpose.SL)
            and ended_unfilled
            and rec.final_status is not OrderStatus.FILLED
            and self._is_current(rec, t)
        ):
            log.warning(
                "%s: %s of tranche %s was cancelled on the exchange; re-protecting",
                self.name,
                rec.client_id,
                t.id,
                extra={"tranche": t.id},
            )
            self._ensure_protected()

    def _on_error(self, rec: OrderRecord, action: Action, err: VenueError) -> None:
        t = self.tranches.get(self._merged_into.get(rec.tranche_id, rec.tranche_id))
        changes = Changes(
            events=[
                self._event("order_error", t, client_id=rec.client_id, action=action.value, code=err.code, msg=err.msg)
            ]
        )
        if action is Action.CANCEL:
            if isinstance(err, OrderNotFound):  # never reached the exchange: nothing to cancel
                self._track(replace(rec, state=LocalState.DONE, final_status=OrderStatus.CANCELED), changes)
                self._persist(changes)
                if t is not None and t.closing:
                    self._continue_close(t)
                return
            self._persist(changes)
            self._retry_at = self.links.clock() + self.cfg.retry_seconds
            return
        self._track(replace(rec, state=LocalState.DONE, final_status=OrderStatus.REJECTED), changes)
        self._persist(changes)
        self.links.metrics.inc("orders_rejected", venue=self.cfg.venue, purpose=rec.purpose.value)
        if t is None:
            return
        if rec.purpose is Purpose.SL and isinstance(err, WouldTriggerImmediately) and not t.closing:
            log.warning(
                "%s: mark already through the stop of tranche %s; closing it", self.name, t.id, extra={"tranche": t.id}
            )
            self._start_close(t, ExitReason.SL)
            return
        if rec.purpose is Purpose.CLOSE:
            self._close_fell_short(t, f"close order {rec.client_id} rejected: {err}")
            return
        # A refusal is the venue's final word on that order (a price outside its filters, an invalid value):
        # retrying it every few seconds forever changes nothing. The operator is told once, then
        # protection_failure_action applies: "close" closes the tranche, "alert" retries after a doubling pause.
        key = (t.id, rec.purpose)
        n = self._rejections.get(key, (0, 0.0))[0] + 1
        self.links.metrics.inc("protection_failures", venue=self.cfg.venue)
        if n == 1:
            self._notice(
                NoticeKind.PROTECTION_FAILED,
                t,
                f"{rec.purpose.name} order {rec.client_id} of tranche {t.id} rejected: {err}",
                needs_human=True,
            )
        if self.cfg.protection_failure_action == "close" and not t.closing:
            self._start_close(t, ExitReason.PROTECTION_FAILED)
        else:
            pause = min(self.cfg.retry_seconds * 2 ** (n - 1), self.cfg.rejected_retry_max_seconds)
            log.error(
                "%s: %s of tranche %s refused %d times (%s); next try in %.0fs",
                self.name,
                rec.purpose.name,
                t.id,
                n,
                err,
                pause,
                extra={"tranche": t.id},
            )
            retry = self.links.clock() + pause
            self._rejections[key] = (n, retry)
            self._retry_at = retry if self._retry_at is None else min(self._retry_at, retry)

    # --- protection ---------------------------------------------------------------------------------------

    def _orders_of(self, tranche_id: int) -> list[OrderRecord]:
        return list(self._orders_by_tranche.get(tranche_id, ()))

    def _current(self, t: Tranche, purpose: Purpose) -> OrderRecord | None:
        """The newest active order of a purpose: the one that protects the tranche now."""
        mine = [o for o in self._orders_of(t.id) if o.purpose is purpose and o.state is not LocalState.CANCELING]
        if len(mine) <= 1:  # the usual case: no client id to parse
            return mine[0] if mine else None
        return max(mine, key=self._seq)

    def _seq(self, rec: OrderRecord) -> int:
        """Where an order of ours stands among its tranche's orders of one purpose (newer is higher)."""
        parsed = parse_client_order_id(self.cfg.prefix, rec.client_id)
        return parsed[2] if parsed is not None else -1

    def _is_current(self, rec: OrderRecord, t: Tranche) -> bool:
        cur = self._current(t, rec.purpose)
        return cur is None or cur.client_id == rec.client_id

    def _cancel_stale(self, t: Tranche) -> None:
        """Once the current TP and SL are live, cancel older ones (and those of tranches merged into this one)."""
        tp, sl = self._current(t, Purpose.TP), self._current(t, Purpose.SL)
        if tp is None or sl is None or LocalState.PENDING in (tp.state, sl.state):
            return
        merged = [m for m, into in self._merged_into.items() if into == t.id]
        stale = [
            o
            for o in self._orders_of(t.id)
            if o.purpose in (Purpose.TP, Purpose.SL) and o.client_id not in (tp.client_id, sl.client_id)
        ]
        stale += [o for m in merged for o in self._orders_of(m)]
        stale = [o for o in stale if o.state is not LocalState.CANCELING]
        if stale:
            changes = Changes()
            self._cancel(stale, Priority.PROTECT, changes)
            self._persist(changes)

    def _ensure_protected(self) -> None:
        """Every held tranche is armed: its policy's legs rest for exactly its quantity (placed or on their way),
        its levels are watched, and no leg its policy does not want rests (it would fire natively)."""
        wanted = self.exits.legs
        targets = set(self._merged_into.values())
        for t in list(self.tranches.values()):
            if t.closing:
                self._continue_close(t)
                continue
            if t.id not in self.book:
                self.book.add(t)
            if t.id in targets or not self._armed(t, wanted):
                self._protect(t, wanted)

    def _armed(self, t: Tranche, wanted: tuple[Purpose, ...]) -> bool:
        """True when ``_protect`` would leave ``t`` alone: of its TP/SL orders not being cancelled, exactly one per
        wanted leg and none of another, each for its quantity and price (``ExitPolicy.leg_ok``). A restart's
        reconcile finds nearly every tranche so (100,000 of them at 100,000 tranches): one pass over its orders
        instead of five."""
        tp = sl = False
        for o in self._orders_by_tranche.get(t.id, ()):
            p = o.purpose
            if (p is not Purpose.TP and p is not Purpose.SL) or o.state is LocalState.CANCELING:
                continue
            if p is Purpose.TP:
                if tp:
                    return False
                tp = True
            elif sl:
                return False
            else:
                sl = True
            if p not in wanted or not self.exits.leg_ok(t, o):
                return False
        return tp + sl == len(wanted)

    def _protect(self, t: Tranche, wanted: tuple[Purpose, ...]) -> None:
        """Arm one held tranche: cancel legs its policy does not want, place the missing ones (or resized), and
        once its current legs are live cancel the older ones."""
        stray = [
            o
            for o in self._orders_of(t.id)
            if o.purpose in (Purpose.TP, Purpose.SL) and o.purpose not in wanted and o.state is not LocalState.CANCELING
        ]
        if stray:
            changes = Changes()
            self._cancel(stray, Priority.PROTECT, changes)
            self._persist(changes)
        if not wanted:
            return
        missing = []
        now = self.links.clock()
        for purpose in wanted:
            cur = self._current(t, purpose)
            if self._rejections.get((t.id, purpose), (0, now))[1] > now:
                continue  # refused by the venue: the next try waits for its pause
            if cur is None or not self.exits.leg_ok(t, cur):
                missing.append(purpose)
        if not missing:
            self._cancel_stale(t)
            return
        t2, legs = self.exits.protection(t)
        new = [o for o in legs if o.purpose in missing]
        self.tranches[t.id] = t2
        changes = Changes(
            tranches=[t2],
            orders=list(new),
            events=[self._event("protection_placed", t2, purposes=[p.name for p in missing])],
        )
        self._persist(changes)
        for o in new:
            self._remember(o)
        self._send(
            PlaceOrders(tuple(o.request for o in new), self.links.self_send, Priority.PROTECT, since=self.links.clock())
        )

    def _cancel(self, recs: Iterable[OrderRecord], priority: Priority, changes: Changes) -> None:
        """Mark orders CANCELING (persisted with ``changes``) and ask the gateway to cancel them."""
        ids = []
        for o in recs:
            if o.state is LocalState.DONE:
                continue
            self._track(replace(o, state=LocalState.CANCELING), changes)
            ids.append(o.client_id)
        if ids:
            self._send(CancelOrders(self.cfg.symbol, tuple(ids), self.links.self_send, priority, tick_at=self._tick_at))

    # --- exits --------------------------------------------------------------------------------------------

    def _start_close(self, t: Tranche, reason: str) -> None:
        """Close ``t`` at market once its resting legs are gone; a TP before the last ladder level closes only
        that level's share, and the SL keeps resting meanwhile: the rest stays protected, and should the stop
        fire during the close, reduce-only bounds the overlap to the level's share."""
        share = self.exits.trigger_qty(t, ExitReason.TP) if reason == ExitReason.TP and not t.closing else t.qty
        level = share < t.qty
        if level:
            # A level partly filled by its TP leg closes the rest of its share (that leg's remainder).
            tp = self._current(t, Purpose.TP)
            if tp is not None and tp.filled_qty > 0 and tp.request.price == t.tp:
                share = tp.request.qty - tp.filled_qty
            self._level_left[t.id] = share
        else:
            self._level_left.pop(t.id, None)
        t = replace(t, closing=reason)
        self.tranches[t.id] = t
        self.book.discard(t.id)
        changes = Changes(
            tranches=[t],
            events=[self._event("close_started", t, reason=reason, mark=self.mark, qty=share, level=t.level + 1)]
            if level
            else [self._event("close_started", t, reason=reason, mark=self.mark)],
        )
        cancel = (Purpose.TP,) if level else (Purpose.TP, Purpose.SL)
        legs = [o for o in self._orders_of(t.id) if o.purpose in cancel]
        # Cancel the resting legs first: a TP filling while a market close is in flight would close twice.
        self._cancel(legs, Priority.EXIT, changes)
        self._persist(changes)
        what = f"level {t.level + 1} ({share}) of tranche" if level else "tranche"
        log.info("%s: closing %s %s (%s) at mark %s", self.name, what, t.id, reason, self.mark, extra={"tranche": t.id})
        if not legs:
            self._continue_close(t)

    def _close_fell_short(self, t: Tranche, why: str) -> None:
        """A close order ended with the tranche still open: the exit policy says what follows.

        Re-sending the same close at once could loop (a reduce-only close against a position that is already
        gone expires every time): a policy either widens the bound at once or waits a growing pause and a
        reconcile; a human is told when it stops helping.
        """
        now = self.links.clock()
        short = self.exits.close_fell_short(t, now, why)
        n = self.exits.attempts(t.id)
        nxt = "" if short.next_bound_pct is None else f"; next close {short.next_bound_pct}% through the mark"
        log.warning(
            "%s: %s; tranche %s still holds %s (attempt %d)%s",
            self.name,
            why,
            t.id,
            t.qty,
            n,
            nxt,
            extra={"tranche": t.id},
        )
        if short.hold_until is not None:
            self._close_hold[t.id] = short.hold_until
        if short.reconcile:
            self._confirm_at = now
        if short.alert is not None:
            self._notice(NoticeKind.CLOSE_FAILED, t, short.alert, needs_human=True)
        if short.exhausted:
            self.links.metrics.inc("close_slippage_exhausted", venue=self.cfg.venue)

    def _continue_close(self, t: Tranche) -> None:
        """Once no TP/SL leg is left resting, close what remains at market (once at a time)."""
        mine = self._orders_of(t.id)
        trim = _trim_of(t.closing)
        level = trim is not None or self._level_closing(t)
        waits = (Purpose.TP,) if level else (Purpose.TP, Purpose.SL)  # a partial close leaves the SL resting
        if any(o.purpose in waits for o in mine):
            return
        if any(o.purpose is Purpose.CLOSE for o in mine):
            return
        hold = self._close_hold.get(t.id)
        if hold is not None and self.links.clock() < hold:
            self._retry_at = hold if self._retry_at is None else min(self._retry_at, hold)
            return
        qty = None
        if trim is not None:
            qty = min(trim[0], t.qty)
        elif level:
            qty = min(self._level_left.get(t.id) or self.exits.trigger_qty(t, ExitReason.TP), t.qty)
        close = self.exits.close(t, self.mark, qty)
        if close is None:  # it cannot be written yet (no price to bound it by): try again shortly
            hold = self.links.clock() + self.cfg.retry_seconds
            self._retry_at = hold if self._retry_at is None else min(self._retry_at, hold)
            return
        t, rec = close.tranche, close.record
        self.tranches[t.id] = t
        self._remember(rec)
        self._persist(
            Changes(
                tranches=[t],
                orders=[rec],
                events=[
                    self._event(
                        "close_sent", t, client_id=rec.client_id, qty=rec.request.qty, worst_price=rec.request.price
                    )
                ],
            )
        )
        self._send(
            PlaceOrders(
                (rec.request,),
                self.links.self_send,
                Priority.EXIT,
                since=self.links.clock(),
                rank=close.rank,
                tick_at=self._tick_at,
            )
        )

    # --- reconciliation -----------------------------------------------------------------------------------

    async def _ask(
        self, request: GatewayRequest, send: trio.MemorySendChannel[_T], answers: trio.MemoryReceiveChannel[_T]
    ) -> _T | None:
        """A gateway request whose answer (on ``answers``) a reconcile task waits for; None when none came within
        the timeout."""
        async with send, answers:
            await self.links.gateway.send(request)
            with trio.move_on_after(self.cfg.reply_timeout):
                return await answers.receive()
        return None

    async def _read_account(self, generation: int) -> None:
        send, answers = trio.open_memory_channel[AccountSnapshot](1)
        snap = await self._ask(FetchAccount(self.cfg.symbol, send), send, answers)
        self.links.self_send.send_nowait(_AccountRead(generation, snap))

    async def _look_up(self, generation: int, client_ids: tuple[str, ...]) -> None:
        send, answers = trio.open_memory_channel[OrderResults](1)
        answer = await self._ask(QueryOrders(self.cfg.symbol, client_ids, send), send, answers)
        self.links.self_send.send_nowait(_Lookups(generation, answer))

    def _request_reconcile(self, snapshot: AccountSnapshot | None = None, read_at: float | None = None) -> None:
        """Make the store and the exchange agree: own orders' fates, orphans, position size, protection.

        The reads run beside the actor's loop and their answers come back as messages, so ticks, exits and
        commands never wait behind them. Requests while one is under way coalesce into one more afterwards
        (a snapshot offered meanwhile is kept for it, so a sweep costs no extra read).
        """
        self._sweep_deadline = None  # a restored actor's start-up reconcile is this one
        if self._recon is not None:
            if self._recon_again is None or snapshot is not None:
                self._recon_again = (snapshot, read_at)
            return
        self._recon_generation += 1
        gen = self._recon_generation
        if snapshot is None:
            read_at = self.links.clock()
        self._recon = _Reconciliation(gen, frozenset((*self.orders, *self._entries)), read_at)
        if snapshot is not None:
            self._on_account_read(_AccountRead(gen, snapshot))
        else:
            assert self._nursery is not None
            self._nursery.start_soon(self._read_account, gen)

    def _reconcile_failed(self, why: str) -> None:
        """No answer (the gateway is pacing a burst, the venue is down): try again later, act meanwhile."""
        log.warning("%s: reconcile failed (%s); retrying in %.0fs", self.name, why, self.cfg.retry_seconds)
        self._recon = None
        self._confirm_at = self.links.clock() + self.cfg.retry_seconds
        self._become_ready()

    def _on_account_read(self, msg: _AccountRead) -> None:
        r = self._recon
        if r is None or msg.generation != r.generation:
            return  # the answer of a reconcile given up on
        snap = msg.snapshot
        if snap is None or snap.error is not None:
            self._reconcile_failed("no answer" if snap is None else str(snap.error))
            return
        r.snapshot = snap
        still_open = {o.client_id: o for o in snap.open_orders}
        # What to look up is fixed before anything is settled: settling may place orders (a resized leg),
        # and an order whose placement is still on its way must never be looked up and written off.
        missing = tuple(c for c in sorted(r.known) if c not in still_open and c not in self._awaiting)
        handled, renamed = self._settle_resting(still_open)
        for cid in [c for c in self.orders if c in still_open and c not in handled]:
            self._settle_known(cid, still_open[cid])
        for rec in {rec.tranche_id: rec for rec in renamed}.values():
            self._after_change(rec, ended_unfilled=False)
        missing = tuple(c for c in missing if c in self.orders or c in self._entries)
        if missing:
            assert self._nursery is not None
            self._nursery.start_soon(self._look_up, r.generation, missing)
        else:
            self._finish_reconcile(r, snap, unknown=False)

    def _on_lookups(self, msg: _Lookups) -> None:
        r = self._recon
        if r is None or msg.generation != r.generation or r.snapshot is None:
            return
        if msg.answer is None:
            self._reconcile_failed("order look-ups got no answer")
            return
        unknown = False
        for res in msg.answer.results:
            if res.client_id in self._entries:  # an operator entry whose answer never came
                if res.state is not None:
                    s = res.state
                    self._on_operator_entry(res.client_id, s.status, s.filled_qty, s.avg_price)
                elif isinstance(res.error, OrderNotFound) and res.client_id not in self._awaiting:
                    self._end_entry(res.client_id, OrderStatus.CANCELED, error="the entry never reached the venue")
                else:
                    unknown = True
                continue
            rec = self.orders.get(res.client_id)
            if rec is None:
                continue
            if res.state is not None:
                self._settle_known(res.client_id, res.state)
            elif isinstance(res.error, OrderNotFound) and res.client_id not in self._awaiting:
                self._on_never_placed(rec)
            else:
                # A look-up that failed (503, timeout) says nothing: like an unknown placement, look again.
                unknown = True
        self._finish_reconcile(r, r.snapshot, unknown=unknown)

    def _finish_reconcile(self, r: _Reconciliation, snap: AccountSnapshot, *, unknown: bool) -> None:
        self._cancel_orphans(snap.open_orders)
        if not self.stopped:  # the operator owns a stopped symbol: adopt nothing, protect nothing
            self._check_position_size(snap, r.read_at)
            self._ensure_protected()
        if unknown:
            log.warning(
                "%s: some orders' fate is still unknown; looking again in %.0fs", self.name, self.cfg.retry_seconds
            )
            self._confirm_at = self.links.clock() + self.cfg.retry_seconds
        self._recon = None
        self._become_ready()
        if self._recon_again is not None:
            again, self._recon_again = self._recon_again, None
            self._request_reconcile(*again)

    def _settle_resting(self, still_open: dict[str, OrderState]) -> tuple[set[str], list[OrderRecord]]:
        """Our LIVE orders that still rest as they were, settled in one write: the client ids handled, and the
        records whose exchange id was new (their follow-ups, the same for every order of a tranche, are run once
        per tranche by the caller, after the other orders are settled).

        A restart's reconcile finds nearly every order so (200,000 at 100,000 tranches): one transaction, not one
        each. Anything else (a fill, an end, a PENDING or CANCELING order) goes through ``_settle_known``.
        """
        changes, handled = Changes(), set()
        for cid, old in list(self.orders.items()):
            s = still_open.get(cid)
            if s is None or old.state is not LocalState.LIVE or s.status.is_final or s.filled_qty != old.filled_qty:
                continue
            handled.add(cid)
            if s.order_id != old.exchange_id:  # else nothing new: no write, and (as in _observe) no follow-up
                self._track(replace(old, exchange_id=s.order_id), changes)
        self._persist(changes)  # in order with this turn's other decisions (the store writer's group commit)
        return handled, changes.orders

    def _settle_known(self, cid: str, state: OrderState) -> None:
        """Fold in what the exchange says of one of our orders; a cancel asked for but still open goes again."""
        self._observe(cid, state.status, state.filled_qty, state.avg_price, state.order_id)
        rec = self.orders.get(cid)
        if rec is not None and rec.state is LocalState.CANCELING:
            self._send(CancelOrders(self.cfg.symbol, (cid,), self.links.self_send, Priority.EXIT))

    def _on_never_placed(self, rec: OrderRecord) -> None:
        """The exchange never saw this order: a decided-but-unsent intent. Drop it; protection is re-derived.

        Should it show up after all (a placement answered late), it is cancelled as an orphan.
        """
        changes = Changes()
        self._track(replace(rec, state=LocalState.DONE, final_status=OrderStatus.CANCELED), changes)
        self._persist(changes)

    def _cancel_orphans(self, open_orders: Iterable[OrderState]) -> None:
        mine = [
            o
            for o in open_orders
            if o.client_id not in self.orders  # first: a restart finds every order known (no id to parse)
            and o.side == self.cfg.side.closing_order_side
            and o.position_side in (self.cfg.side.value, "BOTH")
            and parse_client_order_id(self.cfg.prefix, o.client_id) is not None
        ]
        if mine:
            log.warning("%s: cancelling %d orphan orders %s", self.name, len(mine), [o.client_id for o in mine])
            self.links.metrics.inc("orphans_cancelled", len(mine), venue=self.cfg.venue)
            self._send(
                CancelOrders(
                    self.cfg.symbol, tuple(o.client_id for o in mine), self.links.self_send, Priority.HOUSEKEEPING
                )
            )

    def _tracked_qty(self) -> Decimal:
        return sum((t.qty for t in self.tranches.values()), Decimal(0))

    def _on_position_frame(self, u: PositionUpdate) -> None:
        """The venue's position after a change: evidence, never acted on alone.

        An order update for the same trade normally follows within milliseconds; only a gap that is still
        unexplained after ``position_frame_grace`` counts as a first observation, and a REST read confirms it.
        """
        if self.stopped or u.position.side is not self.cfg.side:
            return
        self._frame_qty = u.position.qty
        if self._frame_check_at is None:
            self._frame_check_at = self.links.clock() + self.cfg.position_frame_grace

    def _check_position_frame(self) -> None:
        if self._frame_qty is None or self.stopped:
            return
        diff = self._frame_qty - self._tracked_qty()
        if diff == 0:
            return
        log.warning(
            "%s: the venue's position frame shows %s, the tranches hold %s; confirming with a read",
            self.name,
            self._frame_qty,
            self._tracked_qty(),
        )
        self._pending_diff = diff
        self._request_reconcile()

    def _check_position_size(self, snap: AccountSnapshot, read_at: float | None) -> None:
        """Adopt or shrink only when the same gap shows in two observations: a fill may still be in flight.

        A read asked for before the tranches last changed from the stream cannot confirm anything (it may not
        include that change): it only asks for a fresh read.
        """
        pos = next((p for p in snap.positions if p.side is self.cfg.side), None)
        held = pos.qty if pos else Decimal(0)
        tracked = self._tracked_qty()
        diff = held - tracked
        if diff == 0:
            self._pending_diff = None
            return
        now = self.links.clock()
        if read_at is not None and read_at < self._last_change_at:
            self._confirm_at = now + self.cfg.reconcile_grace
            return
        if self._pending_diff is None or (self._pending_diff > 0) != (diff > 0):
            self._pending_diff = diff
            self._confirm_at = now + self.cfg.reconcile_grace
            return
        self._pending_diff = None
        # Stream events older than this read are already in what is adopted or shrunk now (a late update of an
        # entry must not be counted a second time).
        self._settled_through = read_at if read_at is not None else now
        if diff > 0:
            assert pos is not None
            # The missing part's price is implied by the exchange's average entry.
            price = implied_entry(
                pos.entry_price, held, [(t.qty, t.entry) for t in self.tranches.values()], self.cfg.rules.tick_size
            )
            log.warning("%s: exchange holds %s more than the tranches; adopting it @ %s", self.name, diff, price)
            self.links.metrics.inc("position_gaps", venue=self.cfg.venue, action="adopted")
            self._on_entry_fill(diff, price, source="reconcile")
        else:
            self.links.metrics.inc("position_gaps", venue=self.cfg.venue, action="shrunk")
            self._on_external_reduction(-diff, source="reconcile", price=self.mark)

    # --- plumbing -----------------------------------------------------------------------------------------

    def _persist(self, changes: Changes) -> None:
        """Write a decision: at once outside the loop, else with the rest of this turn's (see ``_settle``)."""
        if not changes:
            return
        if self._deferred is None:
            self.store.apply(changes)
        else:
            self._deferred.append(changes)

    def _act(self, action: Callable[[], None]) -> None:
        """Do what a decision causes (send, answer) once the decisions before it are written."""
        if self._deferred is None:
            action()
        else:
            self._after_commit.append(action)

    async def _settle(self) -> None:
        """Commit this turn's decisions (one transaction, shared with other actors' of the same round by the
        store's writer), then act on them in the order decided: decide, persist, act, per actor."""
        decisions, self._deferred = self._deferred, None
        actions, self._after_commit = self._after_commit, []
        if decisions:
            await self.store.commit(decisions)
        for action in actions:
            action()

    def _settle_now(self) -> None:
        """A turn that failed part-way keeps what it decided before the failure (written, then sent)."""
        decisions, self._deferred = self._deferred, None
        actions, self._after_commit = self._after_commit, []
        if decisions:
            self.store.apply_many(decisions)
        for action in actions:
            action()

    def _send(self, request: GatewayRequest) -> None:
        if isinstance(request, PlaceOrders):
            self._awaiting.update(o.client_id for o in request.orders)
        self._act(functools.partial(self._send_now, request))

    def _send_now(self, request: GatewayRequest) -> None:
        try:
            self.links.gateway.send_nowait(request)
        except trio.WouldBlock:
            # The gateway queue is full: never block the tick path; the periodic retry re-derives the intent.
            log.error("%s: gateway queue full; %s deferred", self.name, type(request).__name__)
            self._retry_at = self.links.clock() + self.cfg.retry_seconds

    def _event(self, kind: str, t: Tranche | None, **data: Any) -> Event:
        return Event(
            kind=kind,
            venue=self.cfg.venue,
            symbol=self.cfg.symbol,
            side=self.cfg.side.value,
            tranche_id=t.id if t else None,
            data={k: str(v) if isinstance(v, Decimal) else v for k, v in data.items()},
        )

    def _shown(self, price: Decimal) -> str:
        """An average entry for people: two digits finer than the tick (the exact value stays in the store)."""
        return format(price.quantize(self.cfg.rules.tick_size / 100).normalize(), "f")

    def _notice(self, kind: str, t: Tranche | None, text: str, *, needs_human: bool = False, **data: Any) -> None:
        """Tell the operator, once the decisions of this turn are written (``_act``): whoever reads the store or
        ``status`` on a notice finds what it says."""
        notice = Notice(
            kind,
            self.cfg.venue,
            self.cfg.symbol,
            self.cfg.side.value,
            text,
            needs_human,
            {"tranche_id": t.id if t else None, **data},
        )
        self._act(lambda: self._emit(notice))

    def _emit(self, notice: Notice) -> None:
        try:
            self.links.notices.send_nowait(notice)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("%s: notice dropped: %s", self.name, notice.text)
