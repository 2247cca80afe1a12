"""The gaps between what posmon's store says and what the exchange holds: a pure comparison.

It applies the daemon's own start-up reconciliation rules (``PositionActor._reconcile_once``), so that
``posmon verify`` reports exactly what the daemon would repair and nothing it would leave alone:

- per (symbol, side) the open tranches add up to the live position (``_check_position_size``);
- every held tranche has one current TP and one current SL resting, at its own prices (``_ensure_protected``;
  "current" = the newest seq the store knows and has not asked to cancel): the SL for exactly its quantity, the
  TP for what its current ladder level closes (``tp_leg_qty``: the whole tranche without a ladder);
- a resting order with posmon's prefix that the store does not hold as an active order of an open
  tranche is an orphan (``_cancel_orphans``), and so is an older leg superseded by a newer one;
- a symbol the operator stopped monitoring (the store's ``unmonitored``) is the operator's: its positions
  are not posmon's to cover (the daemon never re-adopts them);
- where posmon emulates exits itself (Lighter) no TP/SL may rest at all, and each tranche needs its TP,
  SL (and deadline, with a hold limit) set, on the right sides of its entry; a stop its exit plan moved to the
  entry or past it (break-even, trailing) is on the right side (``plan_moved_stop``).

Entry orders (``<prefix>-<id>-E<n>``) are the operator's, placed before their tranche exists: never
orphans here.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posmon.domain.exitplan import level_qty, planned_exits, tp_leg_covers
from posmon.domain.orders import OrderRequest, OrderState, PositionState, Purpose, Side, SymbolRules
from posmon.domain.protection import LocalState, OrderRecord, parse_client_order_id, reround_exit
from posmon.domain.tranche import Tranche

ZERO = Decimal(0)


class GapKind(enum.StrEnum):
    UNKNOWN_POSITION = "unknown_position"  # a position no open tranche covers at all
    UNDER_COVERED = "under_covered"  # the tranches add up to less than the position
    OVER_COVERED = "over_covered"  # the tranches add up to more than the position
    NO_POSITION = "no_position"  # an open tranche whose (symbol, side) holds nothing on the exchange
    MISSING_TP = "missing_tp"
    MISSING_SL = "missing_sl"
    WRONG_SIZE = "wrong_size"  # an SL leg covering more or less than its tranche, a TP more or less than its level
    WRONG_PRICE = "wrong_price"  # a TP/SL leg not at its tranche's TP/SL
    ORPHAN_ORDER = "orphan_order"  # a posmon order protecting no open tranche, or a superseded duplicate
    CLOSING_STUCK = "closing_stuck"  # a close was started and has not finished
    EXITS_UNSET = "exits_unset"  # emulated exits: TP, SL or deadline not set (or on the wrong side)
    STALE_LEG = "stale_leg"  # emulated exits: a posmon TP/SL order resting on the exchange

    @property
    def position_level(self) -> bool:
        return self in (GapKind.UNKNOWN_POSITION, GapKind.UNDER_COVERED, GapKind.OVER_COVERED)


@dataclass(frozen=True, slots=True)
class Gap:
    """One discrepancy; ``qty`` is the quantity at stake (uncovered, excess, unprotected or orphaned)."""

    kind: GapKind
    symbol: str
    side: Side | None
    detail: str
    tranche_id: int | None = None
    client_id: str | None = None
    purpose: Purpose | None = None
    qty: Decimal | None = None
    expected: Decimal | None = None
    actual: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "symbol": self.symbol,
            "side": None if self.side is None else self.side.value,
            "detail": self.detail,
        }
        for name in ("tranche_id", "client_id"):
            if (v := getattr(self, name)) is not None:
                out[name] = v
        if self.purpose is not None:
            out["purpose"] = self.purpose.name
        for name in ("qty", "expected", "actual"):
            if (v := getattr(self, name)) is not None:
                out[name] = _plain(v)
        return out


@dataclass(frozen=True, slots=True)
class Book:
    """posmon's side: open tranches (held and closing) and every active order record of the venue."""

    tranches: Sequence[Tranche]
    orders: Sequence[OrderRecord]
    unmonitored: frozenset[str] = frozenset()  # symbols the operator stopped monitoring


