"""The pair coordinator: one actor owns every hedge pair (no shared locks), so legs on two venues exit together.

It hears what happens to the legs (``LegExited`` from a leg's position actor, ``LegEntered`` when an entry ends,
``LegMark``/``LegFunding`` from the venues' streams), decides with ``posmon.domain.pairs``, writes the decision
(``Changes.pairs``) and only then tells the other leg's position actor what to do, through a ``LegDirectory``
(``inbox(venue, symbol, side)``): the multi-venue daemon plugs its per-account position directories in
(``DirectoriesByVenue``). A leg's close is a ``CloseTranches`` of its tranches with the pair's reason, so the leg's
own position actor closes it at market with its venue's bounded slippage (exit reason ``PAIR``; the pair keeps why);
nothing here places orders.

Start-up (``run``): the open pairs are read from the store with their legs' tranches, and a leg whose tranche closed
while the coordinator was down is caught here: the other leg is closed (again, if its close never reached its
actor: ``CloseTranches`` of a tranche already closing is a no-op there, so nothing is sent twice).

Where leg exits come from: the position actors raise an ``exit`` notice for every tranche they close (venue,
symbol, side, tranche id, reason) and a ``partial_exit`` notice with the quantity for every partial close (a ladder
level, a trim): ``leg_exit_from_notice`` turns either into a ``LegExited``, so the daemon's notice fan-out is the one
path from the legs to this actor. A trim this actor decided lowered the leg when it was decided: its partial exit
(reason ``PAIR``) is not counted again. What a leg's actor does with ``TrimTranche`` and ``ProtectTranches``: see
``posmon.actors.messages`` and the position actor.

Wiring (the multi-venue daemon): ``coordinator, inbox = PairCoordinator.create(DirectoriesByVenue({venue:
directory}), store, notices, clock)``, supervised as ``supervise("pairs", lambda: coordinator.run, ...)`` (a
restart runs ``run`` again on the same inbox); every ``exit`` and ``partial_exit`` notice also goes through
``leg_exit_from_notice`` into ``inbox``; each pair symbol's router gets ``Subscribe(symbol, LegMarkSlot(venue,
inbox))``; that slot sees every mark and, when a funding time the venue announced passes, sends ``FundingTime``,
which becomes one ``LegFunding`` per leg (estimated from the rate, keyed by the funding time). ``POST /api/pairs``
/ ``posmon pair open``: ``plan_legs`` -> ids (``store.allocate_pair_id``, one ``allocate_tranche_id`` per leg) ->
``new_pair`` -> ``OpenPair`` (both ``OpenEntry`` and their ``PendingEntry``) with a reply channel; ``pair link``:
``LinkPair``; close: ``ClosePair``;
status, API and metrics: ``coordinator.views()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import trio

from posmon.actors.messages import (
    CloseTranches,
    EntryOutcome,
    Notice,
    OpenEntry,
    PriceWake,
    ProtectTranches,
    TrimTranche,
)
from posmon.actors.price_slot import PriceSlot
from posmon.domain import pairs as dp
from posmon.domain.orders import Side
from posmon.domain.pairs import ZERO, Act, LegCommand, Pair, PairStatus
from posmon.domain.tranche import ExitReason
from posmon.exchange.events import MarkPrice
from posmon.notify.kinds import NoticeKind
from posmon.store.store import Changes, Event, PendingEntry, Store

log = logging.getLogger(__name__)

# Notice kinds raised here.
PAIR_LEG_EXIT = NoticeKind.PAIR_LEG_EXIT
PAIR_EXIT = NoticeKind.PAIR_EXIT
PAIR_CLOSED = NoticeKind.PAIR_CLOSED
PAIR_IMBALANCE = NoticeKind.PAIR_IMBALANCE
PAIR_ENTRY_FAILED = NoticeKind.PAIR_ENTRY_FAILED
PAIR_LEG_UNREACHABLE = NoticeKind.PAIR_LEG_UNREACHABLE


# --- messages: to the coordinator ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegExited:
    """A tranche of (venue, symbol, side) closed by ``reason`` (TP, SL, TIMEOUT, LIQUIDATION, MANUAL, EXTERNAL...);
    ``qty``: how much it closed (None: all of the tranche); ``partial``: only ``qty`` closed, the tranche holds the
    rest (a ladder level, a trim); ``left``: what the tranche holds after it (None: not said)."""

    venue: str
    symbol: str
    side: Side
    tranche_id: int
    reason: str
    qty: Decimal | None = None
    partial: bool = False
    left: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LegEntered:
    """Leg ``leg`` of pair ``pair_id``: its entry ended with ``filled_qty`` at ``price`` (0: rejected, ``error``)."""

    pair_id: int
    leg: int
    filled_qty: Decimal
    price: Decimal | None = None
    tranche_id: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LegMark:
    """A mark price of one venue's symbol. From a ``LegMarkSlot`` (``source``) it is a wake-up: the coordinator
    takes the slot's newest mark, so a busy coordinator never works through a backlog of old ticks."""

    venue: str
    symbol: str
    mark: Decimal
    source: LegMarkSlot | None = None


