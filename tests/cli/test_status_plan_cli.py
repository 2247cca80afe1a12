"""``posmon status`` with exit plans (issue 15): a PLAN column with each plan's state in short, only where some
tranche has a plan (the table is otherwise exactly as before)."""

import dataclasses
from decimal import Decimal

import trio

from posmon.api import create_app
from posmon.api.table import render_status
from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.control import TrancheView, plan_view
from posmon.domain.exitplan import make_plan
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import Tranche
from tests.api.test_api_fakes import FakeControl, served, tranche

RULES = SymbolRules("BTCUSDT", Decimal("0.001"), Decimal("0.001"))


def planned(id_: int, **plan: object) -> TrancheView:
    """The fake's tranche ``id_`` with an exit plan: a ladder at its second level, trailing active."""
    t = Tranche(
        id=id_,
        venue="aster",
        symbol="BTCUSDT",
        side=Side.LONG,
        index=0,
        entry=Decimal("60000.1"),
        qty=Decimal("0.002"),
        tp=Decimal("63600.106"),
        sl=Decimal("58200.097"),
        opened_at=0.0,
        plan=make_plan(**plan),
        level=1,
        best_mark=Decimal("61000"),
    )
    return dataclasses.replace(tranche(id_), plan=plan_view(t, RULES))


async def posmon(*argv: str) -> int:
    return await trio.to_thread.run_sync(main, list(argv))


async def test_status_shows_a_plan_column_where_a_tranche_has_a_plan(capsys):
    ladder = planned(5, tp_levels=[[6, 50], [8, 50]], trailing_callback_pct=1, breakeven_after_tp=1)
    control = FakeControl(tranches=[tranche(1), ladder])
    async with served(create_app(control, metrics_render=None, token=None)) as url:
        code = await posmon("status", "--api", url)
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("ID"))
    assert code == ExitCode.OK
    assert header.split()[6:9] == ["TP", "SL", "PLAN"]
    row = next(line for line in lines if line.startswith("5 "))
    plain = next(line for line in lines if line.startswith("1 "))
    assert header.index("PLAN") == row.index("TP 2/2 TRAIL BE")
    assert plain[header.index("PLAN") :].split()[0] == "-"


def test_without_plans_the_table_has_no_plan_column():
    status = {"running": True, "venue": "aster", "tranches": [{"id": 1, "symbol": "BTCUSDT", "exits_live": True}]}
    assert "PLAN" not in render_status(status)
    with_plan = {**status, "tranches": [{"id": 1, "plan": {"summary": "TP 1/3"}}]}
    assert "PLAN" in render_status(with_plan) and "TP 1/3" in render_status(with_plan)
