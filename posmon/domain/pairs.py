"""Hedge pairs: a leg on one venue and the opposite leg on another, sized in the same base quantity, that exit
together. Pure functions of explicit inputs; ``posmon.actors.pairs`` decides with them, persists, then acts.

Sizing (``size_pair``): the operator's base quantity is rounded DOWN to each venue's step, the smaller of the two
is the common quantity, and each leg gets the common quantity rounded down to its own step (on steps that do not
divide each other the legs may still differ, by less than the coarser step). What the rounding left out of the
request, per leg, is the residue, reported with the open.

Entries (``settle_entries``), the documented rule so that nothing is left unhedged:

1. both entries are decided and persisted first (the pair row, status ``opening``, with its legs' tranche ids and
   both pending entries in one transaction), then sent together;
2. once both have ended: both filled in full -> ``open``; one rejected (nothing filled) while the other filled ->
   the filled one is **unwound** (closed in full at market) and the pair ends ``broken``; both rejected -> ``closed``
   with nothing to do; one filled partially -> the other is **trimmed** down to the same base quantity, rounded
   down to its step, and the pair is ``open`` at the smaller size. A residue below one step of the coarser venue
   cannot be traded away and is reported (``Pair.residue``: per leg, what the request lost to rounding and
   trims), never left as a whole unhedged leg. A partial fill smaller than one step of the other venue hedges
   nothing: both legs are unwound (``broken``). A ``broken`` pair is ``closed`` once the unwind filled;
3. an entry that ends after the other leg already exited (``late_entry``) is closed at once.

A leg exit (``leg_exited``): a leg's tranche closed for any reason (TP, SL, TIMEOUT, LIQUIDATION, MANUAL, EXTERNAL).
When the leg is flat, the other leg is closed at market with the venue's bounded slippage (``on_leg_exit="close"``,
the default) or given a tight stop (``"protect"``); the pair goes ``closing`` and is ``closed`` once both legs are
flat. A partial exit leaves the legs unequal: beyond ``max_leg_imbalance_pct`` that is an alarm, and with
``auto_rebalance`` the larger leg is trimmed to the smaller.

Pair take-profit and stop-loss (``pair_exit``) act on the combined PnL at the marks (both legs' PnL plus the
funding each venue paid or charged), in quote currency or in % of the pair's notional (the mean of both legs'
entry notionals); either closes both legs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from posmon.domain.instruments import InstrumentTable
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.rounding import round_down

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class PairStatus(enum.StrEnum):
    OPENING = "opening"  # entries decided and sent, not all ended
    OPEN = "open"  # both legs hold the common quantity
    CLOSING = "closing"  # a leg exited or a pair exit fired: the other leg's (or both legs') close is out
    CLOSED = "closed"  # both legs flat
    BROKEN = "broken"  # an entry failed: the filled leg is being unwound


class OnLegExit(enum.StrEnum):
    CLOSE = "close"  # close the other leg at market (bounded slippage)
    PROTECT = "protect"  # give the other leg a tight stop instead


class PairReason(enum.StrEnum):
    """Why a pair closes, besides a leg's own exit reason (which it carries as ``LEG_<reason>``)."""

    PAIR_TP = "PAIR_TP"
    PAIR_SL = "PAIR_SL"
    ENTRY_FAILED = "ENTRY_FAILED"  # both entries rejected
    ENTRY_REJECTED = "ENTRY_REJECTED"  # one rejected: the other unwound
    MANUAL = "MANUAL"


class PairError(ValueError):
    """Pair parameters that cannot make a pair; the message is one line naming the field."""