class LegMarkSlot(PriceSlot):
    """A price router's slot for the coordinator (``Subscribe(symbol, LegMarkSlot(venue, inbox))`` on that venue's
    router): it keeps the newest mark and queues at most one ``LegMark`` until the coordinator takes it."""

    def __init__(self, venue: str, inbox: trio.MemorySendChannel[PairMessage]) -> None:
        super().__init__(trio.open_memory_channel[PriceWake](0)[0])  # never used: ``put`` sends to ``inbox``
        self.venue, self._pairs = venue, inbox
        self._funding: dict[str, dp.FundingWatch] = {}  # by symbol: every mark is seen here, none conflated away

    def put(self, mark: MarkPrice, received_at: float) -> None:
        self.last = self.latest = mark
        self.received_at = received_at
        watch, due = self._funding.get(mark.symbol, dp.FundingWatch()).see(
            mark.time, mark.price, mark.funding_rate, mark.next_funding_time
        )
        self._funding[mark.symbol] = watch
        if due is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self._pairs.send_nowait(FundingTime(self.venue, mark.symbol, due))
        if self._armed:
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._pairs.send_nowait(LegMark(self.venue, mark.symbol, mark.price, self))
            self._armed = True


@dataclass(frozen=True, slots=True)
class LegFunding:
    """A funding payment on one venue's position: + received, - paid, in the quote currency. ``at``, the funding
    time it is for, keys it: a leg counts each funding time once, across restarts too (``Leg.funded_at``)."""

    venue: str
    symbol: str
    side: Side
    amount: Decimal
    at: float | None = None


@dataclass(frozen=True, slots=True)
class FundingTime:
    """A funding time passed on a venue's symbol (from a ``LegMarkSlot``, which sees every mark): the coordinator
    turns it into one ``LegFunding`` per pair leg holding that symbol, ``dp.funding_payment`` of what it holds."""

    venue: str
    symbol: str
    due: dp.FundingDue


@dataclass(frozen=True, slots=True)
class PairAnswer:
    pair: Pair | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OpenPair:
    """Open ``pair`` (status opening, legs' tranche ids set): ``pending`` (its two entries) is written with the pair
    in one transaction, then both ``entries`` are sent together. ``reply_to`` gets the pair once both ended."""

    pair: Pair
    entries: tuple[OpenEntry, OpenEntry]
    pending: tuple[PendingEntry, PendingEntry]
    reply_to: trio.MemorySendChannel[PairAnswer] | None = None


@dataclass(frozen=True, slots=True)
class LinkPair:
    """Make a pair of two existing legs (``posmon pair link``): ``pair`` is open with both legs filled."""

    pair: Pair
    reply_to: trio.MemorySendChannel[PairAnswer] | None = None


@dataclass(frozen=True, slots=True)
class ClosePair:
    pair_id: int
    reason: str = dp.PairReason.MANUAL
    reply_to: trio.MemorySendChannel[PairAnswer] | None = None


@dataclass(frozen=True, slots=True)
class CheckEntries:
    """Look in the store for opening pairs' entries whose replies this incarnation will never get (a restart)."""


PairMessage = (
    LegExited | LegEntered | LegMark | LegFunding | FundingTime | OpenPair | LinkPair | ClosePair | CheckEntries
)


# To a leg's position actor: ``CloseTranches``, ``TrimTranche``, ``ProtectTranches`` (``posmon.actors.messages``).


# --- where the legs are --------------------------------------------------------------------------------------------


class LegDirectory(Protocol):
    """The position actors' inboxes by (venue, symbol, side); raising ``KeyError`` for a key it cannot serve."""

    def inbox(self, venue: str, symbol: str, side: Side) -> trio.MemorySendChannel[Any]: ...


class _VenueDirectory(Protocol):
    def inbox(self, symbol: str, side: Side) -> trio.MemorySendChannel[Any]: ...


class DirectoriesByVenue:
    """A ``LegDirectory`` over one ``PositionDirectory`` per venue (the multi-venue daemon's accounts)."""

    def __init__(self, directories: Mapping[str, _VenueDirectory]) -> None:
        self._directories = directories

    def inbox(self, venue: str, symbol: str, side: Side) -> trio.MemorySendChannel[Any]:
        return self._directories[venue].inbox(symbol, side)


