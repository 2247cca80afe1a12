"""The invariants a run must end with, read from the venue (the simulator's account), the store and the log.

State invariants hold once the daemon has settled (the campaign polls them until they hold twice in a row, or
the settle time runs out); history invariants are read from every fill the venue executed during the run.

- ``covered``: every open position is protected exactly. Aster: each of the position's open tranches has one
  resting TP and one resting SL of its own at the tranche's prices, the SL for the tranche's quantity and the TP
  for its current ladder level's share (the whole tranche without a ladder). Lighter (exits are emulated): each
  open tranche holds its TP and SL prices, and the mark is not left through either of them.
- ``store_matches_venue``: the store's open tranches of each (symbol, side) sum to the venue's position, and a
  flat side has none.
- ``no_orphan_order``: no posmon order (client id prefix) rests that is not an open tranche's current exit
  (Lighter: none rests at all; its exits are market orders).
- ``no_double_execution``: no posmon client order id traded under two venue orders, nor beyond its quantity.
- ``no_close_past_zero``: no posmon close grew a position or flipped it (reduce-only never goes past zero); entries
  (a pair's, ``E`` in the client id) open positions by design.
- ``daemon_alive``: the daemon process is running at the end (the campaign's own kills are restarted).
- ``no_traceback``: no traceback in the daemon's log.
- ``no_pair_with_one_leg`` (two-venue runs): every pair has settled ``open`` or ``closed``; an open pair's legs are
  both held (the pair's record of each leg within one step of the coarser venue of the other, each leg's open
  tranches holding at least its record, the venue at least those); a closed pair holds no open tranche on a leg.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chaos.venues import FillLog, Venue
from posmon.domain.exitplan import level_qty, plan_from_text, tp_leg_covers
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import Tranche

STATE_INVARIANTS = ("covered", "store_matches_venue", "no_orphan_order")
HISTORY_INVARIANTS = ("no_double_execution", "no_close_past_zero")
PROCESS_INVARIANTS = ("daemon_alive", "no_traceback")
INVARIANTS = STATE_INVARIANTS + HISTORY_INVARIANTS + PROCESS_INVARIANTS
PAIR_INVARIANTS = ("no_pair_with_one_leg",)  # two-venue runs only
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    detail: str


@dataclass(frozen=True, slots=True)
class StoreTranche:
    id: int
    symbol: str
    side: Side
    qty: Decimal
    tp: str
    sl: str
    status: str
    entry: Decimal = ZERO
    plan: str | None = None  # the stored exit plan (``domain.exitplan``), None: one TP, one SL
    level: int = 0
    venue: str = ""

    def tp_qty(self, rules: SymbolRules) -> Decimal:
        """What its resting TP must cover: the current ladder level's share, or the whole tranche."""
        t = self.tranche()
        return level_qty(t, rules) if t.plan.tp_levels else self.qty

    def tp_covered_by(self, left: Decimal, filled: Decimal, rules: SymbolRules) -> bool:
        """A resting TP with ``left`` of it open (``filled`` filled) covers the tranche's current level (the
        daemon's own rule, ``exitplan.tp_leg_covers``: a level partly filled rests for the rest of its share)."""
        t = self.tranche()
        if not t.plan.tp_levels:
            return left == self.qty
        return tp_leg_covers(t, left + filled, filled, rules)

    def tranche(self) -> Tranche:
        return Tranche(
            self.id, "", self.symbol, self.side, 0, self.entry, self.qty, _dec(self.tp), _dec(self.sl), 0.0,
            plan=plan_from_text(self.plan), level=self.level,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoreView:
    tranches: list[StoreTranche]
    orders: list[dict[str, Any]]  # active (not DONE) orders


def _dec(text: Any) -> Decimal:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return ZERO


def read_store(path: Path) -> StoreView | None:
    """The store's open tranches and active orders, read-only; None while it does not exist or is locked."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        conn.row_factory = sqlite3.Row
        cur = conn.execute("SELECT * FROM tranches WHERE status IN ('open', 'closing') ORDER BY id")
        planned = "plan" in {d[0] for d in cur.description}  # an older posmon's store (--daemon-src) has none
        rows = cur.fetchall()
        tranches = [
            StoreTranche(
                r["id"],
                r["symbol"],
                Side(r["side"]),
                _dec(r["qty"]),
                r["tp"] or "",
                r["sl"] or "",
                r["status"],
                _dec(r["entry"]),
                r["plan"] if planned else None,
                r["level"] if planned else 0,
                r["venue"],
            )
            for r in rows
        ]
        orders = [
            dict(r)
            for r in conn.execute(
                "SELECT client_id, tranche_id, purpose, qty, state FROM orders WHERE state != 'DONE'"
            ).fetchall()
        ]
        return StoreView(tranches, orders)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class StoreLeg:
    venue: str
    symbol: str
    side: Side
    step: Decimal
    held: Decimal  # the leg's open tranches (``pair_tranches.active``), summed
    tranches: tuple[int, ...]
    qty: Decimal = ZERO  # the pair's own record of the leg (``pair_legs.filled_qty``)


@dataclass(frozen=True, slots=True)
class StorePair:
    id: int
    status: str
    legs: tuple[StoreLeg, ...]


def read_pairs(path: Path) -> list[StorePair] | None:
    """Every pair with its legs and what each leg's open tranches hold; None while unreadable (or no pairs table)."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        conn.row_factory = sqlite3.Row
        held: dict[tuple[int, int], list[tuple[int, Decimal]]] = defaultdict(list)
        for r in conn.execute(
            "SELECT pt.pair_id, pt.leg, t.id, t.qty FROM pair_tranches pt JOIN tranches t ON t.id = pt.tranche_id "
            "WHERE pt.active = 1 AND t.status IN ('open', 'closing')"
        ):
            held[(r["pair_id"], r["leg"])].append((r["id"], _dec(r["qty"])))
        legs: dict[int, list[StoreLeg]] = defaultdict(list)
        for r in conn.execute("SELECT * FROM pair_legs ORDER BY pair_id, leg"):
            mine = held.get((r["pair_id"], r["leg"]), [])
            legs[r["pair_id"]].append(
                StoreLeg(
                    r["venue"],
                    r["symbol"],
                    Side(r["side"]),
                    _dec(r["step"]),
                    sum((q for _, q in mine), ZERO),
                    tuple(t for t, _ in mine),
                    _dec(r["filled_qty"]),
                )
            )
        return [
            StorePair(r["id"], r["status"], tuple(legs.get(r["id"], ())))
            for r in conn.execute("SELECT id, status FROM pairs ORDER BY id")
        ]
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def check_pairs(venues: dict[str, Venue], pairs: list[StorePair] | None) -> list[Violation]:
    """``no_pair_with_one_leg``: pairs settled open (both legs held, equal within a step) or closed (both flat)."""
    out: list[Violation] = []

    def bad(p: StorePair, what: str) -> None:
        legs = "; ".join(
            f"{leg.venue} {leg.symbol} {leg.side.value} {leg.qty}, its tranches hold {leg.held} "
            f"(#{', #'.join(map(str, leg.tranches)) or '-'})"
            for leg in p.legs
        )
        out.append(Violation("no_pair_with_one_leg", f"pair #{p.id} {p.status}: {what} [{legs}]"))

    for p in pairs or ():
        if p.status not in ("open", "closed"):
            bad(p, "not settled")
        elif p.status == "closed":
            if any(leg.held for leg in p.legs):
                bad(p, "closed with a leg still open")
        elif len(p.legs) != 2 or not all(leg.qty > 0 and leg.held > 0 for leg in p.legs):
            bad(p, "open with a leg flat")
        elif abs(p.legs[0].qty - p.legs[1].qty) > max(leg.step for leg in p.legs):
            bad(p, "legs differ by more than a step")
        else:
            for leg in p.legs:  # an external fill adopted into a leg's tranche makes it hold more, never less
                venue = venues.get(leg.venue)
                on_venue = venue.positions().get((leg.symbol, leg.side), ZERO) if venue is not None else ZERO
                if leg.held < leg.qty:
                    bad(p, f"the {leg.venue} leg's tranches hold less than the leg")
                elif on_venue < leg.held:
                    bad(p, f"{leg.venue} holds {on_venue} of {leg.symbol} {leg.side.value}, less than its leg")
    return out


def check_state(venue: Venue, store: StoreView | None, *, by_venue: bool = False) -> list[Violation]:
    """``covered``, ``store_matches_venue`` and ``no_orphan_order`` against the venue's account right now;
    ``by_venue``: the store holds several venues' tranches (a two-venue run), only this venue's are its."""
    out: list[Violation] = []
    positions = venue.positions()
    resting = venue.resting()
    if store is None:
        if positions:
            out.append(Violation("store_matches_venue", f"store unreadable with positions {_fmt(positions)}"))
        return out
    mine = [t for t in store.tranches if t.venue == venue.name] if by_venue else store.tranches
    by_key: dict[tuple[str, Side], list[StoreTranche]] = defaultdict(list)
    for t in mine:
        by_key[(t.symbol, t.side)].append(t)
    for key in sorted(set(positions) | set(by_key)):
        qty = positions.get(key, ZERO)
        held = sum((t.qty for t in by_key.get(key, ())), ZERO)
        if held != qty:
            out.append(
                Violation(
                    "store_matches_venue",
                    f"{key[0]} {key[1].value}: venue {qty}, store tranches "
                    f"{held} ({', '.join(f'#{t.id} {t.qty} {t.status}' for t in by_key.get(key, []))})",
                )
            )
    open_ids = {t.id: t for t in mine}
    legs: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for order in resting:
        tranche = open_ids.get(order.tranche_id) if order.tranche_id is not None else None
        if venue.hedge and tranche is not None and order.purpose in ("T", "S") and tranche.side == order.side:
            legs[(tranche.id, order.purpose)].append(order)
            continue
        what = "no open tranche" if tranche is None else f"purpose {order.purpose} of #{tranche.id}"
        out.append(Violation("no_orphan_order", f"{order.client_id} {order.symbol} qty {order.qty} rests: {what}"))
    for (symbol, side), qty in sorted(positions.items()):
        for t in by_key.get((symbol, side), ()):
            if not venue.hedge:
                out += _held(t, venue.exchange.engine.mark(symbol))
                continue
            want = {"T": (t.tp_qty(venue.rules(symbol)), _dec(t.tp)), "S": (t.qty, _dec(t.sl))}
            for purpose, label in (("T", "TP"), ("S", "SL")):
                orders = legs.get((t.id, purpose), [])
                qty, price = want[purpose]
                if len(orders) != 1:
                    out.append(
                        Violation(
                            "covered",
                            f"{symbol} {side.value} #{t.id} qty {t.qty}: {len(orders)} "
                            f"resting {label} ({', '.join(o.client_id for o in orders) or 'none'})",
                        )
                    )
                elif (
                    orders[0].qty != qty
                    if purpose == "S"
                    else not t.tp_covered_by(orders[0].qty, orders[0].filled, venue.rules(symbol))
                ):
                    out.append(
                        Violation(
                            "covered",
                            f"{symbol} {side.value} #{t.id}: {label} {orders[0].client_id} "
                            f"for {orders[0].qty}, tranche {t.qty} wants {qty}",
                        )
                    )
                elif (orders[0].price if purpose == "T" else orders[0].stop_price) != price:
                    at = orders[0].price if purpose == "T" else orders[0].stop_price
                    out.append(
                        Violation(
                            "covered",
                            f"{symbol} {side.value} #{t.id}: {label} {orders[0].client_id} at {at}, "
                            f"the tranche's {label} is {price}",
                        )
                    )
        if not by_key.get((symbol, side)):
            out.append(Violation("covered", f"{symbol} {side.value} {qty}: no open tranche, unprotected"))
    if venue.hedge:
        for (tranche_id, _purpose), orders in legs.items():
            if tranche_id in open_ids and (open_ids[tranche_id].symbol, open_ids[tranche_id].side) not in positions:
                out.append(
                    Violation(
                        "no_orphan_order",
                        f"{', '.join(o.client_id for o in orders)}: exit of #{tranche_id} rests on a flat side",
                    )
                )
    return out


def _held(t: StoreTranche, mark: Decimal | None) -> list[Violation]:
    """An emulated exit is held: the tranche has its TP and SL, and the mark is not left through either."""
    tp, sl = _dec(t.tp), _dec(t.sl)
    if not tp or not sl:
        return [Violation("covered", f"{t.symbol} {t.side.value} #{t.id}: exits tp={t.tp!r} sl={t.sl!r}")]
    if mark is None:
        return []
    sign = t.side.sign
    if sign * (mark - tp) >= 0 or sign * (sl - mark) >= 0:
        return [
            Violation(
                "covered",
                f"{t.symbol} {t.side.value} #{t.id} qty {t.qty}: mark {mark} is through its "
                f"exit (TP {t.tp}, SL {t.sl}) and the tranche is still open",
            )
        ]
    return []


def check_history(log: FillLog) -> list[Violation]:
    """``no_double_execution`` and ``no_close_past_zero`` from every posmon fill of the run."""
    out: list[Violation] = []
    for client_id, orders in sorted(log.executed_by_client.items()):
        if len(orders) > 1:
            out.append(
                Violation("no_double_execution", f"{client_id} traded as {len(orders)} venue orders {sorted(orders)}")
            )
    totals: Counter[str] = Counter()
    for fill in log.fills:
        totals[fill.client_id] += 1
        if _purpose(fill.client_id) == "E":
            continue  # an entry (a pair's, over the API) is no close: it opens, grows or (one-way) flips by design
        grew = abs(fill.after) > abs(fill.before)
        flipped = fill.after != 0 and fill.before != 0 and (fill.after > 0) != (fill.before > 0)
        opened = fill.before == 0 and fill.after != 0
        if grew or flipped or opened:
            out.append(
                Violation(
                    "no_close_past_zero",
                    f"{fill.client_id} {fill.symbol} {fill.position_side} "
                    f"filled {fill.qty}: position {fill.before} -> {fill.after}"
                    f"{' (reduce-only)' if fill.reduce_only else ''}",
                )
            )
    return out


def _purpose(client_id: str) -> str:
    """The purpose letter of a posmon client id (``pm-12-E1`` -> ``E``); "" for another's."""
    tail = client_id.rsplit("-", 1)[-1]
    return tail[:1] if tail[:1].isalpha() and tail[1:].isdigit() else ""


def check_log(text: str) -> list[Violation]:
    if "Traceback (most recent call last)" not in text:
        return []
    i = text.index("Traceback (most recent call last)")
    tail = text[i : i + 4000].splitlines()
    last = next((line for line in tail[1:] if line and not line.startswith((" ", "Traceback", "+", "|"))), "")
    return [Violation("no_traceback", f"traceback in the daemon log: {last[:200]}")]


def _fmt(positions: dict[tuple[str, Side], Decimal]) -> str:
    return ", ".join(f"{s} {side.value} {q}" for (s, side), q in sorted(positions.items()))
