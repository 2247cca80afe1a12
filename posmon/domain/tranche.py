"""Tranches and the rules that create, grow, merge, shrink and exit them.

Pure functions of explicit inputs (risk settings, symbol rules, a clock value):
the position actor decides with these, persists the result, then acts.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from posmon.domain.exitplan import NO_PLAN, ExitPlan, planned_exits
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.rounding import quantize_qty, round_down, round_toward, round_up

HUNDRED = Decimal(100)
_VWAP_PLACES = Decimal("1e-12")


class ExitReason(enum.StrEnum):
    """Why a tranche is closing or was closed: the store's ``close_reason``, notices' and metrics' ``reason``."""

    TP = "TP"  # the mark ran through the take-profit
    SL = "SL"  # the mark ran through the stop-loss
    TIMEOUT = "TIMEOUT"  # the tranche was held for max_hold_seconds
    LIQUIDATION = "LIQUIDATION"  # the venue liquidated the position (recognized from its own order updates)
    ADL = "ADL"  # the venue's auto-deleveraging closed part of the position
    MANUAL = "MANUAL"  # the operator closed it (API, CLI)
    EXTERNAL = "EXTERNAL"  # the position was reduced or closed outside posmon
    MERGED = "MERGED"  # folded into another tranche of the same position
    PROTECTION_FAILED = "PROTECTION_FAILED"  # its TP/SL was refused and protection_failure_action is "close"
    CLOSE = "CLOSE"  # a close order of posmon's filled for a tranche not marked closing
    UNMONITORED = "UNMONITORED"  # the operator stopped monitoring the symbol: forgotten, the position left open
    RISK_LIMIT = "RISK_LIMIT"  # a fill from elsewhere broke a risk limit and close_breaching_fills closed it
    PAIR = "PAIR"  # its hedge pair closed it: the other leg exited, a pair TP/SL, an unwind or a trim


@dataclass(frozen=True, slots=True)
class Risk:
    """The risk settings one (symbol, side) runs with; a subset of the config's RiskSettings."""

    tp_pct: Decimal
    sl_pct: Decimal
    tranche_pnl_increment_pct: Decimal = Decimal(5)
    max_tranches: int = 5
    max_hold_seconds: int = 0
    plan: ExitPlan = NO_PLAN  # ladder, trailing stop, break-even (``domain.exitplan``); empty: one TP, one SL


@dataclass(frozen=True, slots=True)
class Tranche:
    """A slice of one (venue, symbol, side) position with its own entry, TP, SL and hold limit.

    ``seq`` numbers the orders placed for this tranche, so every order's client id
    is derived from (tranche id, purpose, seq) and a retry can never duplicate one.
    """

    id: int
    venue: str
    symbol: str
    side: Side
    index: int
    entry: Decimal
    qty: Decimal
    tp: Decimal
    sl: Decimal
    opened_at: float
    deadline: float | None = None
    seq: int = 0
    realized_pnl: Decimal = Decimal(0)
    closing: str | None = None  # why a close is under way (an ExitReason or a command), None while held
    # What its exits did so far, for the history once it is closed (``qty`` is then 0): the quantity closed at a
    # known price, the sum of quantity x price over those fills (their volume-weighted price is exit_value /
    # exit_qty), and the fees the venue reported for posmon's exit orders, in the quote currency.
    exit_qty: Decimal = Decimal(0)
    exit_value: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    # Its exit plan and what the plan has done so far (``domain.exitplan``): ladder levels filled, and the most
    # favourable mark as of the last time it moved the stop.
    plan: ExitPlan = NO_PLAN
    level: int = 0
    best_mark: Decimal | None = None

    @property
    def exit_price(self) -> Decimal | None:
        """Volume-weighted price of the exit fills so far; None before any."""
        return exit_vwap(self.exit_qty, self.exit_value)

    def pnl_pct(self, price: Decimal) -> Decimal:
        return pnl_pct(self.side, self.entry, price)


def exit_vwap(qty: Decimal, value: Decimal) -> Decimal | None:
    """``value / qty`` in plain notation to 12 decimal places at most (a division carries 28 digits); None for
    no quantity."""
    if qty <= 0:
        return None
    text = format((value / qty).quantize(_VWAP_PLACES), "f")  # plain notation: 4500.0 / 0.1 is 4.5E+4
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def booked_exit(t: Tranche, qty: Decimal, price: Decimal, fee: Decimal = Decimal(0)) -> Tranche:
    """``t`` after ``qty`` of it closed at ``price`` (``fee`` paid): smaller, its PnL, exit and fees recorded."""
    return replace(
        t,
        qty=t.qty - qty,
        realized_pnl=t.realized_pnl + realized_pnl(t.side, t.entry, price, qty),
        exit_qty=t.exit_qty + qty,
        exit_value=t.exit_value + qty * price,
        fees=t.fees + fee,
    )