@dataclass(frozen=True, slots=True)
class PairRules:
    """How a pair behaves; every money amount in the quote currency, percentages as numbers of per cent."""

    tp_quote: Decimal | None = None  # close both legs when the combined PnL reaches this
    sl_quote: Decimal | None = None  # ... or falls to minus this
    tp_pct: Decimal | None = None  # the same in % of the pair's notional
    sl_pct: Decimal | None = None
    on_leg_exit: OnLegExit = OnLegExit.CLOSE
    protect_stop_pct: Decimal = Decimal("0.5")  # the tight stop's distance from the mark with "protect"
    max_leg_imbalance_pct: Decimal = Decimal(1)  # 0: no alarm
    auto_rebalance: bool = False

    def check(self) -> None:
        for name in ("tp_quote", "sl_quote", "tp_pct", "sl_pct"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise PairError(f"{name}: {value} must be above 0 (leave it unset for none)")
        if not ZERO < self.protect_stop_pct < HUNDRED:
            raise PairError(f"protect_stop_pct: {self.protect_stop_pct} must be above 0 and below 100")
        if not ZERO <= self.max_leg_imbalance_pct < HUNDRED:
            raise PairError(f"max_leg_imbalance_pct: {self.max_leg_imbalance_pct} must be 0 to under 100")


@dataclass(frozen=True, slots=True)
class Leg:
    """One venue's side of a pair."""

    venue: str
    symbol: str
    side: Side
    target_qty: Decimal  # what the entry asks for (on the venue's step)
    step: Decimal  # the venue's quantity step for the symbol
    filled_qty: Decimal = ZERO  # held now (entry fills, less exits)
    entry: Decimal | None = None  # volume-weighted entry price of the fills
    tranche_ids: tuple[int, ...] = ()  # the leg's tranches (its entry's, or the linked position's)
    funding: Decimal = ZERO  # funding received (+) or paid (-) on this venue, in the quote currency
    entry_done: bool = False  # the entry has ended (filled, partially filled or rejected)
    exit_reason: str | None = None  # set once the leg went flat by an exit
    funded_at: float | None = None  # the last funding time counted in ``funding`` (epoch s): never counted twice

    @property
    def flat(self) -> bool:
        return self.filled_qty <= 0

    def pnl(self, mark: Decimal | None) -> Decimal:
        """Unrealized PnL at ``mark`` plus funding (0 without a mark or fills)."""
        if mark is None or self.entry is None or self.flat:
            return self.funding
        return self.side.sign * (mark - self.entry) * self.filled_qty + self.funding

    @property
    def notional(self) -> Decimal:
        return ZERO if self.entry is None else self.entry * self.filled_qty


@dataclass(frozen=True, slots=True)
class Pair:
    id: int
    legs: tuple[Leg, Leg]
    rules: PairRules = field(default_factory=PairRules)
    status: PairStatus = PairStatus.OPENING
    opened_at: float = 0.0
    close_reason: str | None = None
    residue: tuple[Decimal, Decimal] = (ZERO, ZERO)  # per leg: what rounding or a trim left out

    def leg_of(self, tranche_id: int) -> int | None:
        for i, leg in enumerate(self.legs):
            if tranche_id in leg.tranche_ids:
                return i
        return None

    def with_leg(self, index: int, leg: Leg) -> Pair:
        legs = (leg, self.legs[1]) if index == 0 else (self.legs[0], leg)
        return replace(self, legs=legs)

    @property
    def active(self) -> bool:
        return self.status is not PairStatus.CLOSED


def new_pair(
    pair_id: int,
    a: Leg,
    b: Leg,
    rules: PairRules | None = None,
    *,
    opened_at: float = 0.0,
    residue: tuple[Decimal, Decimal] = (ZERO, ZERO),
) -> Pair:
    """A pair of two legs on different venues and opposite sides (``PairError`` otherwise)."""
    if a.venue == b.venue:
        raise PairError(f"legs: both on {a.venue}; a pair hedges across two venues")
    if a.side == b.side:
        raise PairError(f"legs: both {a.side.value}; a pair's legs are on opposite sides")
    for leg in (a, b):
        if leg.step <= 0:
            raise PairError(f"{leg.venue} {leg.symbol}: step {leg.step} must be above 0")
    rules = rules or PairRules()
    rules.check()
    return Pair(pair_id, (a, b), rules, opened_at=opened_at, residue=residue)


# --- sizing -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizing:
    qty: tuple[Decimal, Decimal]  # each leg's quantity, on its own step
    common: Decimal  # the smaller of the two roundings of the request
    residue: tuple[Decimal, Decimal]  # request - leg quantity, per leg

    @property
    def tradable(self) -> bool:
        return self.qty[0] > 0 and self.qty[1] > 0


def size_pair(base_qty: Decimal, step_a: Decimal, step_b: Decimal) -> Sizing:
    """The same base quantity on both venues, rounded down to each step; both legs at most the smaller one."""
    if base_qty <= 0:
        raise PairError(f"qty: {base_qty} must be above 0")
    common = min(round_down(base_qty, step_a), round_down(base_qty, step_b))
    qa, qb = round_down(common, step_a), round_down(common, step_b)
    return Sizing((qa, qb), common, (base_qty - qa, base_qty - qb))


@dataclass(frozen=True, slots=True)
class PairPlan:
    """The two legs an open request makes (not yet entered) and how the request was sized."""

    legs: tuple[Leg, Leg]
    sizing: Sizing


def plan_legs(
    table: InstrumentTable,
    rules: Mapping[str, Mapping[str, SymbolRules]],
    venue: str,
    symbol: str,
    side: Side,
    other_venue: str,
    base_qty: Decimal,
    *,
    mark: Decimal | None = None,
) -> PairPlan:
    """A pair request (``side`` on ``venue``'s ``symbol``, the opposite side of the same asset on ``other_venue``)
    sized on both venues' steps; ``PairError`` (one line naming the field) when it cannot be a pair: no counterpart,
    a leg below its venue's minimum quantity or (with ``mark``) minimum notional.

    ``rules``: venue -> symbol -> the venue's published filters; ``table`` maps the asset across venues
    (``InstrumentTable.counterpart``, its ``InstrumentError`` is a ``ValueError`` the caller shows as it is)."""
    other_symbol = table.counterpart(venue, symbol, other_venue)
    ra, rb = rules[venue][symbol], rules[other_venue][other_symbol]
    sizing = size_pair(base_qty, ra.step_size, rb.step_size)
    for qty, r, v in ((sizing.qty[0], ra, venue), (sizing.qty[1], rb, other_venue)):
        if qty <= 0 or qty < r.min_qty:
            raise PairError(
                f"qty: {base_qty} is {qty} on {v} {r.symbol} (step {r.step_size}), below its minimum "
                f"{max(r.min_qty, r.step_size)}"
            )
        if mark is not None and r.min_notional > 0 and qty * mark < r.min_notional:
            raise PairError(f"qty: {qty} {r.symbol} is {qty * mark} at the mark, below {v}'s minimum {r.min_notional}")
    other_side = Side.SHORT if side is Side.LONG else Side.LONG
    a = Leg(venue, symbol, side, sizing.qty[0], ra.step_size)
    b = Leg(other_venue, other_symbol, other_side, sizing.qty[1], rb.step_size)
    return PairPlan((a, b), sizing)


def matched(qty: Decimal, other: Decimal, step: Decimal) -> Decimal:
    """The most of a leg that hedges ``other``: ``min(qty, other)`` rounded down to this leg's step."""
    return round_down(min(qty, other), step)


# --- entries ------------------------------------------------------------------------------------------------------


class Act(enum.StrEnum):
    """What the coordinator sends to one leg's position actor."""

    CLOSE = "close"  # close the leg's tranches in full at market
    TRIM = "trim"  # close ``qty`` of the leg at market
    PROTECT = "protect"  # a tight stop on the leg's tranches


@dataclass(frozen=True, slots=True)
class LegCommand:
    leg: int
    act: Act
    reason: str
    qty: Decimal = ZERO  # TRIM: how much to close


@dataclass(frozen=True, slots=True)
class Settlement:
    """The pair after an entry ended, and what the legs must be sent (nothing until both entries ended)."""

    pair: Pair
    commands: tuple[LegCommand, ...] = ()


def entry_ended(pair: Pair, index: int, filled_qty: Decimal, price: Decimal | None, tranche_id: int | None) -> Pair:
    """Record one leg's entry outcome (``filled_qty`` 0 for a rejection)."""
    leg = pair.legs[index]
    ids = leg.tranche_ids if tranche_id is None or tranche_id in leg.tranche_ids else (*leg.tranche_ids, tranche_id)
    return pair.with_leg(
        index,
        replace(leg, filled_qty=filled_qty, entry=price if filled_qty > 0 else None, entry_done=True, tranche_ids=ids),
    )


def late_entry(
    pair: Pair, index: int, filled_qty: Decimal, price: Decimal | None, tranche_id: int | None
) -> Settlement:
    """An entry that ended after its pair began closing (the other leg exited first): what it filled is closed
    at once, so the closing pair never keeps a leg."""
    pair = entry_ended(pair, index, filled_qty, price, tranche_id)
    if pair.status not in (PairStatus.CLOSING, PairStatus.BROKEN):
        return Settlement(pair)
    if filled_qty <= 0:
        done = all(leg.flat and leg.entry_done for leg in pair.legs)
        return Settlement(replace(pair, status=PairStatus.CLOSED) if done else pair)
    return Settlement(pair, (LegCommand(index, Act.CLOSE, pair.close_reason or PairReason.ENTRY_REJECTED),))


def settle_entries(pair: Pair) -> Settlement:
    """The entry rule (module docstring) once both entries have ended; the pair unchanged before."""
    if pair.status is not PairStatus.OPENING or not all(leg.entry_done for leg in pair.legs):
        return Settlement(pair)
    a, b = pair.legs
    if a.flat and b.flat:
        return Settlement(replace(pair, status=PairStatus.CLOSED, close_reason=PairReason.ENTRY_FAILED))
    if a.flat or b.flat:
        filled = 1 if a.flat else 0
        return Settlement(
            replace(pair, status=PairStatus.BROKEN, close_reason=PairReason.ENTRY_REJECTED),
            (LegCommand(filled, Act.CLOSE, PairReason.ENTRY_REJECTED),),
        )
    keep = (matched(a.filled_qty, b.filled_qty, a.step), matched(b.filled_qty, a.filled_qty, b.step))
    commands = tuple(
        LegCommand(i, Act.TRIM, "TRIM", leg.filled_qty - keep[i])
        for i, leg in enumerate(pair.legs)
        if leg.filled_qty > keep[i]
    )
    if any(k <= 0 for k in keep):  # the smaller fill is below the other venue's step: nothing can be hedged
        return Settlement(
            replace(pair, status=PairStatus.BROKEN, close_reason=PairReason.ENTRY_REJECTED),
            tuple(LegCommand(i, Act.CLOSE, PairReason.ENTRY_REJECTED) for i in (0, 1)),
        )
    # The trims are decided here: the legs hold the kept quantity from now on (the trim closes the rest).
    legs = (replace(a, filled_qty=keep[0]), replace(b, filled_qty=keep[1]))
    residue = (pair.residue[0] + a.target_qty - keep[0], pair.residue[1] + b.target_qty - keep[1])
    return Settlement(replace(pair, legs=legs, status=PairStatus.OPEN, residue=residue), commands)


# --- leg exits ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExitDecision:
    pair: Pair
    commands: tuple[LegCommand, ...] = ()
    imbalance_alarm: bool = False


def leg_exited(pair: Pair, tranche_id: int, reason: str, qty: Decimal | None, *, partial: bool = False) -> ExitDecision:
    """Leg tranche ``tranche_id`` closed by ``reason`` (``qty``: how much; None: the whole tranche, i.e. the leg's
    share of it); ``partial``: only ``qty`` of it closed and the tranche holds the rest (a ladder level, a trim).
    The other leg's close (or stop) when this leg went flat; the imbalance check otherwise."""
    index = pair.leg_of(tranche_id)
    if index is None or not pair.active or (partial and not qty):
        return ExitDecision(pair)
    leg = pair.legs[index]
    ids = leg.tranche_ids if partial else tuple(t for t in leg.tranche_ids if t != tranche_id)
    # With another tranche of the leg left (or this one, after a partial close), only what closed is gone.
    kept = leg.filled_qty if qty is None else max(ZERO, leg.filled_qty - qty)
    left = kept if ids else ZERO
    # A tranche of the leg exists, so its entry has ended (a restored pair may not have heard it yet).
    leg = replace(
        leg, tranche_ids=ids, filled_qty=left, exit_reason=reason if left <= 0 else leg.exit_reason, entry_done=True
    )
    pair = pair.with_leg(index, leg)
    other_i = 1 - index
    other = pair.legs[other_i]
    if leg.flat:
        if other.flat and other.entry_done:  # an entry still out may fill yet: the pair is closing, not closed
            return ExitDecision(
                replace(pair, status=PairStatus.CLOSED, close_reason=pair.close_reason or f"LEG_{reason}")
            )
        if pair.status in (PairStatus.CLOSING, PairStatus.BROKEN):
            return ExitDecision(pair)  # the other leg's close is already out
        act = Act.PROTECT if pair.rules.on_leg_exit is OnLegExit.PROTECT else Act.CLOSE
        return ExitDecision(
            replace(pair, status=PairStatus.CLOSING, close_reason=f"LEG_{reason}"),
            (LegCommand(other_i, act, f"LEG_{reason}"),),
        )
    return rebalance(pair)


def rebalance(pair: Pair) -> ExitDecision:
    """The imbalance check of an open pair: an alarm past the limit, and with ``auto_rebalance`` a trim of the
    larger leg down to the smaller (rounded down to its step)."""
    if pair.status is not PairStatus.OPEN or not breaches(pair):
        return ExitDecision(pair)
    if not pair.rules.auto_rebalance:
        return ExitDecision(pair, imbalance_alarm=True)
    a, b = pair.legs
    big = 0 if a.filled_qty > b.filled_qty else 1
    keep = matched(pair.legs[big].filled_qty, pair.legs[1 - big].filled_qty, pair.legs[big].step)
    cut = pair.legs[big].filled_qty - keep
    if cut <= 0:
        return ExitDecision(pair, imbalance_alarm=True)
    pair = pair.with_leg(big, replace(pair.legs[big], filled_qty=keep))
    return ExitDecision(pair, (LegCommand(big, Act.TRIM, "REBALANCE", cut),), imbalance_alarm=True)


def imbalance_pct(pair: Pair) -> Decimal:
    """|A - B| in % of the larger leg (0 when both are flat)."""
    a, b = (leg.filled_qty for leg in pair.legs)
    big = max(a, b)
    return ZERO if big <= 0 else abs(a - b) / big * HUNDRED


def breaches(pair: Pair) -> bool:
    limit = pair.rules.max_leg_imbalance_pct
    return limit > 0 and imbalance_pct(pair) > limit


# --- PnL and pair exits -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairPnl:
    legs: tuple[Decimal, Decimal]  # each leg's PnL at its mark, funding included
    combined: Decimal
    pct: Decimal | None  # of the pair's notional; None without one


def pair_pnl(pair: Pair, marks: Mapping[int, Decimal | None]) -> PairPnl:
    """Per-leg and combined PnL; ``marks`` by leg index (a leg without a mark counts its funding only)."""
    legs = (pair.legs[0].pnl(marks.get(0)), pair.legs[1].pnl(marks.get(1)))
    combined = legs[0] + legs[1]
    notional = (pair.legs[0].notional + pair.legs[1].notional) / 2
    return PairPnl(legs, combined, combined / notional * HUNDRED if notional > 0 else None)


def pair_exit(pair: Pair, marks: Mapping[int, Decimal | None]) -> str | None:
    """``PAIR_TP`` or ``PAIR_SL`` when the combined PnL reached a pair-level target; None otherwise.

    Judged only with both marks known: one leg's PnL alone is not the pair's."""
    if pair.status is not PairStatus.OPEN or any(marks.get(i) is None for i in (0, 1)):
        return None
    pnl, r = pair_pnl(pair, marks), pair.rules
    if (r.tp_quote is not None and pnl.combined >= r.tp_quote) or (
        r.tp_pct is not None and pnl.pct is not None and pnl.pct >= r.tp_pct
    ):
        return PairReason.PAIR_TP
    if (r.sl_quote is not None and pnl.combined <= -r.sl_quote) or (
        r.sl_pct is not None and pnl.pct is not None and pnl.pct <= -r.sl_pct
    ):
        return PairReason.PAIR_SL
    return None


def close_pair(pair: Pair, reason: str) -> ExitDecision:
    """Close both legs (a pair TP/SL or the operator): each leg that still holds anything is closed."""
    if pair.status in (PairStatus.CLOSED, PairStatus.CLOSING):
        return ExitDecision(pair)
    commands = tuple(LegCommand(i, Act.CLOSE, reason) for i, leg in enumerate(pair.legs) if not leg.flat)
    status = PairStatus.CLOSING if commands else PairStatus.CLOSED
    return ExitDecision(replace(pair, status=status, close_reason=reason), commands)


def add_funding(pair: Pair, index: int, amount: Decimal, at: float | None = None) -> Pair | None:
    """A funding payment on leg ``index``'s venue: + received, - paid. ``at``, the funding time it is for, keys it:
    a time not after the leg's ``funded_at`` was counted already (None: a payment without a time, always added)."""
    leg = pair.legs[index]
    if at is not None and leg.funded_at is not None and at <= leg.funded_at:
        return None
    funded_at = leg.funded_at if at is None else at
    return pair.with_leg(index, replace(leg, funding=leg.funding + amount, funded_at=funded_at))


# --- funding estimated from the venue's rate ------------------------------------------------------------------------

FUNDING_SOURCE = "estimated from the venue's funding rate"  # the venue's ledger is the truth; posmon does not read it


def funding_payment(side: Side, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What a position of ``qty`` gets at one funding time: ``qty * mark * rate``, paid by longs when the rate is
    positive (received by shorts), the other way when negative; + received, - paid, in the quote currency, exact
    (no rounding: the venue rounds its own ledger)."""
    return -side.sign * qty * mark * rate


@dataclass(frozen=True, slots=True)
class FundingDue:
    """A funding time passed on a symbol: ``rate`` was in force for it, ``mark`` is the first mark at or after it."""

    time: float
    rate: Decimal
    mark: Decimal


@dataclass(frozen=True, slots=True)
class FundingWatch:
    """One symbol's funding schedule as its marks announce it: the rate in force, the next funding time, and the
    last funding time seen passing (an announcement not after it is stale)."""

    rate: Decimal | None = None
    next_time: float | None = None
    passed: float | None = None

    def see(
        self, time: float, mark: Decimal, rate: Decimal | None, next_time: float | None
    ) -> tuple[FundingWatch, FundingDue | None]:
        """The watch after a mark at ``time`` (carrying ``rate``/``next_time``, or None), and the funding time it
        shows passed: the mark's time reached the announced time, or the mark announces a later one. The rate in
        force is the last announced before that time. Only marks seen count: a funding time passed while posmon
        saw no mark (down, or started after it) is not estimated."""
        watch, due = self, None
        at, rate_then = self.next_time, self.rate
        if at is not None and rate_then is not None and (time >= at or (next_time is not None and next_time > at)):
            due = FundingDue(at, rate_then, mark)
            watch = FundingWatch(passed=at)
        if rate is None or next_time is None:
            return watch, due
        if watch.passed is not None and next_time <= watch.passed:
            return watch, due  # still announcing a time already passed
        if watch.next_time is not None and next_time < watch.next_time:
            return watch, due  # an older frame arriving late does not move the schedule back
        return FundingWatch(rate, next_time, watch.passed), due
