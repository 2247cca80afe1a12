"""Exit plans (issue 15) end to end: a trailing stop, a take-profit ladder with partial closes and break-even,
on both exit styles over the venues' protocols.

Resting exits (Aster protocol): posmon keeps a reduce-only TP limit for the current ladder level's share and a
STOP_MARKET for the whole tranche; a stop that moves is a new STOP_MARKET placed before the old one is
cancelled. Emulated exits (Lighter protocol): nothing rests, posmon watches the levels and closes with bounded
reduce-only market orders. The plan reaches the actor through its ``Risk`` (``posmon.daemon.risk_of``), as the
``[risk]`` keys will.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest
import trio

import posmon.daemon
from posmon.domain.exitplan import level_qty, make_plan
from posmon.domain.orders import Side
from posmon.domain.protection import parse_client_order_id
from posmon.sim.lighter import build_exchange
from tests.emulated import lighter_like, one_way
from tests.harness import make_settings, new_exchange, running, running_aster, running_lighter, settle, trio_clock
from tests.scenario import assert_protected_and_no_orphans

LADDER = [[1, 30], [2, 30], [3, 40]]


@pytest.fixture
def plan(monkeypatch):
    """Give every tranche the daemon makes this exit plan (``make_plan`` fields)."""

    def use(**fields: Any) -> None:
        p = make_plan(**fields)
        risk_of = posmon.daemon.risk_of
        monkeypatch.setattr(posmon.daemon, "risk_of", lambda s, symbol: replace(risk_of(s, symbol), plan=p))

    return use


def events(h, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in h.store.events(kind)]


def moves(h) -> list[tuple[D, D, str]]:
    return [(D(e["old"]), D(e["new"]), e["why"]) for e in events(h, "stop_moved")]


def closed(h, venue: str) -> list[tuple[str, D, D]]:
    return [(r["close_reason"], D(r["exit_qty"]), D(r["realized_pnl"])) for r in h.store.closed_tranches(venue)]


def assert_legs_match_the_plan(h, symbol: str) -> None:
    """Each open tranche has one TP for its current level's share at its TP and one SL for all of it at its SL;
    nothing else of posmon's rests (no orphan)."""
    held = {t.id: t for t in h.store.open_tranches()}
    rules = h.daemon.rules[symbol]
    legs: Counter[tuple[int, str]] = Counter()
    for o in h.exchange.engine.open_orders():
        parsed = parse_client_order_id("pm", o.client_id)
        assert parsed is not None and parsed[0] in held, f"orphan {o.client_id}"
        t = held[parsed[0]]
        left = o.qty - o.filled_qty
        if parsed[1].name == "TP":
            assert (left, o.price) == (level_qty(t, rules), t.tp), o
        else:
            assert (left, o.stop_price) == (t.qty, t.sl), o
        legs[(t.id, parsed[1].name)] += 1
    assert all(legs[(tid, p)] == 1 for tid in held for p in ("TP", "SL")), legs