def leg_exit_from_notice(notice: Notice) -> LegExited | None:
    """The ``LegExited`` of a position actor's ``exit`` or ``partial_exit`` notice (None for any other notice): the
    one way leg exits, whole or partial, reach the coordinator."""
    partial = notice.kind == NoticeKind.PARTIAL_EXIT
    if (notice.kind != NoticeKind.EXIT and not partial) or notice.data.get("tranche_id") is None:
        return None
    qty, left = notice.data.get("qty"), notice.data.get("left")
    return LegExited(
        notice.venue,
        notice.symbol,
        Side(notice.side),
        int(notice.data["tranche_id"]),
        str(notice.data.get("reason") or "EXTERNAL"),
        None if qty is None else Decimal(str(qty)),
        partial,
        None if left is None or not partial else Decimal(str(left)),
    )


# --- the actor -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegView:
    venue: str
    symbol: str
    side: str
    qty: Decimal
    entry: Decimal | None
    mark: Decimal | None
    pnl: Decimal
    funding: Decimal
    stale: bool  # no mark within ``stale_seconds``
    tranche_ids: tuple[int, ...]
    funding_source: str = dp.FUNDING_SOURCE


@dataclass(frozen=True, slots=True)
class PairView:
    """A pair as ``status``, the API and metrics show it."""

    id: int
    status: str
    legs: tuple[LegView, LegView]
    pnl: Decimal
    pnl_pct: Decimal | None
    imbalance_pct: Decimal
    imbalance_breached: bool
    residue: tuple[Decimal, Decimal]
    close_reason: str | None


