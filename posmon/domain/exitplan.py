"""A tranche's exit plan past one TP and one SL: a take-profit ladder, a trailing stop, a move to break-even.

The plan is fixed when the tranche is made (from ``[risk]``, ``[risk.symbols.X]`` or the operator's entry); what
it has done so far is two pieces of state on the tranche: ``level`` (ladder levels filled) and ``best_mark`` (the
most favourable mark seen, as of the last time it moved the stop). The TP and SL the tranche holds are derived from
entry, plan and that state (``planned_exits``), so a restart re-derives exactly the stop it had, never one from
the current price.

- **Ladder**: ``tp_levels`` of (pct from entry, share in percent, summing to 100). One level rests at a time (the
  next unfilled one, for its share of what is left, rounded down to the step; the last takes the rest): a level
  filled advances ``level``, the SL shrinks to what is left. Resting one limit per tranche instead of all levels
  keeps a venue's open-order count at two per tranche, and a mark that runs through a level closes it at once.
- **Trailing stop**: from ``activation_pct`` of profit on, the stop follows the best mark at ``callback_pct``
  behind it, never loosening, and moves only when the new stop is ``min_step_pct`` better than the one held (one
  cancel-replace per step on a venue that holds the stop; the state change is persisted with each move).
- **Break-even**: once ``after_tp`` levels filled, or the mark gained ``trigger_pct``, the stop moves to the
  entry plus ``offset_pct`` (to cover fees).

Every stop the plan derives is the tightest of the configured SL, the break-even stop (once earned) and the
trailing stop (once active): each only ever tightens as ``level`` and ``best_mark`` advance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import orjson

from posmon.domain.orders import Side, SymbolRules
from posmon.domain.rounding import quantize_qty, round_down, round_toward, round_up

if TYPE_CHECKING:
    from posmon.domain.tranche import Tranche

HUNDRED = Decimal(100)
# posmon moves its own stop (see ``Trailing``): its callback range is posmon's, wider than Aster's native
# TRAILING_STOP_MARKET (0.1-5 %); under 0.1 % a stop chases the spread, at 50 % it no longer protects.
CALLBACK_MIN_PCT = Decimal("0.1")
CALLBACK_MAX_PCT = Decimal("50")
MAX_LEVELS = 10


class PlanError(ValueError):
    """An exit plan that cannot be followed; ``field`` names the setting or request field at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class TpLevel:
    """One ladder level: take profit ``pct`` from the entry on ``share`` percent of the tranche."""

    pct: Decimal
    share: Decimal


@dataclass(frozen=True, slots=True)
class Trailing:
    """A stop ``callback_pct`` behind the best mark once the profit reached ``activation_pct`` (0: at once);
    moved only when the new stop is at least ``min_step_pct`` better than the held one."""

    activation_pct: Decimal
    callback_pct: Decimal
    min_step_pct: Decimal


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Stop to entry + ``offset_pct`` once ``after_tp`` ladder levels filled (0: not on fills) or the mark gained
    ``trigger_pct`` (None: not on the mark)."""

    after_tp: int
    offset_pct: Decimal
    trigger_pct: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """What a tranche exits by beyond its one TP and SL; the empty plan is today's one TP, one SL."""

    tp_levels: tuple[TpLevel, ...] = ()
    trailing: Trailing | None = None
    breakeven: BreakEven | None = None

    def __bool__(self) -> bool:
        return bool(self.tp_levels) or self.trailing is not None or self.breakeven is not None

    def to_text(self) -> str | None:
        """The store's form (None for the empty plan): compact JSON of decimal strings."""
        if not self:
            return None
        doc: dict[str, object] = {}
        if self.tp_levels:
            doc["tp"] = [[str(lv.pct), str(lv.share)] for lv in self.tp_levels]
        if (tr := self.trailing) is not None:
            doc["trail"] = [str(tr.activation_pct), str(tr.callback_pct), str(tr.min_step_pct)]
        if (be := self.breakeven) is not None:
            doc["be"] = [be.after_tp, str(be.offset_pct), None if be.trigger_pct is None else str(be.trigger_pct)]
        return orjson.dumps(doc).decode()

    def describe(self) -> str:
        """One line for logs and notices."""
        parts = []
        if self.tp_levels:
            parts.append("ladder " + " ".join(f"{pct_text(lv.pct)}%x{pct_text(lv.share)}%" for lv in self.tp_levels))
        if (tr := self.trailing) is not None:
            parts.append(f"trailing {pct_text(tr.callback_pct)}% from +{pct_text(tr.activation_pct)}%")
        if (be := self.breakeven) is not None:
            when = [f"after TP{be.after_tp}"] if be.after_tp else []
            when += [f"at +{pct_text(be.trigger_pct)}%"] if be.trigger_pct is not None else []
            parts.append(f"break-even +{pct_text(be.offset_pct)}% {' or '.join(when)}")
        return ", ".join(parts) or "one TP, one SL"