@dataclass(frozen=True, slots=True)
class Account:
    """The exchange's side: non-zero positions and every open order of the account."""

    positions: Sequence[PositionState]
    open_orders: Sequence[OrderState]


def _plain(d: Decimal | None) -> str:
    return format(d.normalize(), "f") if d else "0"


Key = tuple[str, Side]


def find_gaps(
    book: Book,
    account: Account,
    *,
    prefix: str,
    hedge_mode: bool,
    emulated_exits: bool = False,
    rules: Mapping[str, SymbolRules] | None = None,
    max_hold_of: Callable[[str], int] | None = None,
) -> list[Gap]:
    """Every gap, positions first, then per tranche, then orphans; deterministic order."""
    tranches = {t.id: t for t in book.tranches}
    records = {o.client_id: o for o in book.orders if o.active}
    legs: dict[tuple[int, Purpose], list[tuple[int, OrderState]]] = defaultdict(list)
    orphans: list[Gap] = []
    for o in sorted(account.open_orders, key=lambda o: o.client_id):
        parsed = parse_client_order_id(prefix, o.client_id)
        if parsed is None or parsed[1] is Purpose.ENTRY:
            continue
        tid, purpose, seq = parsed
        t = tranches.get(tid)
        if emulated_exits and purpose in (Purpose.TP, Purpose.SL):
            orphans.append(
                _order_gap(GapKind.STALE_LEG, o, t, purpose, "posmon emulates exits on this venue; no TP/SL may rest")
            )
            continue
        why = _not_protecting(o, t, records.get(o.client_id), purpose, hedge_mode)
        if why is not None:
            orphans.append(_order_gap(GapKind.ORPHAN_ORDER, o, t, purpose, why))
        elif purpose is not Purpose.CLOSE:
            legs[(tid, purpose)].append((seq, o))
    positions = [p for p in account.positions if p.symbol not in book.unmonitored]
    gaps = _position_gaps(book.tranches, positions)
    for t in sorted(book.tranches, key=lambda t: t.id):
        if t.closing:
            gaps.append(
                Gap(
                    GapKind.CLOSING_STUCK,
                    t.symbol,
                    t.side,
                    f"tranche {t.id} ({_plain(t.qty)}) has been closing ({t.closing}) without finishing",
                    tranche_id=t.id,
                    qty=t.qty,
                )
            )
        elif emulated_exits:
            gaps += _emulated_gaps(t, (max_hold_of or (lambda _s: 0))(t.symbol), (rules or {}).get(t.symbol))
        else:
            for purpose in (Purpose.TP, Purpose.SL):
                found = sorted(legs.get((t.id, purpose), []), key=lambda x: x[0])
                gaps += _leg_gaps(t, purpose, [o for _, o in found], (rules or {}).get(t.symbol))
    return gaps + orphans


def _not_protecting(
    o: OrderState, t: Tranche | None, rec: OrderRecord | None, purpose: Purpose, hedge_mode: bool
) -> str | None:
    """Why a posmon order on the exchange protects nothing (None when it may be a live leg)."""
    if t is None:
        return "its tranche is not open" if rec is not None else "its tranche is not open and the store has no record"
    if rec is None:
        return "the store has no active record of it (the daemon cancels it)"
    if rec.state is LocalState.CANCELING:
        return "a cancel was decided but it still rests"
    if o.side is not t.side.closing_order_side or o.position_side != (t.side.value if hedge_mode else "BOTH"):
        return f"{o.side.value}/{o.position_side} does not close a {t.side.value} tranche"
    if purpose is Purpose.CLOSE and not t.closing:
        return "a close order of a tranche that is not closing"
    if purpose is not Purpose.CLOSE and t.closing:
        return f"its tranche is closing ({t.closing})"
    return None


def _order_gap(kind: GapKind, o: OrderState, t: Tranche | None, purpose: Purpose, why: str) -> Gap:
    side = t.side if t is not None else None
    return Gap(
        kind,
        o.symbol,
        side,
        f"{o.client_id} ({purpose.name} {o.type.value} {_plain(o.qty - o.filled_qty)}): {why}",
        tranche_id=t.id if t else None,
        client_id=o.client_id,
        purpose=purpose,
        qty=o.qty - o.filled_qty,
    )


