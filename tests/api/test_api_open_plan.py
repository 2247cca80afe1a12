"""An operator entry's exit-plan fields (issue 15): each overrides the symbol's configured key, the merged plan is
validated before anything is sent, and the tranche the fill makes carries it.

On the Aster-protocol simulator (real HTTP, the real adapter and actors): the tranche in the store has the plan,
ladder level 0 and its TP at level 1's price, resting on the venue; a plan that cannot be followed is a 422 naming
the field with no request sent at all (not even the leverage). In-process against the recording fake: the values
arrive exactly (no float on the way), and the OpenAPI document lists the fields.
"""

from __future__ import annotations

import re
from decimal import Decimal as D

import httpx
import pytest

from posmon.api import create_app
from posmon.control import ControlError, check_exits
from posmon.domain.exitplan import NO_PLAN, BreakEven, ExitPlan, TpLevel, Trailing, level_price
from posmon.domain.orders import Side
from posmon.domain.tranche import Risk
from posmon.plan_fields import PLAN_FIELD_NAMES
from tests.api.test_api_end_to_end import api_of
from tests.api.test_api_fakes import FakeControl
from tests.api.test_api_hostile import PricedRules
from tests.harness import make_settings, running_aster, settle

BODY = {"symbol": "BTCUSDT", "size_usd": 4500, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}
LADDER = [[1, 30], [2, 30], [3, 40]]
CONFIGURED = (TpLevel(D(1), D(30)), TpLevel(D(2), D(30)), TpLevel(D(3), D(40)))


def posts(h, before) -> dict[str, int]:
    now = h.aster.counters.requests
    return {k: v - before.get(k, 0) for k, v in now.items() if k.startswith("POST") and v != before.get(k, 0)}


async def test_entry_fields_over_the_symbols_plan_reach_the_tranche_its_fill_makes(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_levels=LADDER, trailing_callback_pct=2.0)
    async with running_aster(settings) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        fields = {"trailing_callback_pct": "1.5", "breakeven_after_tp": 1, "breakeven_offset_pct": 0.1}
        answer = await api.post("/api/orders/long", json={**BODY, **fields})
        await settle()

        assert answer.status_code == 200, answer.text
        body = answer.json()
        # The configured ladder kept, the callback replaced, break-even added: key by key.
        want = ExitPlan(CONFIGURED, Trailing(D(0), D("1.5"), D("0.1")), BreakEven(1, D("0.1")))
        [t] = h.store.open_tranches("aster")
        assert t.plan == want and t.level == 0
        rules = h.daemon.rules["BTCUSDT"]
        assert t.tp == level_price(Side.LONG, t.entry, D(1), rules) == D(body["tp"]) == D("45450")
        assert body["tp_percent"] == "1" and body["plan"]["describe"] == want.describe()
        ladder = body["plan"]["ladder"]  # as status shows it: level 0 of 3, each level's price
        assert (ladder["level"], ladder["of"], D(ladder["tp"])) == (0, 3, t.tp)
        assert [D(lv["price"]) for lv in ladder["levels"]] == [D(45450), D(45900), D(46350)]
        resting = {(o.type.value, o.price or o.stop_price) for o in h.orders("BTCUSDT")}
        assert ("LIMIT", t.tp) in resting  # level 1 rests on the venue


async def test_an_entry_switches_off_the_symbols_ladder_with_an_empty_list(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, tp_levels=LADDER)) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        answer = await api.post("/api/orders/long", json={**BODY, "tp_levels": []})
        await settle()

        assert answer.status_code == 200, answer.text
        [t] = h.store.open_tranches("aster")
        assert t.plan is NO_PLAN and t.tp == D("47700")  # rr_ratio's 6 %: today's single TP
        assert answer.json()["plan"] is None and answer.json()["tp_percent"] == "6"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"tp_levels": [[1, 30], [2, 60]]}, "tp_levels", "shares sum to 90, expected 100"),
        ({"tp_levels": [["2", 50], ["1.5", 50]]}, "tp_levels", "level 2 pct 1.5 must be above level 1's 2"),
        ({"tp_levels": "1:30,2:70"}, "tp_levels", "expected a list of [pct, share] pairs"),
        ({"breakeven_after_tp": 3}, "breakeven_after_tp", "needs a ladder of more than 3 levels (tp_levels has 3)"),
        ({"trailing_callback_pct": "0.05"}, "trailing_callback_pct", "outside 0.1-50 %"),
        ({"trailing_activation_pct": 1}, "trailing_callback_pct", "a trailing stop needs trailing_callback_pct"),
        ({"breakeven_trigger_pct": 150}, "breakeven_trigger_pct", "expected a number >= 0 and < 100"),
        ({"breakeven_after_tp": 1.5}, "breakeven_after_tp", "expected an integer from 0 to 9"),
    ],
)
async def test_a_plan_that_cannot_be_followed_is_a_422_naming_the_field_and_nothing_is_sent(
    tmp_path, autojump_clock, fields, field, words
):
    async with running_aster(make_settings(tmp_path, tp_levels=LADDER)) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        before = dict(h.aster.counters.requests)
        answer = await api.post("/api/orders/long", json={**BODY, **fields})
        await settle()

        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field and words in answer.json()["error"]
        assert posts(h, before) == {}  # not even the leverage
        assert h.exchange.engine.positions() == [] and h.store.open_tranches("aster") == []


