"""Assertions every end-to-end scenario ends with."""

from __future__ import annotations

from collections import Counter

from posmon.domain.protection import parse_client_order_id
from tests.harness import Harness


def assert_protected_and_no_orphans(h: Harness, prefix: str = "pm") -> None:
    """Each open tranche has exactly one TP and one SL for its whole quantity; no other posmon order rests."""
    open_tranches = {t.id: t for t in h.store.open_tranches()}
    legs: Counter[tuple[int, str]] = Counter()
    for o in h.exchange.engine.open_orders():
        parsed = parse_client_order_id(prefix, o.client_id)
        assert parsed is not None, f"unexpected foreign order resting: {o}"
        tid, purpose, _ = parsed
        assert tid in open_tranches, f"orphan order {o.client_id} of a tranche that is no longer open"
        assert o.qty - o.filled_qty == open_tranches[tid].qty, f"{o.client_id} covers {o.qty}, tranche holds more/less"
        legs[(tid, purpose.name)] += 1
    for tid in open_tranches:
        assert legs[(tid, "TP")] == 1 and legs[(tid, "SL")] == 1, f"tranche {tid} legs: {dict(legs)}"
    # The tranches add up to the live position on every (symbol, side).
    held = {(p.symbol, p.side): p.qty for p in h.exchange.engine.positions()}
    tracked: Counter = Counter()
    for t in open_tranches.values():
        tracked[(t.symbol, t.side)] += t.qty
    assert {k: v for k, v in held.items() if v} == {k: v for k, v in tracked.items() if v}