def _position_gaps(tranches: Sequence[Tranche], positions: Sequence[PositionState]) -> list[Gap]:
    held: dict[Key, PositionState] = {(p.symbol, p.side): p for p in positions if p.qty}
    mine: dict[Key, list[Tranche]] = defaultdict(list)
    for t in tranches:
        mine[(t.symbol, t.side)].append(t)
    gaps: list[Gap] = []
    for key in sorted(held.keys() | mine.keys()):
        symbol, side = key
        pos = held.get(key)
        have = pos.qty if pos is not None else ZERO
        tracked = sum((t.qty for t in mine.get(key, [])), ZERO)
        if have == tracked:
            continue
        if not tracked:
            assert pos is not None  # held != tracked == 0
            gaps.append(
                Gap(
                    GapKind.UNKNOWN_POSITION,
                    symbol,
                    side,
                    f"{_plain(have)} held @ {_plain(pos.entry_price)} and no tranche covers it: unprotected",
                    qty=have,
                    expected=have,
                    actual=ZERO,
                )
            )
        elif not have:
            for t in sorted(mine[key], key=lambda t: t.id):
                gaps.append(
                    Gap(
                        GapKind.NO_POSITION,
                        symbol,
                        side,
                        f"tranche {t.id} ({_plain(t.qty)}) but the exchange holds no position",
                        tranche_id=t.id,
                        qty=t.qty,
                        expected=ZERO,
                        actual=t.qty,
                    )
                )
        elif have > tracked:
            gaps.append(
                Gap(
                    GapKind.UNDER_COVERED,
                    symbol,
                    side,
                    f"{_plain(have)} held, tranches cover {_plain(tracked)}: {_plain(have - tracked)} unprotected",
                    qty=have - tracked,
                    expected=have,
                    actual=tracked,
                )
            )
        else:
            gaps.append(
                Gap(
                    GapKind.OVER_COVERED,
                    symbol,
                    side,
                    f"{_plain(have)} held, tranches claim {_plain(tracked)}: {_plain(tracked - have)} too much",
                    qty=tracked - have,
                    expected=have,
                    actual=tracked,
                )
            )
    return gaps


def tp_leg_qty(t: Tranche, rules: SymbolRules | None) -> Decimal | None:
    """What the tranche's TP leg closes, as the daemon sizes it: its current ladder level's share
    (``exitplan.level_qty``), the whole tranche without a ladder or on its last level; None when a level's share
    cannot be known (no trading rules for the symbol, so no step to round it to)."""
    if len(t.plan.tp_levels) - t.level <= 1:
        return t.qty
    return None if rules is None else level_qty(t, rules)


def plan_moved_stop(t: Tranche, rules: SymbolRules | None) -> bool:
    """``t.sl`` may sit at or beyond the entry because its exit plan put it there: the plan's break-even is
    earned or its trailing stop active, and the SL is no tighter than the stop the plan derives from the
    tranche's state (``planned_exits``; a trailing stop moved in steps may lag it, never lead it)."""
    plan = t.plan
    if rules is None or not t.sl or (plan.breakeven is None and plan.trailing is None):
        return False
    loosest = ZERO if t.side is Side.LONG else Decimal("Infinity")  # no configured SL: only the plan's stops
    stop = planned_exits(t, loosest, rules)[1]
    return stop != loosest and t.side.sign * (t.sl - stop) <= 0


def sl_ok(t: Tranche, rules: SymbolRules | None) -> bool:
    """The SL is set on the loss side of the entry, or where the tranche's exit plan moved it."""
    return bool(t.sl) and (t.side.sign * (t.entry - t.sl) > 0 or plan_moved_stop(t, rules))


def _level_text(t: Tranche) -> str:
    """`` (level 2 of 3)`` for a ladder tranche's TP, else nothing."""
    n = len(t.plan.tp_levels)
    return f" (level {min(t.level + 1, n)} of {n})" if n > 1 else ""


