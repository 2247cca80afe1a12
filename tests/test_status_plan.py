"""Status of tranches with an exit plan (issue 15): the plan, its ladder level, trailing stop and break-even.

The tranche is given its plan in the store, where status reads it (as a daemon configured with the plan writes
it); a tranche without a plan answers exactly as before, with ``plan`` null.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import jsonschema_rs  # schemathesis's validator (the test extra)

from posmon.api.openapi import openapi_schema
from posmon.api.serialize import to_jsonable
from posmon.domain.exitplan import make_plan
from posmon.domain.orders import Side
from posmon.store.store import Changes
from tests.harness import make_settings, running

PLAN = make_plan(
    tp_levels=[[1, 30], [2, 30], [3, 40]],
    trailing_activation_pct="0.5",
    trailing_callback_pct=1,
    breakeven_after_tp=1,
    breakeven_offset_pct="0.1",
)


TRANCHE_SCHEMA = jsonschema_rs.validator_for(openapi_schema()["components"]["schemas"]["Tranche"])


async def test_status_shows_the_plan_of_a_tranche_and_where_it_stands(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        [t] = h.store.open_tranches("sim", "BTCUSDT")
        # Level 1 filled (break-even earned with it), the mark got to 46000: the stop trails 1 % behind it.
        moved = dataclasses.replace(t, plan=PLAN, level=1, tp=D("45900"), sl=D("45540"), best_mark=D("46000"))
        h.store.apply(Changes(tranches=[moved]))
        report = await h.daemon.control.status()

    view = next(v for v in report.tranches if v.id == t.id)
    plain = next(v for v in report.tranches if v.id != t.id)
    assert plain.plan is None
    assert (view.tp, view.sl) == (D("45900"), D("45540"))  # the current level's TP, the stop held now
    p = view.plan
    assert p is not None
    assert p.describe == PLAN.describe() and p.summary == "TP 2/3 TRAIL BE"
    assert p.ladder is not None and (p.ladder.level, p.ladder.of, p.ladder.tp) == (1, 3, D("45900"))
    assert p.ladder.level_qty == D("0.042")  # 30 of the 70 % left of 0.1, down to the step
    assert [(lv.price, lv.filled) for lv in p.ladder.levels] == [
        (D("45450"), True),
        (D("45900"), False),
        (D("46350"), False),
    ]
    assert p.trailing is not None and (p.trailing.active, p.trailing.best_mark, p.trailing.stop) == (
        True,
        D("46000"),
        D("45540"),
    )
    assert p.breakeven is not None and (p.breakeven.earned, p.breakeven.stop) == (True, D("45045"))

    answer = to_jsonable(report)
    [doc] = [x for x in answer["tranches"] if x["id"] == t.id]
    assert doc["plan"]["ladder"]["level_qty"] == "0.042" and doc["plan"]["trailing"]["stop"] == "45540"
    assert [x["plan"] for x in answer["tranches"] if x["id"] != t.id] == [None]
    for x in answer["tranches"]:  # what the API sends is what its document promises
        TRANCHE_SCHEMA.validate(x)


async def test_status_shows_a_plan_that_has_not_acted_yet(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches("sim")
        h.store.apply(Changes(tranches=[dataclasses.replace(t, plan=PLAN)]))
        [view] = (await h.daemon.control.status()).tranches

    p = view.plan
    assert p is not None and p.summary == "TP 1/3 TRAIL@+0.5% BE@TP1"
    assert p.ladder is not None and (p.ladder.level, p.ladder.level_qty) == (0, D("0.03"))
    assert [lv.filled for lv in p.ladder.levels] == [False, False, False]
    assert p.trailing is not None and (p.trailing.active, p.trailing.best_mark, p.trailing.stop) == (False, None, None)
    assert p.breakeven is not None and (p.breakeven.earned, p.breakeven.after_tp) == (False, 1)