class PairCoordinator:
    def __init__(
        self,
        inbox: trio.MemoryReceiveChannel[PairMessage],
        self_send: trio.MemorySendChannel[PairMessage],
        legs: LegDirectory,
        store: Store,
        notices: trio.MemorySendChannel[Notice],
        clock: Callable[[], float],
        *,
        stale_seconds: float = 30.0,
        entry_poll_seconds: float = 5.0,
    ) -> None:
        self.inbox, self.self_send, self.legs = inbox, self_send, legs
        self.store, self.notices, self.clock = store, notices, clock
        self.stale_seconds = stale_seconds
        self.entry_poll_seconds = entry_poll_seconds
        self._forwarding: set[int] = set()  # opening pairs whose entry replies this incarnation awaits
        self.pairs: dict[int, Pair] = {}
        self._marks: dict[tuple[str, str], tuple[Decimal, float]] = {}
        self._alarmed: set[int] = set()  # pairs whose imbalance alarm was raised (once per breach)
        self._waiting: dict[int, trio.MemorySendChannel[PairAnswer]] = {}  # OpenPair replies, until both ended
        self.ready = trio.Event()

    @classmethod
    def create(
        cls,
        legs: LegDirectory,
        store: Store,
        notices: trio.MemorySendChannel[Notice],
        clock: Callable[[], float],
        **kwargs: Any,
    ) -> tuple[PairCoordinator, trio.MemorySendChannel[PairMessage]]:
        """The coordinator and its inbox (unbounded: leg events must never block a position actor)."""
        send, recv = trio.open_memory_channel[PairMessage](math.inf)
        return cls(recv, send, legs, store, notices, clock, **kwargs), send

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One incarnation: supervised as ``supervise("pairs", lambda: coordinator.run, ...)``, a restart runs this
        again on the same object, so the inbox (and every sender's handle on it) outlives it, as a position
        actor's ``ActorLinks`` do; what it decided is rebuilt from the store (``_restore``), replies still owed to
        openers are kept, and entries whose forwarding tasks died are polled from the store."""
        self.pairs, self._forwarding, self._alarmed = {}, set(), set()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._restore()
            self.ready.set()
            task_status.started()
            nursery.start_soon(self._poll_entries)
            async for msg in self.inbox:
                await self._handle(msg)

    async def _poll_entries(self) -> None:
        """While a pair's entries can only be learnt from the store (restored), look now and then."""
        while True:
            await trio.sleep(self.entry_poll_seconds)
            if self._entries_unheard():
                self.self_send.send_nowait(CheckEntries())

    def _entries_unheard(self) -> list[Pair]:
        """Pairs with an entry still out and no task forwarding its outcome (restored): opening ones, and closing
        or broken ones whose other leg exited before this entry ended (its fill must be closed when it comes)."""
        return [
            p
            for p in self.pairs.values()
            if p.active and p.id not in self._forwarding and not all(leg.entry_done for leg in p.legs)
        ]

    # --- start-up -----------------------------------------------------------------------------------------------

    async def _restore(self) -> None:
        """Read the open pairs, catch leg exits that happened while down, resend closes that never arrived."""
        self.pairs = {p.id: p for p in self.store.open_pairs()}
        ids = [t for p in self.pairs.values() for leg in p.legs for t in leg.tranche_ids]
        states = self.store.tranche_states(ids)
        entries = self.store.entry_states(ids)
        changes, commands = Changes(), []
        for pair in list(self.pairs.values()):
            before = pair
            if pair.status is PairStatus.OPENING:
                settled = dp.settle_entries(self._entries_from_store(pair, states, entries))
                pair = settled.pair
                # Its trims; an unwind's close is sent below with every close that must still go out.
                commands += [(pair, c) for c in settled.commands if c.act is Act.TRIM]
            for i, leg in enumerate(pair.legs):
                for tid in leg.tranche_ids:
                    st = states.get(tid)
                    if st is not None and st.status == "closed" and pair.active:
                        qty = st.exit_qty if st.exit_qty > 0 else None
                        decision = dp.leg_exited(pair, tid, st.close_reason or "EXTERNAL", qty)
                        self._leg_exit_notice(pair, i, tid, st.close_reason or "EXTERNAL", decision, changes, True)
                        pair = decision.pair
            if pair.status is PairStatus.OPEN:
                pair, cmds = self._caught_partials(pair, states, changes)
                commands += [(pair, c) for c in cmds]
            # Every leg that must close but whose tranches are still plainly open: its close never arrived.
            if pair.status in (PairStatus.CLOSING, PairStatus.BROKEN):
                for i, leg in enumerate(pair.legs):
                    if not leg.flat and any(states.get(t) and states[t].status == "open" for t in leg.tranche_ids):
                        commands.append((pair, self._close_command(pair, i)))
            if pair != before:
                changes.pairs.append(pair)
            self._remember(pair)
        if changes:
            await self.store.commit([changes])
        for pair, cmd in commands:
            self._send(pair, cmd)
        log.info("pair coordinator: %d open pair(s) restored", sum(p.active for p in self.pairs.values()))

    def _caught_partials(
        self, pair: Pair, states: Mapping[int, Any], changes: Changes
    ) -> tuple[Pair, tuple[LegCommand, ...]]:
        """Partial exits while the coordinator was down: a leg whose tranches hold less than the pair thinks (a
        level, a partial liquidation) is lowered to what they hold, and the imbalance check runs (a trim of the
        pair's own was counted when decided: its tranche holds more, never less)."""
        commands: tuple[LegCommand, ...] = ()
        for i, leg in enumerate(pair.legs):
            held = [states.get(t) for t in leg.tranche_ids]
            if not held or any(st is None or st.status == "closed" for st in held):
                continue
            have = sum((st.qty for st in held if st is not None), ZERO)
            if have >= leg.filled_qty:
                continue
            decision = dp.leg_exited(pair, leg.tranche_ids[0], "EXTERNAL", leg.filled_qty - have, partial=True)
            self._journal(changes, "pair_leg_reduced", pair, i, None, was=str(leg.filled_qty), now=str(have))
            log.warning(
                "pair %d: %s leg holds %s, not %s (reduced while down)", pair.id, leg.venue, have, leg.filled_qty
            )
            pair, commands = decision.pair, commands + decision.commands
            if decision.imbalance_alarm:
                self._alarmed.discard(pair.id)
                self._notice(
                    PAIR_IMBALANCE,
                    pair,
                    i,
                    f"pair {pair.id}: the {leg.venue} leg was reduced to {have} while posmon was down"
                    + ("; rebalancing" if decision.commands else ""),
                    needs_human=not decision.commands,
                )
        return pair, commands

    def _entries_from_store(self, pair: Pair, states: Mapping[int, Any], entries: Mapping[int, str]) -> Pair:
        """An opening pair whose entry replies were lost (a restart): an entry the store says ended filled what its
        tranche holds (and has closed since), nothing when it made no tranche."""
        for i, leg in enumerate(pair.legs):
            if leg.entry_done:
                continue
            for tid in leg.tranche_ids:
                if entries.get(tid, "PENDING") == "PENDING":
                    continue
                st = states.get(tid)
                filled = ZERO if st is None else st.qty + st.exit_qty
                price = None if st is None else st.entry
                pair = dp.entry_ended(pair, i, filled, price, tid)
        return pair

    async def _on_check_entries(self) -> None:
        waiting = self._entries_unheard()
        ids = [t for p in waiting for leg in p.legs for t in leg.tranche_ids]
        states, entries = self.store.tranche_states(ids), self.store.entry_states(ids)
        for pair in waiting:
            if pair.status is PairStatus.OPENING:
                settled = dp.settle_entries(self._entries_from_store(pair, states, entries))
                if settled.pair != pair:
                    await self._settled(pair, settled)
                continue
            for i, leg in enumerate(pair.legs):  # an entry ending after its pair began closing (``_on_entered``)
                for tid in leg.tranche_ids if not leg.entry_done else ():
                    if entries.get(tid, "PENDING") == "PENDING":
                        continue
                    st = states.get(tid)
                    filled = ZERO if st is None else st.qty + st.exit_qty
                    late = dp.late_entry(pair, i, filled, None if st is None else st.entry, tid)
                    pair, commands = late.pair, late.commands
                    if st is not None and st.status == "closed":  # and its tranche closed since: nothing to close
                        pair, commands = dp.leg_exited(pair, tid, st.close_reason or "EXTERNAL", None).pair, ()
                    await self._decide(pair, commands, Changes(pairs=[pair]))

    def _close_command(self, pair: Pair, index: int) -> LegCommand:
        reason = pair.close_reason or dp.PairReason.MANUAL
        protect = pair.rules.on_leg_exit is dp.OnLegExit.PROTECT and reason.startswith("LEG_")
        return LegCommand(index, Act.PROTECT if protect else Act.CLOSE, reason)

    # --- messages -----------------------------------------------------------------------------------------------

    async def _handle(self, msg: PairMessage) -> None:
        match msg:
            case LegExited():
                await self._on_leg_exit(msg)
            case LegEntered():
                await self._on_entered(msg)
            case LegMark():
                await self._on_mark(msg)
            case LegFunding():
                await self._on_funding(msg)
            case FundingTime():
                await self._on_funding_time(msg)
            case OpenPair():
                await self._on_open(msg)
            case LinkPair():
                await self._on_link(msg)
            case ClosePair():
                await self._on_close(msg)
            case CheckEntries():
                await self._on_check_entries()

    async def _on_leg_exit(self, msg: LegExited) -> None:
        found = self._pair_of(msg.tranche_id)
        if found is None:
            return
        pair, index = found
        leg = pair.legs[index]
        if (leg.venue, leg.symbol, leg.side) != (msg.venue, msg.symbol, msg.side):
            log.warning(
                "pair %d: exit of tranche %d from %s %s %s ignored (not its leg)",
                pair.id,
                msg.tranche_id,
                msg.venue,
                msg.symbol,
                msg.side.value,
            )
            return
        if msg.partial and msg.reason == ExitReason.PAIR:
            # The coordinator's own trim: the leg's quantity already went down when the trim was decided.
            log.info("pair %d: trim of tranche %d filled %s", pair.id, msg.tranche_id, msg.qty)
            return
        qty = msg.qty
        if msg.partial and msg.left is not None and qty is not None and leg.tranche_ids == (msg.tranche_id,):
            # The leg's one tranche may hold more than the leg (an external fill adopted into it): the leg loses
            # only what takes the tranche below the leg's quantity.
            qty = min(qty, max(ZERO, leg.filled_qty - msg.left))
            if qty <= 0:
                log.info(
                    "pair %d: tranche %d still holds %s, the leg %s", pair.id, msg.tranche_id, msg.left, leg.filled_qty
                )
                return
        decision = dp.leg_exited(pair, msg.tranche_id, msg.reason, qty, partial=msg.partial)
        if msg.partial and decision.pair == pair:
            return
        changes = Changes(pairs=[decision.pair])
        self._leg_exit_notice(pair, index, msg.tranche_id, msg.reason, decision, changes, False)
        await self._decide(decision.pair, decision.commands, changes, alarm=decision.imbalance_alarm)

    def _leg_exit_notice(
        self, pair: Pair, index: int, tid: int, reason: str, decision: dp.ExitDecision, changes: Changes, down: bool
    ) -> None:
        leg, other = pair.legs[index], pair.legs[1 - index]
        then = (
            f"{other.venue} {other.symbol} {other.side.value} leg: "
            + ", ".join(f"{c.act.value} ({c.reason})" for c in decision.commands)
            if decision.commands
            else "no action"
        )
        when = " while posmon was down" if down else ""
        text = (
            f"pair {pair.id}: {leg.venue} {leg.symbol} {leg.side.value} leg tranche {tid} exited by {reason}{when}; "
            f"{then}"
        )
        self._journal(changes, PAIR_LEG_EXIT, pair, index, tid, reason=reason, down=down)
        self._notice(PAIR_LEG_EXIT, pair, index, text, needs_human=reason in ("LIQUIDATION", "ADL"), reason=reason)

    async def _on_entered(self, msg: LegEntered) -> None:
        pair = self.pairs.get(msg.pair_id)
        if pair is None or pair.legs[msg.leg].entry_done:
            return
        if pair.status is not PairStatus.OPENING:  # the other leg exited before this entry ended
            late = dp.late_entry(pair, msg.leg, msg.filled_qty, msg.price, msg.tranche_id)
            await self._decide(late.pair, late.commands, Changes(pairs=[late.pair]))
            return
        updated = dp.entry_ended(pair, msg.leg, msg.filled_qty, msg.price, msg.tranche_id)
        await self._settled(updated, dp.settle_entries(updated))

    async def _settled(self, pair: Pair, settled: dp.Settlement) -> None:
        """An entry ended: write it, and once both have, act by the entry rule and answer the opener."""
        changes = Changes(pairs=[settled.pair])
        new = settled.pair
        if new.status is not PairStatus.OPENING:
            self._forwarding.discard(new.id)
            self._journal(
                changes,
                "pair_entries",
                new,
                0,
                None,
                status=new.status.value,
                filled=[str(leg.filled_qty) for leg in new.legs],
                residue=[str(r) for r in new.residue],
            )
            if new.status in (PairStatus.BROKEN, PairStatus.CLOSED) or settled.commands:
                failed = [f"{leg.venue} {leg.symbol}" for leg in pair.legs if leg.entry_done and leg.flat]
                what = ", ".join(
                    f"{new.legs[c.leg].venue} leg {c.act.value} {c.qty or ''}".rstrip() for c in settled.commands
                )
                self._notice(
                    PAIR_ENTRY_FAILED,
                    new,
                    0,
                    f"pair {new.id}: entry {'rejected on ' + ', '.join(failed) if failed else 'filled partially'}"
                    f"{'; ' + what if what else ''}",
                    needs_human=new.status is PairStatus.BROKEN,
                )
        await self._decide(new, settled.commands, changes)
        if new.status is not PairStatus.OPENING and (reply := self._waiting.pop(new.id, None)) is not None:
            _answer(reply, PairAnswer(new, None if new.status is PairStatus.OPEN else new.close_reason))

    async def _on_mark(self, msg: LegMark) -> None:
        mark = msg.mark
        if msg.source is not None:
            newest = msg.source.take()
            if newest is None:
                return
            mark = newest.price
        self._marks[msg.venue, msg.symbol] = (mark, self.clock())
        for pair in list(self.pairs.values()):
            if not any((leg.venue, leg.symbol) == (msg.venue, msg.symbol) for leg in pair.legs):
                continue
            reason = dp.pair_exit(pair, self._marks_of(pair))
            if reason is None:
                continue
            decision = dp.close_pair(pair, reason)
            changes = Changes(pairs=[decision.pair])
            pnl = dp.pair_pnl(pair, self._marks_of(pair))
            self._journal(changes, PAIR_EXIT, pair, 0, None, reason=reason, pnl=str(pnl.combined))
            self._notice(
                PAIR_EXIT,
                pair,
                0,
                f"pair {pair.id} closed by {reason}: combined PnL {pnl.combined:.4f}",
                reason=reason,
                pnl=str(pnl.combined),
            )
            await self._decide(decision.pair, decision.commands, changes)

    async def _on_funding_time(self, msg: FundingTime) -> None:
        """Each pair leg of the symbol gets the funding estimated from what it holds now (one ``LegFunding``)."""
        legs = {
            (leg.side, leg.filled_qty)
            for pair in self.pairs.values()
            if pair.active
            for leg in pair.legs
            if (leg.venue, leg.symbol) == (msg.venue, msg.symbol) and not leg.flat
        }
        for side, qty in sorted(legs, key=lambda x: (x[0].value, x[1])):
            amount = dp.funding_payment(side, qty, msg.due.mark, msg.due.rate)
            await self._on_funding(LegFunding(msg.venue, msg.symbol, side, amount, msg.due.time), qty)

    async def _on_funding(self, msg: LegFunding, qty: Decimal | None = None) -> None:
        """``qty``: only the legs holding this much (an estimate is per leg's quantity); None: every matching leg."""
        changes = Changes()
        for pair in self.pairs.values():
            for i, leg in enumerate(pair.legs):
                if (leg.venue, leg.symbol, leg.side) == (msg.venue, msg.symbol, msg.side) and pair.active:
                    if qty is not None and leg.filled_qty != qty:
                        continue
                    if (funded := dp.add_funding(pair, i, msg.amount, msg.at)) is not None:
                        changes.pairs.append(funded)
        if changes:
            await self.store.commit([changes])
            for p in changes.pairs:
                self._remember(p)

    async def _on_open(self, msg: OpenPair) -> None:
        pair = msg.pair
        if pair.id in self.pairs:
            if msg.reply_to is not None:
                _answer(msg.reply_to, PairAnswer(None, f"pair {pair.id} exists"))
            return
        changes = Changes(pairs=[pair], entries_added=list(msg.pending))
        self._journal(
            changes,
            "pair_opening",
            pair,
            0,
            None,
            qty=[str(leg.target_qty) for leg in pair.legs],
            residue=[str(r) for r in pair.residue],
        )
        await self.store.commit([changes])  # decided and persisted first ...
        self._remember(pair)
        if msg.reply_to is not None:
            self._waiting[pair.id] = msg.reply_to
        self._forwarding.add(pair.id)
        for i, entry in enumerate(msg.entries):  # ... then sent together
            leg = pair.legs[i]
            reply_send, reply_recv = trio.open_memory_channel[EntryOutcome](1)
            self._nursery.start_soon(self._forward_outcome, pair.id, i, entry.tranche_id, reply_recv)
            try:
                self.legs.inbox(leg.venue, leg.symbol, leg.side).send_nowait(
                    dataclasses.replace(entry, reply_to=reply_send)
                )
            except (KeyError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                reply_send.send_nowait(EntryOutcome(None, f"{leg.venue} {leg.symbol}: no position actor ({exc})"))

    async def _forward_outcome(
        self, pair_id: int, leg: int, tranche_id: int, replies: trio.MemoryReceiveChannel[EntryOutcome]
    ) -> None:
        """An entry's outcome, back into the inbox as ``LegEntered`` (decided in order with everything else)."""
        async with replies:
            try:
                outcome = await replies.receive()
            except trio.EndOfChannel:
                return
        t = outcome.tranche
        msg = (
            LegEntered(pair_id, leg, t.qty, t.entry, t.id)
            if t is not None
            else LegEntered(pair_id, leg, Decimal(0), None, tranche_id, outcome.error)
        )
        self.self_send.send_nowait(msg)

    async def _on_link(self, msg: LinkPair) -> None:
        legs = tuple(dataclasses.replace(leg, entry_done=True) for leg in msg.pair.legs)  # no entry of posmon's
        pair = dataclasses.replace(msg.pair, legs=(legs[0], legs[1]), status=PairStatus.OPEN)
        taken = [t for leg in pair.legs for t in leg.tranche_ids if self._pair_of(t) is not None]
        if pair.id in self.pairs or taken:
            if msg.reply_to is not None:
                _answer(
                    msg.reply_to,
                    PairAnswer(
                        None, f"tranche(s) {taken} already belong to a pair" if taken else f"pair {pair.id} exists"
                    ),
                )
            return
        changes = Changes(pairs=[pair])
        self._journal(changes, "pair_linked", pair, 0, None)
        await self._decide(pair, (), changes, alarm=dp.breaches(pair))
        if msg.reply_to is not None:
            _answer(msg.reply_to, PairAnswer(pair))

    async def _on_close(self, msg: ClosePair) -> None:
        pair = self.pairs.get(msg.pair_id)
        if pair is None:
            if msg.reply_to is not None:
                _answer(msg.reply_to, PairAnswer(None, f"no open pair {msg.pair_id}"))
            return
        decision = dp.close_pair(pair, msg.reason)
        changes = Changes(pairs=[decision.pair])
        self._journal(changes, "pair_close", pair, 0, None, reason=msg.reason)
        await self._decide(decision.pair, decision.commands, changes)
        if msg.reply_to is not None:
            _answer(msg.reply_to, PairAnswer(decision.pair))

    # --- decide, persist, act -----------------------------------------------------------------------------------

    async def _decide(
        self, pair: Pair, commands: tuple[LegCommand, ...], changes: Changes, *, alarm: bool = False
    ) -> None:
        """Write the decision, then send its commands (every one in this same turn: no await in between)."""
        if pair.status is PairStatus.CLOSED:
            self._journal(changes, PAIR_CLOSED, pair, 0, None, reason=pair.close_reason)
        await self.store.commit([changes])
        self._remember(pair)
        for cmd in commands:
            self._send(pair, cmd)
        if pair.status is PairStatus.CLOSED:
            self._notice(
                PAIR_CLOSED,
                pair,
                0,
                f"pair {pair.id} closed ({pair.close_reason}): both legs flat",
                reason=pair.close_reason,
            )
        if alarm and pair.id not in self._alarmed:
            self._alarmed.add(pair.id)
            a, b = pair.legs
            self._notice(
                PAIR_IMBALANCE,
                pair,
                0,
                f"pair {pair.id}: legs differ by {dp.imbalance_pct(pair):.2f} % ({a.venue} {a.filled_qty}, "
                f"{b.venue} {b.filled_qty}; limit {pair.rules.max_leg_imbalance_pct} %)"
                + ("; rebalancing" if commands and pair.rules.auto_rebalance else ""),
                needs_human=not pair.rules.auto_rebalance,
            )
        elif not dp.breaches(pair):
            self._alarmed.discard(pair.id)

    def _send(self, pair: Pair, cmd: LegCommand) -> None:
        leg = pair.legs[cmd.leg]
        message: Any
        # The leg's tranche closes with reason PAIR; why the pair acted (LEG_SL, PAIR_TP...) is the pair's own.
        if cmd.act is Act.CLOSE:
            message = CloseTranches(leg.tranche_ids, ExitReason.PAIR)
        elif cmd.act is Act.PROTECT:
            message = ProtectTranches(leg.tranche_ids, pair.rules.protect_stop_pct, ExitReason.PAIR)
        else:
            message = TrimTranche(leg.tranche_ids[-1], cmd.qty, ExitReason.PAIR)
        if not leg.tranche_ids:
            log.warning("pair %d: %s leg holds no tranche; %s not sent", pair.id, leg.venue, cmd.act.value)
            return
        try:
            self.legs.inbox(leg.venue, leg.symbol, leg.side).send_nowait(message)
        except (KeyError, trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._notice(
                PAIR_LEG_UNREACHABLE,
                pair,
                cmd.leg,
                f"pair {pair.id}: could not {cmd.act.value} the {leg.venue} {leg.symbol} leg ({exc!r}); "
                "close it by hand",
                needs_human=True,
            )
            return
        log.info(
            "pair %d: %s %s %s leg %s (%s)", pair.id, leg.venue, leg.symbol, leg.side.value, cmd.act.value, cmd.reason
        )

    # --- helpers ------------------------------------------------------------------------------------------------

    def _remember(self, pair: Pair) -> None:
        if pair.active:
            self.pairs[pair.id] = pair
        else:
            self.pairs.pop(pair.id, None)
            self._alarmed.discard(pair.id)

    def _pair_of(self, tranche_id: int) -> tuple[Pair, int] | None:
        for pair in self.pairs.values():
            index = pair.leg_of(tranche_id)
            if index is not None:
                return pair, index
        return None

    def _marks_of(self, pair: Pair) -> dict[int, Decimal | None]:
        return {
            i: (m[0] if (m := self._marks.get((leg.venue, leg.symbol))) else None) for i, leg in enumerate(pair.legs)
        }

    def views(self) -> list[PairView]:
        """Every pair not closed, for status, the API and metrics."""
        now, out = self.clock(), []
        for pair in sorted(self.pairs.values(), key=lambda p: p.id):
            marks = self._marks_of(pair)
            pnl = dp.pair_pnl(pair, marks)
            legs = tuple(
                LegView(
                    leg.venue,
                    leg.symbol,
                    leg.side.value,
                    leg.filled_qty,
                    leg.entry,
                    marks[i],
                    pnl.legs[i],
                    leg.funding,
                    (m := self._marks.get((leg.venue, leg.symbol))) is None or now - m[1] > self.stale_seconds,
                    leg.tranche_ids,
                )
                for i, leg in enumerate(pair.legs)
            )
            out.append(
                PairView(
                    pair.id,
                    pair.status.value,
                    (legs[0], legs[1]),
                    pnl.combined,
                    pnl.pct,
                    dp.imbalance_pct(pair),
                    dp.breaches(pair),
                    pair.residue,
                    pair.close_reason,
                )
            )
        return out

    def _journal(self, changes: Changes, kind: str, pair: Pair, index: int, tid: int | None, **data: Any) -> None:
        leg = pair.legs[index]
        changes.events.append(Event(kind, leg.venue, leg.symbol, leg.side.value, tid, {"pair_id": pair.id, **data}))

    def _notice(self, kind: str, pair: Pair, index: int, text: str, *, needs_human: bool = False, **data: Any) -> None:
        leg = pair.legs[index]
        notice = Notice(kind, leg.venue, leg.symbol, leg.side.value, text, needs_human, {"pair_id": pair.id, **data})
        try:
            self.notices.send_nowait(notice)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("pair coordinator: notice dropped: %s", text)


def _answer(reply: trio.MemorySendChannel[PairAnswer], answer: PairAnswer) -> None:
    with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
        reply.send_nowait(answer)