def _leg_gaps(t: Tranche, purpose: Purpose, found: list[OrderState], rules: SymbolRules | None) -> list[Gap]:
    """The newest leg of a purpose is the tranche's; older ones are superseded duplicates."""
    name = purpose.name
    want_qty = t.qty if purpose is Purpose.SL else tp_leg_qty(t, rules)
    level = _level_text(t) if purpose is Purpose.TP else ""
    if not found:
        kind = GapKind.MISSING_TP if purpose is Purpose.TP else GapKind.MISSING_SL
        return [
            Gap(
                kind,
                t.symbol,
                t.side,
                f"tranche {t.id} ({_plain(t.qty)}) has no {name}{level} resting",
                tranche_id=t.id,
                purpose=purpose,
                qty=t.qty if want_qty is None else want_qty,
            )
        ]
    *older, cur = found
    gaps = [
        Gap(
            GapKind.ORPHAN_ORDER,
            o.symbol,
            t.side,
            f"{o.client_id} ({name}): superseded by {cur.client_id}",
            tranche_id=t.id,
            client_id=o.client_id,
            purpose=purpose,
            qty=o.qty - o.filled_qty,
        )
        for o in older
    ]
    left = cur.qty - cur.filled_qty
    covered = left == want_qty or (
        purpose is Purpose.TP
        and rules is not None
        and bool(t.plan.tp_levels)
        and tp_leg_covers(t, cur.qty, cur.filled_qty, rules)  # a level partly filled rests for the rest of its share
    )
    if want_qty is not None and not covered:
        holds = (
            f"tranche {t.id}{level} closes {_plain(want_qty)} of {_plain(t.qty)}"
            if want_qty != t.qty
            else f"tranche {t.id} holds {_plain(t.qty)}"
        )
        gaps.append(
            Gap(
                GapKind.WRONG_SIZE,
                t.symbol,
                t.side,
                f"{name} {cur.client_id} covers {_plain(left)}, {holds}",
                tranche_id=t.id,
                client_id=cur.client_id,
                purpose=purpose,
                qty=want_qty,
                expected=want_qty,
                actual=left,
            )
        )
    want = t.tp if purpose is Purpose.TP else t.sl
    price = cur.price if purpose is Purpose.TP else cur.stop_price
    if not _same_price(price, want, cur, rules):
        gaps.append(
            Gap(
                GapKind.WRONG_PRICE,
                t.symbol,
                t.side,
                f"{name} {cur.client_id} at {price}, tranche {t.id}'s {name}{level} is {_plain(want)}",
                tranche_id=t.id,
                client_id=cur.client_id,
                purpose=purpose,
                qty=t.qty,
                expected=want,
                actual=price,
            )
        )
    return gaps


def _same_price(price: Decimal | None, want: Decimal, o: OrderState, rules: SymbolRules | None) -> bool:
    """Equal, or what the gateway's safe-direction re-rounding makes of the tranche's price on today's grid."""
    if price is None:
        return False
    if price == want:
        return True
    if rules is None:
        return False
    ask = OrderRequest(
        client_id=o.client_id,
        symbol=o.symbol,
        side=o.side,
        position_side=o.position_side,
        type=o.type,
        qty=o.qty,
        price=want if o.price is not None else None,
        stop_price=want if o.stop_price is not None else None,
    )
    fixed = reround_exit(ask, rules)
    return price in (fixed.price, fixed.stop_price)


def _emulated_gaps(t: Tranche, max_hold: int, rules: SymbolRules | None) -> list[Gap]:
    """posmon watches TP, SL and the hold time itself: all three must be set, on the right sides of the entry
    (a stop the tranche's plan moved to break-even or trailed past the entry is on the right side)."""
    sign = t.side.sign
    bad = []
    if not t.tp or sign * (t.tp - t.entry) <= 0:
        bad.append(f"TP {_plain(t.tp)}")
    if not sl_ok(t, rules):
        bad.append(f"SL {_plain(t.sl)}")
    if max_hold > 0 and t.deadline is None:
        bad.append("no deadline")
    if not bad:
        return []
    return [
        Gap(
            GapKind.EXITS_UNSET,
            t.symbol,
            t.side,
            f"tranche {t.id} (entry {_plain(t.entry)}): {', '.join(bad)}",
            tranche_id=t.id,
            qty=t.qty,
        )
    ]
