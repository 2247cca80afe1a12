"""Rendering verify and protect results: plain text for an operator, a JSON document for scripts."""

from __future__ import annotations

from typing import Any

from posmon.ops.gaps import Gap
from posmon.ops.plan import Plan
from posmon.ops.protect import Outcome
from posmon.ops.verify import Snapshot

ONE_WRITER = (
    "protect writes posmon's store and trades the account: stop the daemon first (never run both on "
    "the same store/account)"
)
CLEAN = "clean: every position covered by its tranches, every tranche protected, no orphan orders"


def summary(venue: str, snap: Snapshot, *, hedge_mode: bool) -> str:
    prefix_orders = sum(1 for o in snap.book.orders if o.active)
    mode = "hedge" if hedge_mode else "one-way"
    return (
        f"{venue} account ({mode} mode): {len(snap.account.positions)} positions, "
        f"{len(snap.book.tranches)} open tranches, {len(snap.account.open_orders)} open orders "
        f"({prefix_orders} active in the store)"
    )


def gap_lines(gaps: list[Gap]) -> list[str]:
    if not gaps:
        return [CLEAN]
    lines = [f"{len(gaps)} gap{'s' if len(gaps) != 1 else ''}:"]
    for g in gaps:
        side = f" {g.side.value}" if g.side else ""
        lines.append(f"  [{g.kind.value}] {g.symbol}{side}: {g.detail}")
    return lines


def render_verify(venue: str, snap: Snapshot, *, hedge_mode: bool, in_use: bool) -> str:
    lines = [f"posmon verify: {summary(venue, snap, hedge_mode=hedge_mode)}"]
    if snap.book.unmonitored:
        lines.append(f"not monitored (operator's choice): {', '.join(sorted(snap.book.unmonitored))}")
    if in_use:
        lines.append("note: a daemon holds this store; gaps it is repairing right now may show here")
    lines += gap_lines(snap.gaps)
    if snap.gaps:
        lines.append("see the repair with `posmon protect --dry-run`; apply it with `posmon protect` (daemon stopped)")
    return "\n".join(lines)


def plan_lines(plan: Plan, *, dry_run: bool) -> list[str]:
    if not plan.steps:
        return ["nothing to do"]
    head = "plan (dry run: nothing is changed)" if dry_run else "plan"
    lines = [f"{head}, {len(plan.actions)} actions:"]
    for n, s in enumerate(plan.steps, 1):
        side = f" {s.side.value}" if s.side else ""
        lines.append(f"  {n:>3}. {s.action:<13} {s.symbol}{side}: {s.detail}")
    if dry_run and any(s.tranche_id is not None and s.action == "adopt" for s in plan.steps):
        lines.append("  (tranche ids of adopted positions are provisional in a dry run)")
    return lines


def outcome_lines(out: Outcome) -> list[str]:
    lines = [f"done: {len(out.placed)} placed, {len(out.cancelled)} cancelled"]
    lines += [f"  FAILED {cid}: {why}" for cid, why in out.failed]
    lines += [
        f"  UNKNOWN {cid}: outcome not known; the daemon looks it up by client id at start-up" for cid in out.unknown
    ]
    lines += [f"  KEPT {cid}: its replacement is not live, so it keeps resting" for cid in out.held_back]
    return lines


def verify_json(venue: str, snap: Snapshot, *, in_use: bool) -> dict[str, Any]:
    return {
        "venue": venue,
        "clean": not snap.gaps,
        "daemon_running": in_use,
        "positions": len(snap.account.positions),
        "open_tranches": len(snap.book.tranches),
        "unmonitored": sorted(snap.book.unmonitored),
        "gaps": [g.to_json() for g in snap.gaps],
    }


def plan_json(plan: Plan) -> list[dict[str, Any]]:
    return [s.to_json() for s in plan.steps]