def pnl_pct(side: Side, entry: Decimal, price: Decimal) -> Decimal:
    """PnL in percent of the entry price; negative is a loss."""
    return side.sign * (price - entry) / entry * HUNDRED


def realized_pnl(side: Side, entry: Decimal, exit_price: Decimal, qty: Decimal) -> Decimal:
    """Quote-currency PnL of closing ``qty`` bought/sold at ``entry`` at ``exit_price`` (before fees)."""
    return side.sign * (exit_price - entry) * qty


def average_entry(fills: Sequence[tuple[Decimal, Decimal]]) -> Decimal:
    """Quantity-weighted average price of (qty, price) pairs."""
    total = sum((q for q, _ in fills), Decimal(0))
    return sum((q * p for q, p in fills), Decimal(0)) / total


def implied_entry(
    venue_entry: Decimal, held: Decimal, tranches: Sequence[tuple[Decimal, Decimal]], tick: Decimal
) -> Decimal:
    """The price of the part of a position no tranche explains, implied by the venue's average entry.

    ``held`` at ``venue_entry`` is what the venue shows; ``tranches`` are the known (qty, entry) pairs. When
    the implication is not a price (the tranches' entries cannot be reconciled with the venue's average),
    the venue's average entry stands in: the one figure every reader has.
    """
    tracked = sum((q for q, _ in tranches), Decimal(0))
    missing = held - tracked
    price = (venue_entry * held - (average_entry(tranches) * tracked if tranches else 0)) / missing
    return (price if price > 0 else venue_entry).quantize(tick)


def position_pnl_pct(tranches: Sequence[Tranche], price: Decimal) -> Decimal:
    """PnL % at ``price`` of the whole (symbol, side) position: all tranches averaged together."""
    return pnl_pct(tranches[0].side, average_entry([(t.qty, t.entry) for t in tranches]), price)


def exit_prices(side: Side, entry: Decimal, risk: Risk, rules: SymbolRules) -> tuple[Decimal, Decimal]:
    """(TP, SL) at the configured percentages from ``entry``, on the tick, rounded toward the entry.

    Rounding toward the entry keeps the SL within its stated loss and the TP within
    its stated distance (never asking for more profit than configured).
    """
    tp = entry * (HUNDRED + side.sign * risk.tp_pct) / HUNDRED
    sl = entry * (HUNDRED - side.sign * risk.sl_pct) / HUNDRED
    tick = rules.tick_size
    tp, sl = round_toward(tp, tick, entry), round_toward(sl, tick, entry)
    # Never at or past the entry: a distance under one tick becomes one tick (an off-tick average
    # entry could otherwise round a TP to a loss, or a stop onto the entry).
    above, below = round_down(entry, tick) + tick, round_up(entry, tick) - tick
    if side is Side.LONG:
        return max(tp, above), max(min(sl, below), tick)
    return min(tp, below), max(sl, above)


def _deadline(opened_at: float, risk: Risk) -> float | None:
    return opened_at + risk.max_hold_seconds if risk.max_hold_seconds > 0 else None


def _repriced(t: Tranche, entry: Decimal, qty: Decimal, risk: Risk, rules: SymbolRules) -> Tranche:
    tp, sl = exit_prices(t.side, entry, risk, rules)
    if not t.plan and not risk.plan:
        return replace(t, entry=entry, qty=qty, tp=tp, sl=sl)
    # The plan's state carries over while the plan is the same; another plan starts from its first level.
    same = t.plan == risk.plan
    t = replace(
        t,
        entry=entry,
        qty=qty,
        tp=tp,
        plan=risk.plan,
        level=t.level if same else 0,
        best_mark=t.best_mark if same else None,
    )
    tp, sl = planned_exits(t, sl, rules)
    return replace(t, tp=tp, sl=sl)


def extend_tranche(t: Tranche, *, qty: Decimal, price: Decimal, risk: Risk, rules: SymbolRules) -> Tranche:
    """``t`` grown by a fill of ``qty`` at ``price``: averaged entry, exits re-derived at ``risk``."""
    return _repriced(t, average_entry([(t.qty, t.entry), (qty, price)]), t.qty + qty, risk, rules)


