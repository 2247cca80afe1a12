"""The repair plan for a set of gaps: which tranches to adopt, resize or close, which legs to place and
which orders to cancel. Pure: the clock and the tranche-id source are passed in, so ``--dry-run`` can
build the same plan without writing anything.

The plan follows the daemon's rules: an adopted position is an entry fill at the price implied by the
exchange's average entry (``apply_entry_fill``), an excess is shed newest tranche first
(``apply_reduction``), legs come from ``protection_orders`` (ids, prices and a ladder level's TP quantity as the
daemon makes them), and a wrong leg is cancelled only after its replacement is confirmed live (no unprotected
gap).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from posmon.domain.exitplan import planned_exits
from posmon.domain.orders import OrderState, PositionState, Purpose, Side, SymbolRules, WorkingType
from posmon.domain.protection import OrderRecord, parse_client_order_id, protection_orders
from posmon.domain.tranche import (
    ExitReason,
    Risk,
    Tranche,
    apply_entry_fill,
    apply_reduction,
    exit_prices,
    implied_entry,
)
from posmon.ops.gaps import Account, Book, Gap, GapKind, _plain, sl_ok, tp_leg_qty
from posmon.store.store import Changes, Event

_LEG_GAPS = {GapKind.MISSING_TP, GapKind.MISSING_SL, GapKind.WRONG_SIZE, GapKind.WRONG_PRICE}


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What the planner needs to know besides the two books."""

    venue: str
    prefix: str
    hedge_mode: bool
    rules: Mapping[str, SymbolRules]
    risk_of: Callable[[str], Risk]
    working_type_of: Callable[[str], WorkingType]
    now: float
    new_id: Callable[[], int]  # the store's allocator, or a provisional counter for a dry run
    emulated_exits: bool = False
    taken: Callable[[str], bool] = lambda _cid: False  # a client id the store already knows (venues refuse reuse)