NO_PLAN = ExitPlan()


def pct_text(d: Decimal) -> str:
    return format(d.normalize(), "f")


@functools.lru_cache(maxsize=1024)
def plan_from_text(text: str | None) -> ExitPlan:
    """The plan a store row holds (one shared object per distinct text: thousands of tranches share a few)."""
    if text is None:
        return NO_PLAN
    doc = orjson.loads(text)
    levels = tuple(TpLevel(Decimal(p), Decimal(s)) for p, s in doc.get("tp", ()))
    trail = doc.get("trail")
    be = doc.get("be")
    return ExitPlan(
        tp_levels=levels,
        trailing=None if trail is None else Trailing(*(Decimal(x) for x in trail)),
        breakeven=None
        if be is None
        else BreakEven(int(be[0]), Decimal(be[1]), None if be[2] is None else Decimal(be[2])),
    )


def _decimal(value: object, field: str) -> Decimal:
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PlanError(f"{field}: expected a number, got {value!r}", field) from None
    if not d.is_finite():
        raise PlanError(f"{field}: expected a finite number, got {value!r}", field)
    return d


def make_plan(
    *,
    tp_levels: Sequence[Sequence[object]] | None = None,
    trailing_activation_pct: object = None,
    trailing_callback_pct: object = None,
    trailing_min_step_pct: object = None,
    breakeven_after_tp: object = None,
    breakeven_offset_pct: object = None,
    breakeven_trigger_pct: object = None,
    sl_pct: Decimal | None = None,
) -> ExitPlan:
    """Build and validate a plan from settings or request fields (None: not given); raises ``PlanError`` naming
    the field. The same checks serve ``[risk]``, ``[risk.symbols.X]``, the API and the CLI.

    A trailing stop needs ``trailing_callback_pct``; break-even needs ``breakeven_after_tp`` or
    ``breakeven_trigger_pct``. ``sl_pct`` (when known) bounds the callback: a trail wider than the SL would
    never tighten it at activation... it still may later, so it is allowed; only the range is enforced.
    """
    levels: tuple[TpLevel, ...] = ()
    if tp_levels:
        if not isinstance(tp_levels, Sequence) or isinstance(tp_levels, str):
            raise PlanError("tp_levels: expected a list of [pct, share] pairs", "tp_levels")
        if len(tp_levels) > MAX_LEVELS:
            raise PlanError(f"tp_levels: at most {MAX_LEVELS} levels, got {len(tp_levels)}", "tp_levels")
        out: list[TpLevel] = []
        for i, pair in enumerate(tp_levels, 1):
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise PlanError(f"tp_levels: level {i} must be [pct, share], got {pair!r}", "tp_levels")
            pct, share = _decimal(pair[0], "tp_levels"), _decimal(pair[1], "tp_levels")
            if not 0 < pct < HUNDRED:
                raise PlanError(f"tp_levels: level {i} pct {pct_text(pct)} must be > 0 and < 100", "tp_levels")
            if share <= 0:
                raise PlanError(f"tp_levels: level {i} share {pct_text(share)} must be > 0", "tp_levels")
            if out and pct <= out[-1].pct:
                raise PlanError(
                    f"tp_levels: level {i} pct {pct_text(pct)} must be above level {i - 1}'s {pct_text(out[-1].pct)}",
                    "tp_levels",
                )
            out.append(TpLevel(pct, share))
        total = sum((lv.share for lv in out), Decimal(0))
        if total != HUNDRED:
            raise PlanError(f"tp_levels: shares sum to {pct_text(total)}, expected 100", "tp_levels")
        levels = tuple(out)
    trailing = None
    if trailing_callback_pct is not None:
        cb = _decimal(trailing_callback_pct, "trailing_callback_pct")
        if not CALLBACK_MIN_PCT <= cb <= CALLBACK_MAX_PCT:
            raise PlanError(
                f"trailing_callback_pct {pct_text(cb)} is outside "
                f"{pct_text(CALLBACK_MIN_PCT)}-{pct_text(CALLBACK_MAX_PCT)} %",
                "trailing_callback_pct",
            )
        act = (
            Decimal(0)
            if trailing_activation_pct is None
            else _decimal(trailing_activation_pct, "trailing_activation_pct")
        )
        if not 0 <= act < HUNDRED:
            raise PlanError(
                f"trailing_activation_pct {pct_text(act)} must be >= 0 and < 100", "trailing_activation_pct"
            )
        step = (
            Decimal("0.1")
            if trailing_min_step_pct is None
            else _decimal(trailing_min_step_pct, "trailing_min_step_pct")
        )
        if not 0 <= step < HUNDRED:
            raise PlanError(f"trailing_min_step_pct {pct_text(step)} must be >= 0 and < 100", "trailing_min_step_pct")
        trailing = Trailing(act, cb, step)
    elif trailing_activation_pct is not None or trailing_min_step_pct is not None:
        raise PlanError("a trailing stop needs trailing_callback_pct", "trailing_callback_pct")
    breakeven = None
    if breakeven_after_tp is not None or breakeven_trigger_pct is not None:
        after = 0
        if breakeven_after_tp is not None:
            if isinstance(breakeven_after_tp, bool) or not isinstance(breakeven_after_tp, int):
                raise PlanError(
                    f"breakeven_after_tp: expected a whole number, got {breakeven_after_tp!r}", "breakeven_after_tp"
                )
            after = breakeven_after_tp
            if after < 0:
                raise PlanError(f"breakeven_after_tp {after} must be >= 0", "breakeven_after_tp")
            if after and after >= max(len(levels), 1):
                raise PlanError(
                    f"breakeven_after_tp {after} needs a ladder of more than {after} levels "
                    f"(tp_levels has {len(levels)})",
                    "breakeven_after_tp",
                )
        offset = Decimal(0) if breakeven_offset_pct is None else _decimal(breakeven_offset_pct, "breakeven_offset_pct")
        if not 0 <= offset < 10:
            raise PlanError(f"breakeven_offset_pct {pct_text(offset)} must be >= 0 and < 10", "breakeven_offset_pct")
        trigger = None if breakeven_trigger_pct is None else _decimal(breakeven_trigger_pct, "breakeven_trigger_pct")
        if trigger is not None and not offset < trigger < HUNDRED:
            raise PlanError(
                f"breakeven_trigger_pct {pct_text(trigger)} must be above breakeven_offset_pct "
                f"({pct_text(offset)}) and < 100",
                "breakeven_trigger_pct",
            )
        if not after and trigger is None:
            raise PlanError("break-even needs breakeven_after_tp > 0 or breakeven_trigger_pct", "breakeven_after_tp")
        breakeven = BreakEven(after, offset, trigger)
    elif breakeven_offset_pct is not None:
        raise PlanError(
            "breakeven_offset_pct needs breakeven_after_tp or breakeven_trigger_pct", "breakeven_offset_pct"
        )
    return ExitPlan(levels, trailing, breakeven)