def new_tranche(
    *,
    id: int,
    venue: str,
    symbol: str,
    side: Side,
    index: int,
    qty: Decimal,
    price: Decimal,
    now: float,
    risk: Risk,
    rules: SymbolRules,
) -> Tranche:
    tp, sl = exit_prices(side, price, risk, rules)
    t = Tranche(
        id=id,
        venue=venue,
        symbol=symbol,
        side=side,
        index=index,
        entry=price,
        qty=qty,
        tp=tp,
        sl=sl,
        opened_at=now,
        deadline=_deadline(now, risk),
        plan=risk.plan,
    )
    if not risk.plan:
        return t
    tp, sl = planned_exits(t, sl, rules)
    return replace(t, tp=tp, sl=sl)


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """What an entry fill does: ``changed`` tranches need (re)protection, ``removed`` ones were merged away."""

    changed: tuple[Tranche, ...]
    removed: tuple[Tranche, ...] = ()


def apply_entry_fill(
    tranches: Sequence[Tranche],
    *,
    qty: Decimal,
    price: Decimal,
    now: float,
    risk: Risk,
    rules: SymbolRules,
    new_id: int,
    venue: str,
    symbol: str,
    side: Side,
) -> EntryDecision:
    """Assign a fill that grows the position to a tranche.

    The fill joins the newest tranche while the whole position's PnL at the fill
    price is above ``-tranche_pnl_increment_pct``; at or below it the fill opens a
    new tranche. Beyond ``max_tranches`` the two least-losing tranches (at the
    fill price) are merged into the older of them.
    """
    if not tranches:
        t = new_tranche(
            id=new_id,
            venue=venue,
            symbol=symbol,
            side=side,
            index=0,
            qty=qty,
            price=price,
            now=now,
            risk=risk,
            rules=rules,
        )
        return EntryDecision(changed=(t,))
    newest = max(tranches, key=lambda t: t.index)
    if position_pnl_pct(tranches, price) > -risk.tranche_pnl_increment_pct:
        entry = average_entry([(newest.qty, newest.entry), (qty, price)])
        return EntryDecision(changed=(_repriced(newest, entry, newest.qty + qty, risk, rules),))
    opened = new_tranche(
        id=new_id,
        venue=venue,
        symbol=symbol,
        side=side,
        index=newest.index + 1,
        qty=qty,
        price=price,
        now=now,
        risk=risk,
        rules=rules,
    )
    book = [*tranches, opened]
    if len(book) <= risk.max_tranches:
        return EntryDecision(changed=(opened,))
    return _merge_least_losing(book, price, risk, rules, opened)


def _merge_least_losing(
    book: list[Tranche],
    price: Decimal,
    risk: Risk,
    rules: SymbolRules,
    opened: Tranche,
) -> EntryDecision:
    # Highest PnL first; ties broken by the newer tranche so merges stay near the top of the book.
    ranked = sorted(book, key=lambda t: (t.pnl_pct(price), t.index), reverse=True)
    a, b = ranked[0], ranked[1]
    keep, drop = (a, b) if a.index < b.index else (b, a)
    entry = average_entry([(keep.qty, keep.entry), (drop.qty, drop.entry)])
    merged = _repriced(keep, entry, keep.qty + drop.qty, risk, rules)
    deadlines = [d for d in (keep.deadline, drop.deadline) if d is not None]
    merged = replace(merged, deadline=min(deadlines) if deadlines else None)
    # A tranche that only existed inside this decision (the fresh one) has no orders to cancel;
    # when two older tranches merge, the fresh one stays and needs its own protection.
    if opened.id in (keep.id, drop.id):
        return EntryDecision(changed=(merged,), removed=() if drop.id == opened.id else (drop,))
    return EntryDecision(changed=(merged, opened), removed=(drop,))


def apply_reduction(tranches: Sequence[Tranche], qty: Decimal, rules: SymbolRules) -> EntryDecision:
    """Shrink the book by ``qty`` closed outside posmon, newest tranche first.

    Keeps the invariant that the tranches never add up to more than the live position.
    """
    left = qty
    changed: list[Tranche] = []
    removed: list[Tranche] = []
    for t in sorted(tranches, key=lambda t: t.index, reverse=True):
        if left <= 0:
            break
        take = min(t.qty, left)
        left -= take
        rest = quantize_qty(t.qty - take, rules.step_size)
        if rest > 0:
            changed.append(replace(t, qty=rest))
        else:
            removed.append(t)
    return EntryDecision(changed=tuple(changed), removed=tuple(removed))


def exit_for(
    t: Tranche,
    mark: Decimal,
    now: float,
    *,
    take_profit: bool,
    stop_loss: bool,
    timeout: bool,
) -> ExitReason | None:
    """Which emulated exit, if any, ``mark`` at ``now`` triggers; flags say which exits the daemon owns."""
    if take_profit and t.side.sign * (mark - t.tp) >= 0:
        return ExitReason.TP
    if stop_loss and t.side.sign * (t.sl - mark) >= 0:
        return ExitReason.SL
    if timeout and t.deadline is not None and now >= t.deadline:
        return ExitReason.TIMEOUT
    return None
