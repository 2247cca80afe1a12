"""Assertions every end-to-end scenario ends with."""

from __future__ import annotations

from collections import Counter

from posmon.domain.exitplan import level_qty
from posmon.domain.protection import parse_client_order_id
from tests.harness import Harness


def assert_protected_and_no_orphans(h: Harness, prefix: str = "pm") -> None:
    """Each open tranche has exactly one TP and one SL; no other posmon order rests.

    The TP covers the current ladder level's share at the tranche's TP (``level_qty``: the whole tranche when it
    has no ladder), the SL the whole tranche at its SL, so a scenario with exit plans can end with it too.
    """
    open_tranches = {t.id: t for t in h.store.open_tranches()}
    rules = h.exchange.engine.rules
    legs: Counter[tuple[int, str]] = Counter()
    for o in h.exchange.engine.open_orders():
        parsed = parse_client_order_id(prefix, o.client_id)
        assert parsed is not None, f"unexpected foreign order resting: {o}"
        tid, purpose, _ = parsed
        assert tid in open_tranches, f"orphan order {o.client_id} of a tranche that is no longer open"
        t = open_tranches[tid]
        left = o.qty - o.filled_qty
        if purpose.name == "TP":
            want = level_qty(t, rules[t.symbol])
            assert (left, o.price) == (want, t.tp), f"{o.client_id} is {left} @ {o.price}, TP wants {want} @ {t.tp}"
        elif purpose.name == "SL":
            assert (left, o.stop_price) == (t.qty, t.sl), (
                f"{o.client_id} is {left} @ {o.stop_price}, SL wants {t.qty} @ {t.sl}"
            )
        else:
            assert left == t.qty, f"{o.client_id} covers {left}, tranche {tid} holds {t.qty}"
        legs[(tid, purpose.name)] += 1
    for tid in open_tranches:
        assert legs[(tid, "TP")] == 1 and legs[(tid, "SL")] == 1, f"tranche {tid} legs: {dict(legs)}"
    # The tranches add up to the live position on every (symbol, side).
    held = {(p.symbol, p.side): p.qty for p in h.exchange.engine.positions()}
    tracked: Counter = Counter()
    for t in open_tranches.values():
        tracked[(t.symbol, t.side)] += t.qty
    assert {k: v for k, v in held.items() if v} == {k: v for k, v in tracked.items() if v}