# --- prices ----------------------------------------------------------------------------------------------------


def level_price(side: Side, entry: Decimal, pct: Decimal, rules: SymbolRules) -> Decimal:
    """A TP ``pct`` from ``entry``, on the tick, rounded toward the entry (never asks more than configured) and
    never at or past the entry."""
    tick = rules.tick_size
    price = round_toward(entry * (HUNDRED + side.sign * pct) / HUNDRED, tick, entry)
    if side is Side.LONG:
        return max(price, round_down(entry, tick) + tick)
    return max(min(price, round_up(entry, tick) - tick), tick)


def breakeven_stop(side: Side, entry: Decimal, offset_pct: Decimal, rules: SymbolRules) -> Decimal:
    """Entry + ``offset_pct`` in the tranche's favour, rounded away from the entry: the fees are covered at least."""
    price = entry * (HUNDRED + side.sign * offset_pct) / HUNDRED
    return (round_up if side is Side.LONG else round_down)(price, rules.tick_size)


def trailing_stop(side: Side, best: Decimal, callback_pct: Decimal, rules: SymbolRules) -> Decimal:
    """``callback_pct`` behind ``best``, rounded toward it (the give-back never exceeds the callback), and at
    least one tick behind it."""
    tick = rules.tick_size
    if side is Side.LONG:
        return max(min(round_up(best * (HUNDRED - callback_pct) / HUNDRED, tick), round_up(best, tick) - tick), tick)
    return max(round_down(best * (HUNDRED + callback_pct) / HUNDRED, tick), round_down(best, tick) + tick)


