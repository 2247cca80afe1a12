"""How a tranche leaves the position: the exit policies a position actor delegates to.

A venue that can be trusted with conditional orders keeps a reduce-only TP limit and a stop-market SL resting
for every tranche (``RestingExits``, Aster); one whose conditional orders misfire gets none, and posmon watches
TP, SL and the hold time itself, closing with reduce-only market orders bounded to a worst price through the
mark (``EmulatedExits``, Lighter). The actor asks its policy which legs a tranche rests, which levels it
watches, how to close and what follows a close that fell short; it never asks which kind it holds. A new exit
kind is a new class here.

A tranche's exit plan (``domain.exitplan``: a TP ladder, a trailing stop, break-even) runs on either policy: the
TP leg covers the current ladder level's share (``level_qty``), a TP trigger before the last level closes that
share only (``trigger_qty``), and a stop moved by price is a new SL price (resting: a new STOP_MARKET placed
before the old one goes; emulated: the trigger book's SL level). ``leg_ok`` says whether a resting leg is still
the one the tranche wants, price and quantity, so a changed tranche is re-protected and a restart places nothing
when the legs already match.

Policies are pure: they decide order records and pauses, the actor persists and sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from posmon.domain.exitplan import level_qty, tp_leg_covers
from posmon.domain.orders import Purpose, Side, SymbolRules, WorkingType
from posmon.domain.protection import (
    OrderRecord,
    bounded_close_order,
    close_order,
    protection_orders,
)
from posmon.domain.tranche import ExitReason, Tranche
from posmon.domain.triggers import TriggerBook

LEGS = (Purpose.TP, Purpose.SL)  # the purposes of the orders that protect a tranche
MAX_CAP_PAUSE_SECONDS = 120.0  # retries at the slippage cap never wait longer (a request budget is not a clock)


@dataclass(frozen=True, slots=True)
class CloseSlippage:
    """How far through the mark a bounded close may fill, in percent: the first try, the widening per unfilled
    try, and the cap (at the cap a human is told and the close keeps trying there)."""

    first_pct: Decimal = Decimal("0.5")
    step_pct: Decimal = Decimal("0.5")
    max_pct: Decimal = Decimal("3")

    def at(self, attempt: int) -> Decimal:
        """The bound of the ``attempt``-th (0-based) close: widening, never unbounded."""
        return min(self.first_pct + self.step_pct * attempt, self.max_pct)


@dataclass(frozen=True, slots=True)
class ExitContext:
    """What every policy needs to write a (symbol, side)'s orders; fixed for an actor's life."""

    side: Side
    rules: SymbolRules
    prefix: str
    hedge_mode: bool
    working_type: WorkingType
    instant_tp: bool  # close at market the instant the mark runs through a TP, not only when the TP limit fills
    watch_hold_time: bool  # tranches have a maximum hold time
    retry_seconds: float


@dataclass(frozen=True, slots=True)
class CloseOrder:
    """A close to send: the tranche with its order sequence advanced, the order, and its place in the queue
    (lower goes first when many close at once)."""

    tranche: Tranche
    record: OrderRecord
    rank: float = 0.0


@dataclass(frozen=True, slots=True)
class ShortClose:
    """What follows a close that ended with the tranche still open."""

    hold_until: float | None  # no new close before this time (None: try again at once)
    reconcile: bool  # read the real position before the next try
    alert: str | None = None  # tell a human, once
    exhausted: bool = False  # the slippage cap is reached (counted in the metrics)
    next_bound_pct: Decimal | None = None  # the next bounded close's slippage, for the log


class ExitPolicy(Protocol):
    """When and how a tranche leaves; one instance per position actor, holding its close attempts."""

    kind: str  # shown to the operator: "exchange" or "emulated"
    legs: tuple[Purpose, ...]  # the orders a held tranche keeps resting on the venue

    def trigger_book(self) -> TriggerBook:
        """The levels posmon itself watches for this (symbol, side)."""
        ...

    def protection(self, t: Tranche) -> tuple[Tranche, tuple[OrderRecord, ...]]:
        """The resting legs of a held tranche (its order sequence advanced when there are any)."""
        ...

    def leg_ok(self, t: Tranche, rec: OrderRecord) -> bool:
        """Whether ``rec`` (a resting TP or SL of ``t``) is what the tranche wants now: its price, and what is
        left of it for the quantity (the TP the current ladder level's share, the SL all of ``t.qty``)."""
        ...

    def trigger_qty(self, t: Tranche, reason: ExitReason) -> Decimal:
        """What a triggered exit closes: a TP before the last ladder level its level's share, else everything."""
        ...

    def close(self, t: Tranche, mark: Decimal | None, qty: Decimal | None = None) -> CloseOrder | None:
        """The order that closes ``qty`` of the tranche (None: all it holds); None while it cannot be written
        yet (no mark)."""
        ...

    def close_fell_short(self, t: Tranche, now: float, why: str) -> ShortClose:
        """A close ended with the tranche still open, for ``why`` (counted per tranche)."""
        ...

    def attempts(self, tranche_id: int) -> int:
        """How many closes of the tranche fell short so far."""
        ...

    def forget(self, tranche_id: int) -> None:
        """The tranche is gone: drop its close attempts."""
        ...


@dataclass(slots=True)
class _Attempts:
    """Closes that fell short, per tranche (and of those, how many at the slippage cap)."""

    short: dict[int, int] = field(default_factory=dict)
    at_cap: dict[int, int] = field(default_factory=dict)

    def forget(self, tranche_id: int) -> None:
        self.short.pop(tranche_id, None)
        self.at_cap.pop(tranche_id, None)


def _trigger_qty(t: Tranche, reason: ExitReason, rules: SymbolRules) -> Decimal:
    return level_qty(t, rules) if reason is ExitReason.TP else t.qty


def _leg_ok(t: Tranche, rec: OrderRecord, rules: SymbolRules) -> bool:
    req = rec.request
    left = req.qty - rec.filled_qty
    if not t.plan:
        # A tranche without a plan changes its TP only with its quantity: the TP's quantity is checked (an order
        # re-rounded by the gateway onto a changed grid stays accepted); its stop may move alone (a hedge pair's
        # tight stop), so the SL's price is checked too (a re-rounded stop is followed by the tranche). A
        # restart's reconcile asks this of every leg: the fast path first.
        return left == t.qty and (rec.purpose is not Purpose.SL or req.stop_price == t.sl)
    if rec.purpose is Purpose.SL:
        return left == t.qty and req.stop_price == t.sl
    return req.price == t.tp and tp_leg_covers(t, req.qty, rec.filled_qty, rules)


class RestingExits:
    """The venue holds the exits: a reduce-only TP limit and a stop-market SL rest for every tranche.

    posmon watches only the instant TP (a mark through the TP closes at market at once) and the hold time;
    a close that falls short waits a growing pause and a reconcile, and after three a human is told.
    """

    kind = "exchange"
    legs: tuple[Purpose, ...] = LEGS

    def __init__(self, ctx: ExitContext) -> None:
        self.ctx = ctx
        self._attempts = _Attempts()

    def trigger_book(self) -> TriggerBook:
        c = self.ctx
        return TriggerBook(c.side, take_profit=c.instant_tp, stop_loss=False, timeout=c.watch_hold_time, rules=c.rules)

    def protection(self, t: Tranche) -> tuple[Tranche, tuple[OrderRecord, ...]]:
        c = self.ctx
        t, tp, sl = protection_orders(
            t,
            prefix=c.prefix,
            working_type=c.working_type,
            hedge_mode=c.hedge_mode,
            tp_qty=level_qty(t, c.rules) if t.plan else None,
        )
        return t, (tp, sl)

    def leg_ok(self, t: Tranche, rec: OrderRecord) -> bool:
        return _leg_ok(t, rec, self.ctx.rules)

    def trigger_qty(self, t: Tranche, reason: ExitReason) -> Decimal:
        return _trigger_qty(t, reason, self.ctx.rules)

    def close(self, t: Tranche, mark: Decimal | None, qty: Decimal | None = None) -> CloseOrder | None:
        t, rec = close_order(t, t.qty if qty is None else qty, prefix=self.ctx.prefix, hedge_mode=self.ctx.hedge_mode)
        return CloseOrder(t, rec)

    def close_fell_short(self, t: Tranche, now: float, why: str) -> ShortClose:
        n = self._attempts.short.get(t.id, 0) + 1
        self._attempts.short[t.id] = n
        alert = f"tranche {t.id} still open after {n} close attempts: {why}" if n >= 3 else None
        return ShortClose(hold_until=now + self.ctx.retry_seconds * n, reconcile=True, alert=alert)

    def attempts(self, tranche_id: int) -> int:
        return self._attempts.short.get(tranche_id, 0)

    def forget(self, tranche_id: int) -> None:
        self._attempts.forget(tranche_id)


class EmulatedExits:
    """posmon holds the exits: nothing rests on the venue; TP, SL and the hold time are watched here.

    A close is a reduce-only market order bounded to a worst price ``slippage`` through the mark; one that
    does not fill is widened at once up to the cap. At the cap the operator is told once and the close is
    retried there after a doubling pause with a reconcile in between: never an unbounded close, never a
    silently open position.
    """

    kind = "emulated"
    legs: tuple[Purpose, ...] = ()

    def __init__(self, ctx: ExitContext, slippage: CloseSlippage) -> None:
        self.ctx = ctx
        self.slippage = slippage
        self._attempts = _Attempts()

    def trigger_book(self) -> TriggerBook:
        c = self.ctx
        return TriggerBook(c.side, take_profit=True, stop_loss=True, timeout=c.watch_hold_time, rules=c.rules)

    def protection(self, t: Tranche) -> tuple[Tranche, tuple[OrderRecord, ...]]:
        return t, ()

    def leg_ok(self, t: Tranche, rec: OrderRecord) -> bool:
        return _leg_ok(t, rec, self.ctx.rules)

    def trigger_qty(self, t: Tranche, reason: ExitReason) -> Decimal:
        return _trigger_qty(t, reason, self.ctx.rules)

    def close(self, t: Tranche, mark: Decimal | None, qty: Decimal | None = None) -> CloseOrder | None:
        if mark is None:  # no price to bound the close by yet
            return None
        c = self.ctx
        t, rec = bounded_close_order(
            t,
            t.qty if qty is None else qty,
            prefix=c.prefix,
            hedge_mode=c.hedge_mode,
            mark=mark,
            slippage_pct=self.slippage.at(self.attempts(t.id)),
            rules=c.rules,
        )
        # The tranche furthest through its stop goes first when many close at once.
        return CloseOrder(t, rec, rank=-float(t.side.sign * (t.sl - mark) / t.entry))

    def close_fell_short(self, t: Tranche, now: float, why: str) -> ShortClose:
        n = self._attempts.short.get(t.id, 0) + 1
        self._attempts.short[t.id] = n
        bound = self.slippage.at(n)
        if self.slippage.at(n - 1) < self.slippage.max_pct:
            return ShortClose(hold_until=None, reconcile=False, next_bound_pct=bound)
        tries = self._attempts.at_cap.get(t.id, 0) + 1
        self._attempts.at_cap[t.id] = tries
        pause = min(self.ctx.retry_seconds * 2 ** (tries - 1), MAX_CAP_PAUSE_SECONDS)
        alert = None
        if tries == 1:
            alert = (
                f"tranche {t.id} ({t.qty}) not closed within the {self.slippage.max_pct}% slippage cap: "
                f"{why}; retrying at the cap"
            )
        return ShortClose(
            hold_until=now + pause, reconcile=True, alert=alert, exhausted=tries == 1, next_bound_pct=bound
        )

    def attempts(self, tranche_id: int) -> int:
        return self._attempts.short.get(tranche_id, 0)

    def forget(self, tranche_id: int) -> None:
        self._attempts.forget(tranche_id)
