"""Exits on the exchange-side (Aster-style) path: instant close, one-cancels-other, hold-time close."""

from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


def closed(h, symbol="BTCUSDT"):
    return {
        r["idx"]: (r["close_reason"], D(r["realized_pnl"]))
        for r in h.store.closed_tranches("sim")
        if r["symbol"] == symbol
    }


async def test_instant_close_long_closes_only_the_tranche_whose_tp_the_mark_ran_through(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.08", "42300")  # tranche 1: TP 42723
        t0_orders = {o.client_id for o in h.orders() if o.client_id.startswith("pm-1-")}
        sent_before = h.exchange.orders_sent

        # The mark runs through tranche 1's TP while its TP limit has not traded.
        h.exchange.set_marks({"BTCUSDT": D("42800")}, trade=False)
        await settle()

        assert closed(h) == {1: ("TP", (D("42800") - D("42300")) * D("0.08"))}
        assert h.exchange.orders_sent == sent_before + 1  # one market close, nothing else placed
        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.1")
        assert {o.client_id for o in h.orders()} == t0_orders  # tranche 0 untouched
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        assert_protected_and_no_orphans(h)


async def test_instant_close_short(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.SHORT, "0.1", "45000")  # TP 44550, SL 67500
        await h.entry("BTCUSDT", Side.SHORT, "0.08", "47700")  # PnL -6 %: tranche 1, TP 47223
        assert ("LIMIT", "BUY", "0.08", "47223") in h.resting()

        h.exchange.set_marks({"BTCUSDT": D("47200")}, trade=False)
        await settle()

        assert closed(h) == {1: ("TP", (D("47700") - D("47200")) * D("0.08"))}
        assert h.exchange.engine.position("BTCUSDT", Side.SHORT).qty == D("0.1")
        assert h.resting() == {("LIMIT", "BUY", "0.1", "44550"), ("STOP_MARKET", "BUY", "0.1", "67500")}
        assert_protected_and_no_orphans(h)


async def test_tp_fill_cancels_its_stop(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45460")  # the TP limit at 45450 trades

        assert closed(h) == {0: ("TP", D("45"))}
        assert h.orders() == []
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert h.exchange.engine.realized_pnl("BTCUSDT") == D("45")
        assert_protected_and_no_orphans(h)


async def test_tp_trading_while_instant_close_races_it_closes_once(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.LONG, "1", "3000")
        await h.mark("BTCUSDT", "45460")  # mark through TP and the limit trades in the same instant

        assert closed(h) == {0: ("TP", D("45"))}
        assert h.exchange.engine.realized_pnl("BTCUSDT") == D("45")  # not closed twice
        assert h.exchange.engine.position("ETHUSDT", Side.LONG).qty == D("1")
        assert_protected_and_no_orphans(h)


async def test_sl_fill_cancels_its_take_profit(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, sl_pct=2.0)) as h:
        await h.entry("BTCUSDT", Side.SHORT, "0.1", "45000")  # SL 45900
        await h.mark("BTCUSDT", "45950")

        reason, pnl = closed(h)[0]
        assert reason == "SL" and pnl == D("-95")  # stop-market fills at the mark 45950
        assert h.orders() == []
        assert_protected_and_no_orphans(h)


async def test_hold_time_closes_a_tranche_at_market(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, max_hold_seconds=60)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await trio.sleep(59)
        assert closed(h) == {}
        h.exchange.set_marks({"BTCUSDT": D("45100")}, trade=False)
        await trio.sleep(2)
        await settle()

        assert closed(h) == {0: ("TIMEOUT", D("10"))}
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert_protected_and_no_orphans(h)


async def test_close_that_finds_no_position_does_not_loop_and_is_reconciled(tmp_path, autojump_clock):
    from posmon.domain.orders import OrderRequest, OrderSide, OrderType

    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        # Someone flattens the position and posmon never hears of it (the event is lost).
        h.exchange.engine.place(
            OrderRequest("manual-1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.MARKET, D("0.1")), 0.0
        )
        h.exchange.engine.drain_events()
        h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)  # instant close: nothing left to close
        await trio.sleep(60)
        await settle()

        closes = [o for o in h.exchange.engine.open_orders()]
        assert closes == []
        assert h.exchange.calls["place_orders"] <= 3  # a bounded number of close attempts, not a loop
        # The close itself was never seen: its PnL is booked at the mark when the read showed the gap.
        assert closed(h) == {0: ("EXTERNAL", D("0.1") * (D("45500") - D("45000")))}
        assert_protected_and_no_orphans(h)


async def test_partial_tp_fill_resizes_the_stop_and_the_rest_exits_later(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        tp = next(o for o in h.orders() if o.type.value == "LIMIT")
        h.exchange.trade_partially("BTCUSDT", tp.client_id, D("0.04"))
        await settle()

        [t0] = h.store.open_tranches()
        assert t0.qty == D("0.06")
        # The TP keeps resting for its open 0.06; the stop now covers exactly 0.06.
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.06", "22500")}
        assert_protected_and_no_orphans(h)

        await h.mark("BTCUSDT", "45460")
        assert closed(h) == {0: ("TP", D("45"))}  # 0.04 + 0.06 at 45450
        assert h.orders() == []
        assert_protected_and_no_orphans(h)