@dataclass(frozen=True, slots=True)
class Step:
    """One action, as the operator reads it."""

    action: str  # adopt, extend, resize, close_tranche, set_exits, place, cancel, skip
    symbol: str
    side: Side | None
    detail: str
    tranche_id: int | None = None
    client_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "symbol": self.symbol,
            "side": None if self.side is None else self.side.value,
            "detail": self.detail,
        }
        if self.tranche_id is not None:
            out["tranche_id"] = self.tranche_id
        if self.client_id is not None:
            out["client_id"] = self.client_id
        return out


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel one order, but only once every order in ``after`` (its replacement) is confirmed live."""

    symbol: str
    client_id: str
    after: tuple[str, ...] = ()


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)  # written before anything is sent
    place: list[tuple[OrderRecord, ...]] = field(default_factory=list)  # one group per tranche
    cancels: list[Cancel] = field(default_factory=list)

    @property
    def actions(self) -> list[Step]:
        return [s for s in self.steps if s.action != "skip"]


def plan_repairs(gaps: Sequence[Gap], book: Book, account: Account, ctx: PlanContext) -> Plan:
    return _Planner(book, account, ctx).run(gaps)


class _Planner:
    def __init__(self, book: Book, account: Account, ctx: PlanContext) -> None:
        self.ctx = ctx
        self.plan = Plan()
        self.tranches: dict[int, Tranche] = {t.id: t for t in book.tranches}
        self.positions: dict[tuple[str, Side], PositionState] = {(p.symbol, p.side): p for p in account.positions}
        self.resting: dict[int, list[tuple[Purpose, OrderState]]] = defaultdict(list)
        self.resting_ids = {o.client_id for o in account.open_orders}
        for o in account.open_orders:
            parsed = parse_client_order_id(ctx.prefix, o.client_id)
            if parsed is not None and parsed[1] is not Purpose.ENTRY:
                self.resting[parsed[0]].append((parsed[1], o))
        self.dirty: dict[int, Tranche] = {}  # tranches to write
        self.fresh: set[int] = set()  # tranches whose quantity changed: both legs are renewed
        self.merged_into: dict[int, int] = {}
        self.cancelling: set[str] = set()

    def run(self, gaps: Sequence[Gap]) -> Plan:
        for g in gaps:
            if g.kind.position_level:
                self._position(g)
        for g in gaps:
            if g.kind is GapKind.NO_POSITION and g.tranche_id in self.tranches:
                self._close(self.tranches[g.tranche_id], ExitReason.EXTERNAL, "the exchange holds no position")
        for g in gaps:
            if g.kind in (GapKind.ORPHAN_ORDER, GapKind.STALE_LEG) and g.client_id:
                self._cancel(g.symbol, g.side, g.client_id, g.tranche_id, g.detail.split(": ", 1)[-1])
            elif g.kind is GapKind.CLOSING_STUCK and g.tranche_id in self.tranches:
                self._step(
                    "skip",
                    g.symbol,
                    g.side,
                    f"{g.detail}: left to the daemon, which continues the close at start-up",
                    g.tranche_id,
                )
            elif g.kind is GapKind.EXITS_UNSET and g.tranche_id in self.tranches:
                self._set_exits(self.tranches[g.tranche_id])
        if not self.ctx.emulated_exits:
            self._protect(gaps)
        self._merged_cancels()
        self.plan.changes.tranches = list(self.dirty.values())
        return self.plan

    # --- positions --------------------------------------------------------------------------------------

    def _position(self, g: Gap) -> None:
        assert g.side is not None and g.qty is not None
        rules = self.ctx.rules.get(g.symbol)
        if rules is None:
            self._step(
                "skip",
                g.symbol,
                g.side,
                f"{g.detail}: {self.ctx.venue} gives no trading rules for "
                f"{g.symbol} (not a configured symbol?); repair it by hand",
            )
            return
        key = [t for t in self.tranches.values() if (t.symbol, t.side) == (g.symbol, g.side)]
        if g.kind is GapKind.OVER_COVERED:
            decision = apply_reduction(key, g.qty, rules)
            for t in decision.changed:
                self._keep(t, resized=True)
                self._step(
                    "resize",
                    t.symbol,
                    t.side,
                    f"tranche {t.id} shrinks to {_plain(t.qty)} (the position is smaller)",
                    t.id,
                )
            for t in decision.removed:
                self._close(t, ExitReason.EXTERNAL, "closed outside posmon (the position is smaller)")
            return
        pos = self.positions[(g.symbol, g.side)]
        known = [(t.qty, t.entry) for t in key]
        held = sum((q for q, _ in known), g.qty)  # the gap is what the tranches do not explain
        price = implied_entry(pos.entry_price, held, known, rules.tick_size)
        live = [t for t in key if not t.closing]
        decision = apply_entry_fill(
            live,
            qty=g.qty,
            price=price,
            now=self.ctx.now,
            risk=self.ctx.risk_of(g.symbol),
            rules=rules,
            new_id=self.ctx.new_id(),
            venue=self.ctx.venue,
            symbol=g.symbol,
            side=g.side,
        )
        for t in decision.changed:
            action = "extend" if t.id in self.tranches else "adopt"
            self._keep(t, resized=True)
            self._step(
                action,
                t.symbol,
                t.side,
                f"tranche {t.id}: {_plain(t.qty)} @ {_plain(t.entry)} TP "
                f"{_plain(t.tp)} SL {_plain(t.sl)} ({_plain(g.qty)} @ {_plain(price)} adopted)",
                t.id,
            )
        for t in decision.removed:
            self.merged_into[t.id] = decision.changed[0].id
            self._close(t, ExitReason.MERGED, f"merged into tranche {decision.changed[0].id}", cancel_legs=False)

    def _keep(self, t: Tranche, *, resized: bool = False) -> None:
        self.tranches[t.id] = t
        self.dirty[t.id] = t
        if resized:
            self.fresh.add(t.id)

    def _close(self, t: Tranche, reason: str, why: str, *, cancel_legs: bool = True) -> None:
        self.tranches.pop(t.id, None)
        self.dirty.pop(t.id, None)
        self.fresh.discard(t.id)
        self.plan.changes.closed.append((t.id, reason, self.ctx.now))
        self._step("close_tranche", t.symbol, t.side, f"tranche {t.id} ({_plain(t.qty)}) marked closed: {why}", t.id)
        if cancel_legs:
            for purpose, o in self.resting.get(t.id, []):
                self._cancel(t.symbol, t.side, o.client_id, t.id, f"{purpose.name} of closed tranche {t.id}")

    # --- legs -------------------------------------------------------------------------------------------

    def _protect(self, gaps: Sequence[Gap]) -> None:
        wrong: dict[int, set[Purpose]] = defaultdict(set)
        for g in gaps:
            if g.kind in _LEG_GAPS and g.tranche_id is not None and g.purpose is not None:
                wrong[g.tranche_id].add(g.purpose)
        for tid in sorted(self.tranches):
            t = self.tranches[tid]
            need = {Purpose.TP, Purpose.SL} if tid in self.fresh else wrong.get(tid, set())
            if t.closing or not need:
                continue
            if Purpose.TP in need and tp_leg_qty(t, self.ctx.rules.get(t.symbol)) is None:
                self._step(
                    "skip",
                    t.symbol,
                    t.side,
                    f"tranche {t.id}: {self.ctx.venue} gives no trading rules for {t.symbol}, so its ladder "
                    "level's share cannot be sized; repair it by hand",
                    t.id,
                )
                continue
            t, tp, sl = self._legs(t)
            while any(o.client_id in self.resting_ids or self.ctx.taken(o.client_id) for o in (tp, sl)):
                t, tp, sl = self._legs(t)  # a seq the store lags behind: never reuse a client id
            self._keep(t)
            new = tuple(o for o in (tp, sl) if o.purpose in need)
            self.plan.place.append(new)
            self.plan.changes.orders += new
            for o in new:
                r = o.request
                price = r.price if r.price is not None else r.stop_price
                self._step(
                    "place",
                    t.symbol,
                    t.side,
                    f"{o.purpose.name} {r.type.value} {r.side.value} "
                    f"{_plain(r.qty)} @ {_plain(price)} for tranche {t.id}",
                    t.id,
                    r.client_id,
                )
            after = tuple(o.client_id for o in new)
            for purpose, resting in self.resting.get(tid, []):
                if purpose in need:
                    self._cancel(t.symbol, t.side, resting.client_id, tid, f"replaced {purpose.name}", after=after)

    def _legs(self, t: Tranche) -> tuple[Tranche, OrderRecord, OrderRecord]:
        """Both legs as the daemon makes them: the TP for the current ladder level's share, the SL for it all."""
        return protection_orders(
            t,
            prefix=self.ctx.prefix,
            working_type=self.ctx.working_type_of(t.symbol),
            hedge_mode=self.ctx.hedge_mode,
            tp_qty=tp_leg_qty(t, self.ctx.rules.get(t.symbol)),
        )

    def _merged_cancels(self) -> None:
        """A merged-away tranche's legs go once the survivor's new legs are live."""
        for gone, into in self.merged_into.items():
            after = tuple(o.client_id for group in self.plan.place for o in group if o.tranche_id == into)
            t = self.tranches.get(into)
            for purpose, o in self.resting.get(gone, []):
                self._cancel(
                    o.symbol, t.side if t else None, o.client_id, gone, f"{purpose.name} of merged tranche", after=after
                )

    def _cancel(
        self, symbol: str, side: Side | None, cid: str, tid: int | None, why: str, *, after: tuple[str, ...] = ()
    ) -> None:
        if cid in self.cancelling:
            return
        self.cancelling.add(cid)
        self.plan.cancels.append(Cancel(symbol, cid, after))
        when = " once its replacement is live" if after else ""
        self._step("cancel", symbol, side, f"{cid}{when}: {why}", tid, cid)

    def _set_exits(self, t: Tranche) -> None:
        rules = self.ctx.rules.get(t.symbol)
        if rules is None:
            self._step("skip", t.symbol, t.side, f"tranche {t.id}: no trading rules for {t.symbol}", t.id)
            return
        risk = self.ctx.risk_of(t.symbol)
        tp, sl = exit_prices(t.side, t.entry, risk, rules)
        tp, sl = planned_exits(replace(t, tp=tp), sl, rules)  # a ladder's current level; a stop the plan moved
        sign = t.side.sign
        t2 = replace(
            t,
            tp=t.tp if t.tp and sign * (t.tp - t.entry) > 0 else tp,
            sl=t.sl if sl_ok(t, rules) else sl,
            deadline=t.deadline
            if t.deadline is not None or risk.max_hold_seconds <= 0
            else t.opened_at + risk.max_hold_seconds,
        )
        self._keep(t2)
        self._step(
            "set_exits",
            t.symbol,
            t.side,
            f"tranche {t.id}: TP {_plain(t2.tp)} SL {_plain(t2.sl)}"
            + (f" deadline {t2.deadline:.0f}" if t2.deadline is not None else ""),
            t.id,
        )

    def _step(
        self, action: str, symbol: str, side: Side | None, detail: str, tid: int | None = None, cid: str | None = None
    ) -> None:
        self.plan.steps.append(Step(action, symbol, side, detail, tid, cid))
        if action != "skip":
            self.plan.changes.events.append(
                Event(
                    f"protect_{action}",
                    self.ctx.venue,
                    symbol,
                    side.value if side else "",
                    tid,
                    {"detail": detail, "client_id": cid},
                )
            )