def _tighter(side: Side, a: Decimal, b: Decimal) -> Decimal:
    return max(a, b) if side is Side.LONG else min(a, b)


def _better(side: Side, a: Decimal, b: Decimal) -> bool:
    """``a`` is strictly more favourable than ``b`` for the side."""
    return side.sign * (a - b) > 0


def _gained(side: Side, entry: Decimal, mark: Decimal, pct: Decimal) -> bool:
    return side.sign * (mark - entry) * HUNDRED >= pct * entry


def breakeven_earned(t: Tranche) -> bool:
    be = t.plan.breakeven
    if be is None:
        return False
    if be.after_tp and t.level >= be.after_tp:
        return True
    return (
        be.trigger_pct is not None and t.best_mark is not None and _gained(t.side, t.entry, t.best_mark, be.trigger_pct)
    )


def trailing_active(t: Tranche) -> bool:
    tr = t.plan.trailing
    return tr is not None and t.best_mark is not None and _gained(t.side, t.entry, t.best_mark, tr.activation_pct)


def planned_exits(t: Tranche, base_sl: Decimal, rules: SymbolRules) -> tuple[Decimal, Decimal]:
    """(TP, SL) the tranche holds now: the TP of its next ladder level (its ``tp`` when it has no ladder), and the
    tightest of ``base_sl`` (the configured SL from its entry), the break-even stop once earned and the trailing
    stop once active."""
    plan = t.plan
    tp = t.tp
    if plan.tp_levels:
        lv = plan.tp_levels[min(t.level, len(plan.tp_levels) - 1)]
        tp = level_price(t.side, t.entry, lv.pct, rules)
    sl = base_sl
    if breakeven_earned(t):
        assert plan.breakeven is not None
        sl = _tighter(t.side, sl, breakeven_stop(t.side, t.entry, plan.breakeven.offset_pct, rules))
    if trailing_active(t):
        assert plan.trailing is not None and t.best_mark is not None
        sl = _tighter(t.side, sl, trailing_stop(t.side, t.best_mark, plan.trailing.callback_pct, rules))
    return tp, sl


def level_qty(t: Tranche, rules: SymbolRules) -> Decimal:
    """What the current TP (ladder level ``t.level``) closes: its share of what is left, rounded down to the step
    and at least the venue's minimum; the last level (or no ladder) takes the rest."""
    levels = t.plan.tp_levels
    if len(levels) - t.level <= 1:
        return t.qty
    left = sum((lv.share for lv in levels[t.level :]), Decimal(0))
    qty = quantize_qty(t.qty * levels[t.level].share / left, rules.step_size)
    qty = max(qty, rules.min_qty, rules.step_size)
    return t.qty if qty >= t.qty else qty


def tp_leg_covers(t: Tranche, qty: Decimal, filled: Decimal, rules: SymbolRules) -> bool:
    """Whether a resting TP leg of ``qty`` (``filled`` of it already filled) is the one ``t``'s current level wants:
    for the level's share of what ``t`` holds; or, a level partly filled, for the rest of its share, whatever that is
    below the whole tranche (the level is done when its order is; recomputing the share of the smaller tranche would
    replace the order for a slightly different quantity). One rule for the actor, ``verify`` and the chaos check."""
    left = qty - filled
    want = level_qty(t, rules)
    return left == want or (want < t.qty and filled > 0 and 0 < left < t.qty)


