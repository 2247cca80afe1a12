"""The start-up reconcile's fast check (``PositionActor._armed``) says a tranche is armed exactly when arming it
(``_protect``) would do nothing: no order placed or cancelled, nothing written."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from decimal import Decimal as D

import pytest
import trio

from posmon.actors.position import PositionActor
from posmon.domain.protection import LocalState, Purpose, client_order_id, parse_client_order_id
from posmon.store.store import Changes
from tests.daemon.test_reconcile_mechanisms import LoneActor, open_store, seed_tranche

TP, SL = Purpose.TP, Purpose.SL


def _newer(rec, state=LocalState.LIVE):
    """Another order of the same leg, a step later in the tranche's sequence."""
    _, _, seq = parse_client_order_id("pm", rec.client_id)
    cid = client_order_id("pm", rec.tranche_id, rec.purpose, seq + 1)
    return replace(rec, request=replace(rec.request, client_id=cid), state=state)


def _live(rec):
    return replace(rec, state=LocalState.LIVE)


SCENARIOS = {
    # name: (orders of the tranche, wanted legs, armed)
    "both legs resting": (lambda tp, sl: [_live(tp), _live(sl)], (TP, SL), True),
    "a leg still on its way": (lambda tp, sl: [tp, _live(sl)], (TP, SL), True),
    "a leg missing": (lambda tp, sl: [_live(sl)], (TP, SL), False),
    "a leg partly filled": (lambda tp, sl: [replace(_live(tp), filled_qty=D("0.05")), _live(sl)], (TP, SL), False),
    "an old leg being cancelled": (
        lambda tp, sl: [replace(tp, state=LocalState.CANCELING), _newer(tp), _live(sl)],
        (TP, SL),
        True,
    ),
    "an old leg still resting": (lambda tp, sl: [_live(tp), _newer(tp), _live(sl)], (TP, SL), False),
    "legs the policy does not rest": (lambda tp, sl: [_live(tp), _live(sl)], (), False),
    "no legs wanted, none resting": (lambda tp, sl: [], (), True),
    "only the wanted leg": (lambda tp, sl: [_live(sl)], (SL,), True),
    "a leg of a purpose not wanted": (lambda tp, sl: [_live(tp), _live(sl)], (SL,), False),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_armed_exactly_when_protecting_would_do_nothing(tmp_path, name):
    orders_of, wanted, armed = SCENARIOS[name]
    store = open_store(tmp_path)
    try:
        lone = LoneActor(store)
        t, tp, sl = seed_tranche(store)
        actor = PositionActor(lone.cfg, lone.links)
        actor.tranches[t.id] = t
        for rec in orders_of(tp, sl):
            actor._remember(rec)
        writes: list[Changes] = []
        apply = store.apply
        store.apply = lambda changes: (writes.append(changes), apply(changes))[1]  # type: ignore[method-assign]

        assert actor._armed(t, wanted) is armed
        actor._protect(t, wanted)
        sent = []
        with contextlib.suppress(trio.WouldBlock):
            while True:
                sent.append(lone.gateway.receive_nowait())
        assert (not sent and not writes) is armed, (sent, writes)
    finally:
        store.close()