# --- trailing stop --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "symbol", "entry", "qty", "sl0", "steps", "trigger"),
    [
        # LONG BTC (tick 0.1): activation +1 % (45450), callback 1 %; the stop follows the best mark up only.
        (
            Side.LONG,
            "BTCUSDT",
            "45000",
            "0.1",
            "42750",
            [("45449.9", "42750"), ("45450", "44995.5"), ("45900", "45441"), ("45600", "45441"), ("46000", "45540")],
            ("45540.1", "45540"),
        ),
        # SHORT ETH (tick 0.01): activation -1 % (2970), the stop follows the best mark down only.
        (
            Side.SHORT,
            "ETHUSDT",
            "3000",
            "1",
            "3150",
            [("2970.01", "3150"), ("2970", "2999.7"), ("2950", "2979.5"), ("2960", "2979.5"), ("2940", "2969.4")],
            ("2969.39", "2969.4"),
        ),
    ],
)
async def test_trailing_stop_rests_as_posmons_own_stop_market_following_the_best_mark_never_loosening(
    tmp_path, autojump_clock, plan, side, symbol, entry, qty, sl0, steps, trigger
):
    plan(trailing_activation_pct=1, trailing_callback_pct=1, trailing_min_step_pct=0)
    async with running_aster(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry(symbol, side, qty, entry)
        stop = "STOP_MARKET", side.closing_order_side.value, qty
        assert (*stop, sl0) in h.resting(symbol)
        for mark, sl in steps:
            await h.mark(symbol, mark)
            [t] = h.store.open_tranches()
            assert t.sl == D(sl), mark
            assert (*stop, sl) in h.resting(symbol) and len(h.resting(symbol)) == 2  # the old stop is gone
            assert_legs_match_the_plan(h, symbol)
        assert [new for _, new, _ in moves(h)] == sorted({D(sl) for _, sl in steps} - {D(sl0)}, reverse=side.sign < 0)
        assert {why for *_, why in moves(h)} == {"trailing"}
        assert h.metrics.get("stop_moves", venue="aster", reason="trailing") == len(moves(h)) == 3
        assert h.metrics.get("stop_moves", reason="breakeven") == 0

        await h.mark(symbol, trigger[0])  # a tick short of the stop: held
        assert h.store.open_tranches() != []
        await h.mark(symbol, trigger[1])  # the stop: the venue closes it
        [(reason, _, pnl)] = closed(h, "aster")
        assert reason == "SL" and pnl == side.sign * (D(trigger[1]) - D(entry)) * D(qty)
        assert h.orders(symbol) == [] and h.exchange.engine.position(symbol, side) is None


@pytest.mark.parametrize(
    ("side", "symbol", "entry", "steps", "trigger", "pnl"),
    [
        (Side.LONG, "BTC", "45000", [("45450", "44995.5"), ("45900", "45441"), ("45600", "45441")], "45441", "44.1"),
        (Side.SHORT, "ETH", "3000", [("2970", "2999.70"), ("2950", "2979.50"), ("2960", "2979.50")], "2979.5", "2.05"),
    ],
)
async def test_emulated_trailing_stop_moves_the_watched_level_and_closes_on_the_callback(
    tmp_path, autojump_clock, plan, side, symbol, entry, steps, trigger, pnl
):
    plan(trailing_activation_pct=1, trailing_callback_pct=1, trailing_min_step_pct=0)
    qty = "0.1"
    async with running_lighter(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        h.exchange.set_mark(symbol, D(entry))
        h.lighter.external_entry(symbol, side, D(qty))
        await settle()
        for mark, sl in steps:
            await h.mark(symbol, mark)
            [t] = h.store.open_tranches()
            assert t.sl == D(sl), mark
        assert h.lighter.counters.requests["POST /api/v1/sendTx"] == 0  # a moved stop sends nothing
        assert len(moves(h)) == 2

        tick = D("0.1") if symbol == "BTC" else D("0.01")
        await h.mark(symbol, str(D(trigger) + side.sign * tick))
        assert h.store.open_tranches() != []
        await h.mark(symbol, trigger)
        assert closed(h, "lighter") == [("SL", D(qty), D(pnl))]
        assert h.lighter.account.signed_position(symbol) == 0


async def test_restart_mid_trail_resumes_from_the_persisted_best_mark_and_places_nothing(
    tmp_path, autojump_clock, plan
):
    plan(trailing_activation_pct=1, trailing_callback_pct=1, trailing_min_step_pct=0)
    settings = make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)
    exchange = new_exchange(settings)
    async with running_aster(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45900")
        [t] = h.store.open_tranches()
        assert (t.sl, t.best_mark) == (D("45441"), D("45900"))
        resting = {o.client_id for o in h.orders()}
        placed = len(h.store.events("protection_placed"))
    exchange.set_mark("BTCUSDT", D("45700"))  # lower while posmon is down: the trail does not restart from here

    async with running_aster(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        [t] = h.store.open_tranches()
        assert (t.sl, t.best_mark) == (D("45441"), D("45900"))
        # The resting stop already matches: nothing placed, nothing replaced.
        assert {o.client_id for o in h.orders()} == resting
        assert len(h.store.events("protection_placed")) == placed
        await h.mark("BTCUSDT", "45800")
        assert h.store.open_tranches()[0].sl == D("45441")
        await h.mark("BTCUSDT", "46000")  # a new best: the stop follows from it
        assert h.store.open_tranches()[0].sl == D("45540")
        assert_legs_match_the_plan(h, "BTCUSDT")
        await h.mark("BTCUSDT", "45540")
        assert closed(h, "aster") == [("SL", D("0.1"), D("54"))]


async def test_emulated_restart_mid_trail_resumes_from_the_persisted_best_mark(tmp_path, autojump_clock, plan):
    plan(trailing_activation_pct=1, trailing_callback_pct=1, trailing_min_step_pct=0)
    settings = make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)
    exchange = build_exchange(clock=trio_clock)
    async with running_lighter(settings, exchange) as h:
        exchange.set_mark("BTC", D("45000"))
        h.lighter.external_entry("BTC", Side.LONG, D("0.1"))
        await settle()
        await h.mark("BTC", "45900")
        assert h.store.open_tranches()[0].sl == D("45441")
    exchange.set_mark("BTC", D("45700"))

    async with running_lighter(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        [t] = h.store.open_tranches()
        assert (t.sl, t.best_mark) == (D("45441"), D("45900"))
        await h.mark("BTC", "45441.1")
        assert h.store.open_tranches() != []
        await h.mark("BTC", "45441")
        assert closed(h, "lighter") == [("SL", D("0.1"), D("44.1"))]


async def test_trailing_min_step_paces_the_stop_moves(tmp_path, autojump_clock, plan):
    # 0.25 %: the stop moves only when the new one is at least 0.25 % above the held one.
    plan(trailing_activation_pct="0.1", trailing_callback_pct=1, trailing_min_step_pct="0.25")
    async with running(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45100")  # active: 44649 beats 42750 by far
        assert h.store.open_tranches()[0].sl == D("44649")
        sent = h.exchange.orders_sent
        # The next stop must be 44649 x 1.0025 = 44760.6225, i.e. 44760.7 on the tick: a mark above 45212.727...
        for mark in ("45150", "45200", "45212.7"):  # stops 44698.5, 44748, 44760.6: not far enough
            await h.mark("BTCUSDT", mark)
        assert h.exchange.orders_sent == sent and h.store.open_tranches()[0].sl == D("44649")
        await h.mark("BTCUSDT", "45212.8")
        assert h.store.open_tranches()[0].sl == D("44760.7")
        assert h.exchange.orders_sent == sent + 1  # one new stop, the old one cancelled
        assert_legs_match_the_plan(h, "BTCUSDT")


# --- take-profit ladder ---------------------------------------------------------------------------------------


async def test_three_level_ladder_fills_each_share_resizes_the_stop_and_the_last_takes_the_rest(
    tmp_path, autojump_clock, plan
):
    plan(tp_levels=LADDER)
    async with running_aster(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        assert h.resting() == {("LIMIT", "SELL", "0.03", "45450"), ("STOP_MARKET", "SELL", "0.1", "42750")}

        assert_protected_and_no_orphans(h)  # the end-of-scenario check knows a ladder's TP is for one level

        await h.mark("BTCUSDT", "45460")  # level 1's limit trades
        assert h.resting() == {("LIMIT", "SELL", "0.03", "45900"), ("STOP_MARKET", "SELL", "0.07", "42750")}
        assert_legs_match_the_plan(h, "BTCUSDT")
        assert_protected_and_no_orphans(h)
        await h.mark("BTCUSDT", "45910")
        assert h.resting() == {("LIMIT", "SELL", "0.04", "46350"), ("STOP_MARKET", "SELL", "0.04", "42750")}
        assert_legs_match_the_plan(h, "BTCUSDT")
        await h.mark("BTCUSDT", "46360")  # the last level takes the rest

        assert closed(h, "aster") == [("TP", D("0.1"), D("94.5"))]  # 0.03 x 450 + 0.03 x 900 + 0.04 x 1350
        assert [(e["level"], D(e["qty"]), D(e["pnl"])) for e in events(h, "partial_close")] == [
            (1, D("0.03"), D("13.5")),
            (2, D("0.03"), D("27")),
        ]
        assert h.metrics.get("partial_closes", venue="aster") == 2  # the last level closes the tranche
        assert h.orders() == [] and h.exchange.engine.position("BTCUSDT", Side.LONG) is None


async def test_a_level_partly_filled_keeps_resting_for_the_rest_of_its_share(tmp_path, autojump_clock, plan):
    plan(tp_levels=LADDER)
    async with running(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [tp] = [o for o in h.orders() if o.type.value == "LIMIT"]
        h.exchange.trade_partially("BTCUSDT", tp.client_id, D("0.01"))
        await settle()
        [t] = h.store.open_tranches()
        assert (t.qty, t.level) == (D("0.09"), 0)
        # The same limit keeps resting for the level's other 0.02; the stop is resized to what is left.
        assert {(o.client_id, o.qty - o.filled_qty) for o in h.orders() if o.type.value == "LIMIT"} == {
            (tp.client_id, D("0.02"))
        }
        assert ("STOP_MARKET", "SELL", "0.09", "42750") in h.resting() and len(h.orders()) == 2

        await h.mark("BTCUSDT", "45460")  # the rest of the level trades: level 2 rests for its share
        assert h.resting() == {("LIMIT", "SELL", "0.03", "45900"), ("STOP_MARKET", "SELL", "0.07", "42750")}
        assert [e["level_done"] for e in events(h, "partial_close")] == [False, True]


async def test_mark_running_through_a_level_closes_that_share_at_market_and_the_ladder_goes_on(
    tmp_path, autojump_clock, plan
):
    plan(tp_levels=LADDER)
    async with running_aster(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)  # through level 1; its limit never traded
        await settle()

        [t] = h.store.open_tranches()
        assert (t.qty, t.level, t.tp) == (D("0.07"), 1, D("45900"))
        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.07")
        assert h.resting() == {("LIMIT", "SELL", "0.03", "45900"), ("STOP_MARKET", "SELL", "0.07", "42750")}
        assert_legs_match_the_plan(h, "BTCUSDT")
        [e] = events(h, "partial_close")
        assert (e["level"], D(e["qty"]), D(e["price"]), D(e["pnl"])) == (1, D("0.03"), D("45500"), D("15"))

        h.exchange.set_marks({"BTCUSDT": D("47000")}, trade=False)  # through levels 2 and 3 at once
        await settle()
        assert closed(h, "aster") == [("TP", D("0.1"), D("15") + D("60") + D("80"))]
        assert h.orders() == [] and h.exchange.engine.position("BTCUSDT", Side.LONG) is None


async def test_emulated_ladder_closes_each_share_with_a_bounded_order(tmp_path, autojump_clock, plan):
    plan(tp_levels=LADDER)
    async with running_lighter(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        h.exchange.set_mark("BTC", D("45000"))
        h.lighter.external_entry("BTC", Side.LONG, D("0.1"))
        await settle()
        await h.mark("BTC", "45449.9")
        assert h.store.open_tranches()[0].qty == D("0.1")
        await h.mark("BTC", "45450")
        [t] = h.store.open_tranches()
        assert (t.qty, t.level, t.tp, t.sl) == (D("0.07"), 1, D("45900"), D("42750"))
        assert h.lighter.account.signed_position("BTC") == D("0.07")
        await h.mark("BTC", "45900")
        assert h.store.open_tranches()[0].qty == D("0.04")
        await h.mark("BTC", "46350")

        assert closed(h, "lighter") == [("TP", D("0.1"), D("13.5") + D("27") + D("54"))]
        assert [D(e["qty"]) for e in events(h, "close_sent")] == [D("0.03"), D("0.03"), D("0.04")]
        assert h.metrics.get("partial_closes", venue="lighter") == 2
        assert h.lighter.account.signed_position("BTC") == 0 and h.lighter.account.open_orders() == []


# --- break-even -----------------------------------------------------------------------------------------------


async def test_break_even_after_tp1_moves_the_stop_to_entry_plus_offset_once_level_1_fills(
    tmp_path, autojump_clock, plan
):
    plan(tp_levels=[[1, 50], [2, 50]], breakeven_after_tp=1, breakeven_offset_pct="0.1")
    async with running_aster(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45449.9")  # a gain alone earns nothing
        assert h.resting() == {("LIMIT", "SELL", "0.05", "45450"), ("STOP_MARKET", "SELL", "0.1", "42750")}
        assert moves(h) == []

        await h.mark("BTCUSDT", "45450")  # level 1 fills
        assert h.resting() == {("LIMIT", "SELL", "0.05", "45900"), ("STOP_MARKET", "SELL", "0.05", "45045")}
        assert moves(h) == [(D("42750"), D("45045"), "break-even")]
        assert_protected_and_no_orphans(h)
        assert h.metrics.get("stop_moves", venue="aster", reason="breakeven") == 1
        assert h.metrics.get("stop_moves", reason="trailing") == 0
        assert_legs_match_the_plan(h, "BTCUSDT")

        await h.mark("BTCUSDT", "45045")
        assert closed(h, "aster") == [("SL", D("0.1"), D("22.5") + D("2.25"))]
        assert h.orders() == []


async def test_emulated_break_even_after_tp1(tmp_path, autojump_clock, plan):
    plan(tp_levels=[[1, 50], [2, 50]], breakeven_after_tp=1, breakeven_offset_pct="0.1")
    async with running_lighter(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        h.exchange.set_mark("BTC", D("45000"))
        h.lighter.external_entry("BTC", Side.LONG, D("0.1"))
        await settle()
        await h.mark("BTC", "45449.9")
        assert h.store.open_tranches()[0].sl == D("42750")
        await h.mark("BTC", "45450")
        [t] = h.store.open_tranches()
        assert (t.qty, t.sl) == (D("0.05"), D("45045"))
        assert moves(h) == [(D("42750"), D("45045"), "break-even")]
        await h.mark("BTC", "45045.1")
        assert h.store.open_tranches() != []
        await h.mark("BTC", "45045")
        assert closed(h, "lighter") == [("SL", D("0.1"), D("22.5") + D("2.25"))]


async def test_break_even_on_a_gain_moves_the_stop_once(tmp_path, autojump_clock, plan):
    plan(breakeven_trigger_pct="0.5", breakeven_offset_pct="0.1")
    async with running(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45224.9")
        assert moves(h) == []
        await h.mark("BTCUSDT", "45225")  # +0.5 %
        assert moves(h) == [(D("42750"), D("45045"), "break-even")]
        assert h.metrics.get("stop_moves", venue="sim", reason="breakeven") == 1
        sent = h.exchange.orders_sent
        await h.mark("BTCUSDT", "45400")
        assert len(moves(h)) == 1 and h.exchange.orders_sent == sent
        assert_legs_match_the_plan(h, "BTCUSDT")


async def test_no_plan_keeps_one_tp_and_one_sl_for_the_whole_tranche(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45449")
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "42750")}
        assert moves(h) == [] and events(h, "partial_close") == []
        assert h.metrics.get("stop_moves") == h.metrics.get("partial_closes") == 0


# --- restarts -------------------------------------------------------------------------------------------------


async def test_a_stop_move_persisted_but_never_sent_is_placed_after_a_restart(tmp_path, autojump_clock, plan):
    plan(trailing_activation_pct=1, trailing_callback_pct=1, trailing_min_step_pct=0)
    settings = make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        exchange.fail_next("place_orders", 1000)  # the new stop never reaches the exchange
        exchange.fail_next("query_order", 1000)
        await h.mark("BTCUSDT", "45900")
        assert h.store.open_tranches()[0].sl == D("45441")  # decided and written first
        assert ("STOP_MARKET", "SELL", "0.1", "42750") in h.resting()

    exchange.faults.clear()
    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        # The leg is checked by price: the old stop is replaced by the one the tranche holds.
        assert h.resting() == {("LIMIT", "SELL", "0.1", "49500"), ("STOP_MARKET", "SELL", "0.1", "45441")}
        assert_legs_match_the_plan(h, "BTCUSDT")


async def test_restart_mid_ladder_keeps_the_current_level_and_places_nothing(tmp_path, autojump_clock, plan):
    plan(tp_levels=LADDER, breakeven_after_tp=1)
    settings = make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0, instant_tp_enabled=False)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45450")
        resting = h.resting()
        assert resting == {("LIMIT", "SELL", "0.03", "45900"), ("STOP_MARKET", "SELL", "0.07", "45000")}
        ids = {o.client_id for o in h.orders()}

    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        [t] = h.store.open_tranches()
        assert (t.level, t.qty, t.tp, t.sl) == (1, D("0.07"), D("45900"), D("45000"))
        assert {o.client_id for o in h.orders()} == ids
        await h.mark("BTCUSDT", "45900")
        assert h.resting() == {("LIMIT", "SELL", "0.04", "46350"), ("STOP_MARKET", "SELL", "0.04", "45000")}
        assert_legs_match_the_plan(h, "BTCUSDT")


async def test_a_level_close_that_cannot_fill_within_its_bound_is_retried_for_the_same_share(
    tmp_path, autojump_clock, plan
):
    plan(tp_levels=LADDER)
    settings = one_way(tmp_path, tp_pct=10.0, sl_pct=5.0)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        exchange.engine.set_market_impact("BTCUSDT", D("0.8"))  # a thin book: market sells fill 0.8 % under
        await h.mark("BTCUSDT", "45500")  # through level 1

        # 0.5 % expires unfilled, 1.0 % fills: both for the level's 0.03, never for the whole tranche.
        assert [(D(e["qty"]), D(e["worst_price"])) for e in events(h, "close_sent")] == [
            (D("0.03"), D("45272.5")),
            (D("0.03"), D("45045")),
        ]
        [t] = h.store.open_tranches()
        assert (t.qty, t.level, t.closing) == (D("0.07"), 1, None)
        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.07")


async def test_operator_close_during_a_level_close_closes_the_whole_tranche(tmp_path, autojump_clock, plan):
    plan(tp_levels=LADDER)
    settings = one_way(tmp_path, tp_pct=10.0, sl_pct=5.0)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        exchange.engine.set_market_impact("BTCUSDT", D("4"))  # the level's close cannot fill within the cap
        await h.mark("BTCUSDT", "45500")
        [t] = h.store.open_tranches()
        assert (t.closing, t.qty) == ("TP", D("0.1"))

        await h.daemon.control.close("BTCUSDT", tranche_id=t.id)
        exchange.engine.set_market_impact("BTCUSDT", D("0"))
        await trio.sleep(130)  # past the pause at the slippage cap
        await settle()
        assert [(r, q) for r, q, _ in closed(h, "sim")] == [("MANUAL", D("0.1"))]
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert D(events(h, "close_sent")[-1]["qty"]) == D("0.1")