def in_process(control: FakeControl) -> httpx.AsyncClient:
    app = create_app(control, metrics_render=None, token=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8787")


async def test_the_fields_reach_the_open_request_exactly_and_the_answer_shows_the_plan():
    control = FakeControl()
    fields = {
        "tp_levels": [[1.1, "30"], ["2.2", 70]],
        "trailing_activation_pct": 0.3,
        "trailing_callback_pct": "1.7",
        "trailing_min_step_pct": 0.05,
        "breakeven_after_tp": 1,
        "breakeven_offset_pct": "0.12",
        "breakeven_trigger_pct": 1.9,
    }
    async with in_process(control) as c:
        answer = await c.post("/api/orders/short", json={**BODY, **fields})

    assert answer.status_code == 200, answer.text
    [(_, (request,))] = control.mutations()
    assert request.plan_fields == {
        "tp_levels": ((D("1.1"), D(30)), (D("2.2"), D(70))),
        "trailing_activation_pct": D("0.3"),
        "trailing_callback_pct": D("1.7"),
        "trailing_min_step_pct": D("0.05"),
        "breakeven_after_tp": 1,
        "breakeven_offset_pct": D("0.12"),
        "breakeven_trigger_pct": D("1.9"),
    }
    body = answer.json()
    assert body["plan"]["describe"].startswith("ladder 1.1%x30% 2.2%x70%, trailing 1.7% from +0.3%")
    assert body["tp_percent"] == "1.1" and D(body["tp"]) == D("98.9")  # a SHORT's first level, 1.1 % below 100


async def test_an_entry_without_plan_fields_sends_none():
    control = FakeControl()
    async with in_process(control) as c:
        answer = await c.post("/api/orders/long", json=BODY)
    [(_, (request,))] = control.mutations()
    assert answer.status_code == 200 and request.plan_fields == {} and answer.json()["plan"] is None


async def test_openapi_lists_every_plan_field_as_optional_with_its_range():
    async with in_process(FakeControl()) as c:
        doc = (await c.get("/openapi.json")).json()
    order = doc["components"]["schemas"]["OrderRequest"]
    props = order["properties"]
    assert set(PLAN_FIELD_NAMES) <= set(props) and not set(PLAN_FIELD_NAMES) & set(order["required"])
    for name in PLAN_FIELD_NAMES:
        assert "Overrides the symbol's configured" in props[name]["description"], name
    assert props["tp_levels"]["maxItems"] == 10 and props["breakeven_after_tp"]["maximum"] == 9
    callback = props["trailing_callback_pct"]["anyOf"]
    assert callback[0] == {"const": 0} and callback[1]["minimum"] == 0.1 and callback[1]["maximum"] == 50
    pattern = callback[2]["pattern"]
    assert all(re.fullmatch(pattern, ok) for ok in ("0", "0.1", "2.5", "49.99", "50"))
    assert not any(re.fullmatch(pattern, bad) for bad in ("0.05", "50.1", "51", "-1"))


def test_with_a_ladder_its_levels_are_the_tps_the_venues_price_filter_must_accept():
    rules = PricedRules("BTCUSDT", tick_size=D("0.1"), step_size=D("0.001"), max_price=D("46000"))
    ladder = ExitPlan((TpLevel(D(1), D(50)), TpLevel(D(3), D(50))))
    with pytest.raises(ControlError) as high:  # level 2 at 46,350 > 46,000; rr_ratio's 1 % TP would have passed
        check_exits(Side.LONG, D(45000), Risk(tp_pct=D(1), sl_pct=D(3), plan=ladder), rules)
    assert high.value.field == "tp_levels" and "TP2 would be at 46350" in str(high.value)
    # rr_ratio's TP (200 %: past the filter) is not used where a ladder is set.
    check_exits(Side.LONG, D(45000), Risk(tp_pct=D(200), sl_pct=D(3), plan=ExitPlan((TpLevel(D(2), D(100)),))), rules)
