"""Hedge pairs in the store (schema v5): a pair's row, its two legs, and the tranches each leg holds.

Written inside a decision's transaction (``Changes.pairs``, by ``Store._write``) so a pair's change and the orders
it causes are one write; read whole at start-up (``read_pairs``). Both backends: plain SQL with ``?`` placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import orjson

from posmon.domain.orders import Side
from posmon.domain.pairs import Leg, OnLegExit, Pair, PairRules, PairStatus

_DECIMAL_RULES = ("tp_quote", "sl_quote", "tp_pct", "sl_pct", "protect_stop_pct", "max_leg_imbalance_pct")


def rules_to_text(r: PairRules) -> str:
    data: dict[str, Any] = {name: None if (v := getattr(r, name)) is None else str(v) for name in _DECIMAL_RULES}
    data["on_leg_exit"] = r.on_leg_exit.value
    data["auto_rebalance"] = r.auto_rebalance
    return orjson.dumps(data).decode()


def rules_from_text(text: str) -> PairRules:
    data = orjson.loads(text)
    kwargs: dict[str, Any] = {
        name: None if data.get(name) is None else Decimal(data[name]) for name in _DECIMAL_RULES if name in data
    }
    return PairRules(
        **kwargs, on_leg_exit=OnLegExit(data.get("on_leg_exit", "close")), auto_rebalance=bool(data["auto_rebalance"])
    )


def write_pairs(conn: Any, pairs: Sequence[Pair], now: float) -> None:
    """Upsert each pair, its legs, and its tranche links (a tranche no longer in its leg is marked inactive)."""
    conn.executemany(
        "INSERT INTO pairs (id, status, rules, opened_at, close_reason, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET status = excluded.status, rules = excluded.rules, "
        "close_reason = excluded.close_reason, updated_at = excluded.updated_at",
        [(p.id, p.status.value, rules_to_text(p.rules), p.opened_at, p.close_reason, now) for p in pairs],
    )
    conn.executemany(
        "INSERT INTO pair_legs (pair_id, leg, venue, symbol, side, target_qty, step, filled_qty, entry, funding, "
        "entry_done, exit_reason, residue, funded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(pair_id, leg) DO UPDATE SET filled_qty = excluded.filled_qty, entry = excluded.entry, "
        "funding = excluded.funding, entry_done = excluded.entry_done, exit_reason = excluded.exit_reason, "
        "residue = excluded.residue, target_qty = excluded.target_qty, funded_at = excluded.funded_at",
        [
            (
                p.id,
                i,
                leg.venue,
                leg.symbol,
                leg.side.value,
                str(leg.target_qty),
                str(leg.step),
                str(leg.filled_qty),
                None if leg.entry is None else str(leg.entry),
                str(leg.funding),
                int(leg.entry_done),
                leg.exit_reason,
                str(p.residue[i]),
                leg.funded_at,
            )
            for p in pairs
            for i, leg in enumerate(p.legs)
        ],
    )
    conn.executemany("UPDATE pair_tranches SET active = 0 WHERE pair_id = ?", [(p.id,) for p in pairs])
    links = [(tid, p.id, i) for p in pairs for i, leg in enumerate(p.legs) for tid in leg.tranche_ids]
    if links:
        conn.executemany(
            "INSERT INTO pair_tranches (tranche_id, pair_id, leg, active) VALUES (?, ?, ?, 1) "
            "ON CONFLICT(tranche_id, pair_id) DO UPDATE SET leg = excluded.leg, active = 1",
            links,
        )


def read_pairs(db: Any, *, active_only: bool = True, pair_id: int | None = None) -> list[Pair]:
    """Pairs by id: every pair not closed (``active_only``), or one pair."""
    where, args = [], []
    if active_only:
        where.append("status != 'closed'")
    if pair_id is not None:
        where.append("id = ?")
        args.append(pair_id)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = db.execute(
        f"SELECT id, status, rules, opened_at, close_reason FROM pairs {clause}ORDER BY id", args
    ).fetchall()
    if not rows:
        return []
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    legs: dict[tuple[int, int], tuple[Leg, Decimal]] = {}
    for pid, i, venue, symbol, side, target, step, filled, entry, funding, done, why, residue, funded in db.execute(
        "SELECT pair_id, leg, venue, symbol, side, target_qty, step, filled_qty, entry, funding, entry_done, "
        f"exit_reason, residue, funded_at FROM pair_legs WHERE pair_id IN ({marks})",
        ids,
    ).fetchall():
        leg = Leg(
            venue,
            symbol,
            Side(side),
            Decimal(target),
            Decimal(step),
            Decimal(filled),
            None if entry is None else Decimal(entry),
            (),
            Decimal(funding),
            bool(done),
            why,
            None if funded is None else float(funded),
        )
        legs[pid, i] = (leg, Decimal(residue))
    tranches: dict[tuple[int, int], list[int]] = {}
    for tid, pid, i in db.execute(
        f"SELECT tranche_id, pair_id, leg FROM pair_tranches WHERE active = 1 AND pair_id IN ({marks}) "
        "ORDER BY tranche_id",
        ids,
    ).fetchall():
        tranches.setdefault((pid, i), []).append(tid)
    out = []
    for pid, status, rules, opened_at, reason in rows:
        (a, ra), (b, rb) = legs[pid, 0], legs[pid, 1]
        a = _with_ids(a, tranches.get((pid, 0), []))
        b = _with_ids(b, tranches.get((pid, 1), []))
        out.append(Pair(pid, (a, b), rules_from_text(rules), PairStatus(status), opened_at or 0.0, reason, (ra, rb)))
    return out


def _with_ids(leg: Leg, ids: list[int]) -> Leg:
    return replace(leg, tranche_ids=tuple(ids))


@dataclass(frozen=True, slots=True)
class TrancheState:
    """What the store says of one leg tranche (for a restart: did it exit while the coordinator was down?)."""

    status: str  # open | closing | closed
    close_reason: str | None
    exit_qty: Decimal
    qty: Decimal  # held now (an entry filled qty + exit_qty)
    entry: Decimal


def read_tranche_states(db: Any, tranche_ids: Sequence[int]) -> dict[int, TrancheState]:
    if not tranche_ids:
        return {}
    marks = ",".join("?" * len(tranche_ids))
    rows = db.execute(
        f"SELECT id, status, close_reason, exit_qty, qty, entry FROM tranches WHERE id IN ({marks})",
        list(tranche_ids),
    ).fetchall()
    return {tid: TrancheState(st, why, Decimal(xq), Decimal(q), Decimal(e)) for tid, st, why, xq, q, e in rows}


def read_entry_states(db: Any, tranche_ids: Sequence[int]) -> dict[int, str]:
    """The state of the operator entry of each tranche (PENDING until it ended: FILLED, REJECTED, CANCELED...)."""
    if not tranche_ids:
        return {}
    marks = ",".join("?" * len(tranche_ids))
    rows = db.execute(
        f"SELECT tranche_id, state FROM entries WHERE tranche_id IN ({marks}) ORDER BY rowid", list(tranche_ids)
    ).fetchall()
    return {tid: state for tid, state in rows}


def pair_of_tranche(db: Any, tranche_id: int) -> int | None:
    row = db.execute(
        "SELECT pair_id FROM pair_tranches WHERE tranche_id = ? AND active = 1 ORDER BY pair_id DESC", [tranche_id]
    ).fetchone()
    return None if row is None else int(row[0])