def is_partial(t: Tranche, rules: SymbolRules) -> bool:
    """The current TP closes only part of the tranche (a ladder level before the last)."""
    return level_qty(t, rules) < t.qty


def after_level_filled(t: Tranche, base_sl: Decimal, rules: SymbolRules) -> Tranche:
    """``t`` (already reduced by the level's fill) with its ladder advanced: the next level's TP, and the stop
    re-derived (break-even may have been earned by this level)."""
    t = replace(t, level=t.level + 1)
    tp, sl = planned_exits(t, base_sl, rules)
    return replace(t, tp=tp, sl=_tighter(t.side, sl, t.sl))


def stop_gate(t: Tranche, rules: SymbolRules) -> Decimal | None:
    """The mark at or beyond which ``moved_stop`` could move the stop (None: the plan never moves it by price).

    The nearest of: the break-even trigger (not yet earned), and for a trailing stop the mark whose stop beats
    the held one by ``min_step_pct`` (not before the activation). Watched like a TP level, so a tick that moves
    nothing costs one comparison.
    """
    plan, side, entry = t.plan, t.side, t.entry
    gates: list[Decimal] = []
    be = plan.breakeven
    if be is not None and be.trigger_pct is not None and not breakeven_earned(t):
        gates.append(entry * (HUNDRED + side.sign * be.trigger_pct) / HUNDRED)
    tr = plan.trailing
    if tr is not None:
        activation = entry * (HUNDRED + side.sign * tr.activation_pct) / HUNDRED
        # The stop moves once trailing_stop(mark) reaches ``least``: the first grid price at least min_step_pct
        # better than the held stop (and a tick better at least). trailing_stop rounds toward the mark, so any
        # mark whose raw stop lies past the grid line before ``least`` gets there: solve for that mark (a wake-up
        # gate may be early, never late).
        tick = rules.tick_size
        want = t.sl * (HUNDRED + side.sign * tr.min_step_pct) / HUNDRED
        if side is Side.LONG:
            least = max(round_up(want, tick), t.sl + tick)
            step_mark = (least - tick) * HUNDRED / (HUNDRED - tr.callback_pct)
        else:
            least = min(round_down(want, tick), t.sl - tick)
            step_mark = (least + tick) * HUNDRED / (HUNDRED + tr.callback_pct)
        gate = max(activation, step_mark) if side is Side.LONG else min(activation, step_mark)
        if t.best_mark is not None:  # beyond the best seen so far, whatever rounding said
            gate = max(gate, t.best_mark) if side is Side.LONG else min(gate, t.best_mark)
        gates.append(gate)
    if not gates:
        return None
    return min(gates) if side is Side.LONG else max(gates)


def moved_stop(t: Tranche, mark: Decimal, rules: SymbolRules) -> Tranche | None:
    """``t`` with its stop moved by ``mark`` (best mark recorded), or None when the mark moves nothing.

    Break-even moves on reaching its trigger; a trailing stop only when the new stop beats the held one by
    ``min_step_pct`` (a smaller improvement is not recorded either: it would not have moved the stop, and the
    next move starts from the mark that makes it). Never loosens.
    """
    plan = t.plan
    if plan.trailing is None and (plan.breakeven is None or plan.breakeven.trigger_pct is None):
        return None
    if t.best_mark is not None and not _better(t.side, mark, t.best_mark):
        return None
    best = mark
    moved = replace(t, best_mark=best)
    sl = t.sl
    if breakeven_earned(moved) and not breakeven_earned(t):
        assert plan.breakeven is not None
        sl = _tighter(t.side, sl, breakeven_stop(t.side, t.entry, plan.breakeven.offset_pct, rules))
    tr = plan.trailing
    if tr is not None and trailing_active(moved):
        trail = trailing_stop(t.side, best, tr.callback_pct, rules)
        step_ok = t.side.sign * (trail - t.sl) * HUNDRED >= tr.min_step_pct * t.sl
        if _better(t.side, trail, sl) and step_ok:
            sl = trail
    if sl == t.sl:
        return None
    return replace(moved, sl=sl)
