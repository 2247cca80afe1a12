"""The position actor records what a tranche's exits did, in the transaction that closes it.

Through the in-process simulator: a TP that trades, an SL, an instant close at market, a timeout. The venue here
reports a taker fee on every fill (as Aster's ORDER_TRADE_UPDATE does in ``n``/``N``; the simulator itself
reports none), so the fees are checked too, including one that arrives after the close's own answer.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from posmon.exchange.events import OrderUpdate, UserEvent
from posmon.sim.venue import SimVenue
from tests.harness import make_settings, new_exchange, running, settle

FEE_RATE = D("0.0004")


class FeeReportingVenue(SimVenue):
    """The simulator's venue, its stream reporting a 0.04 % fee in USDT on every fill."""

    def parse_user_frame(self, frame: bytes) -> list[UserEvent]:
        return [
            dataclasses.replace(e, commission=e.last_qty * e.last_price * FEE_RATE, commission_asset="USDT")
            if isinstance(e, OrderUpdate) and e.is_fill
            else e
            for e in super().parse_user_frame(frame)
        ]


def fee_venue(settings):
    exchange = new_exchange(settings)
    return exchange, FeeReportingVenue(exchange)


async def test_a_tp_fill_keeps_exit_price_reason_pnl_fees_and_hold(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, instant_tp_enabled=False)
    exchange, venue = fee_venue(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # TP limit 45450
        opened = trio.current_time()
        await trio.sleep(90)
        await h.mark("BTCUSDT", "45460")

        (t,) = h.store.history().tranches
        assert (t.exit_reason, t.side, t.entry, t.exit_price, t.qty) == (
            "TP",
            Side.LONG,
            D("45000"),
            D("45450"),
            D("0.1"),
        )
        assert t.realized_pnl == D("45")
        assert t.fees == D("0.1") * D("45450") * FEE_RATE  # the TP's fill; the entry was not posmon's order
        assert t.net_pnl == D("45") - t.fees
        assert t.hold_seconds == trio.current_time() - opened == 90
        # Written with the close: the journal's close event carries the same figures.
        (closed_event,) = h.store.events("tranche_closed")
        assert closed_event["data"]["exit_price"] == "45450" and closed_event["data"]["fees"] == str(t.fees)


async def test_an_sl_fill_keeps_its_loss_and_exit_price(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, sl_pct=2.0)
    exchange, venue = fee_venue(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.SHORT, "0.1", "45000")  # SL stop 45900, fills at the mark
        await trio.sleep(30)
        await h.mark("BTCUSDT", "45950")

        (t,) = h.store.history().tranches
        assert (t.exit_reason, t.side, t.exit_price, t.qty) == ("SL", Side.SHORT, D("45950"), D("0.1"))
        assert t.realized_pnl == D("-95")
        assert t.fees == D("0.1") * D("45950") * FEE_RATE
        assert t.hold_seconds == 30


async def test_an_instant_close_at_market_keeps_its_fee_whichever_answer_comes_first(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange, venue = fee_venue(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)  # through the TP: a market close
        await settle()

        (t,) = h.store.history().tranches
        assert (t.exit_reason, t.exit_price, t.realized_pnl) == ("TP", D("45500"), D("50"))
        assert t.fees == D("0.1") * D("45500") * FEE_RATE


async def test_partial_exits_give_a_volume_weighted_exit_price(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, instant_tp_enabled=False, max_hold_seconds=60)
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        tp = next(o for o in h.orders() if o.type.value == "LIMIT")
        h.exchange.trade_partially("BTCUSDT", tp.client_id, D("0.04"))  # 0.04 at 45450
        await settle()
        h.exchange.set_marks({"BTCUSDT": D("45100")}, trade=False)
        await trio.sleep(61)  # the rest, 0.06, closed at market by the hold limit at 45100
        await settle()

        (t,) = h.store.history().tranches
        assert (t.exit_reason, t.qty, t.fees) == ("TIMEOUT", D("0.1"), 0)  # the simulator reports no fees
        assert t.exit_price == (D("0.04") * D("45450") + D("0.06") * D("45100")) / D("0.1") == D("45240")
        assert t.realized_pnl == D("18") + D("6")
        assert t.hold_seconds == 60  # closed at its deadline


async def test_the_daemons_control_answers_the_history(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.LONG, "1", "3000")
        await h.mark("BTCUSDT", "45460")
        await h.mark("ETHUSDT", "3031")

        everything = await h.daemon.control.history()
        assert [(t.symbol, t.exit_reason) for t in everything.tranches] == [("BTCUSDT", "TP"), ("ETHUSDT", "TP")]
        assert everything.realized_pnl == D("45") + D("30")
        eth = await h.daemon.control.history(symbol="ETHUSDT")
        assert [t.symbol for t in eth.tranches] == ["ETHUSDT"]
        assert [t.symbol for t in (await h.daemon.control.history(limit=1)).tranches] == ["ETHUSDT"]
        assert (await h.daemon.control.history(since=trio.current_time() + 1)).tranches == []


async def test_a_close_outside_posmon_is_recorded_at_its_fill_price(tmp_path, autojump_clock):
    from posmon.domain.orders import OrderRequest, OrderSide, OrderType

    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "44800")
        # Another program closes the position at market (its fill is on the user stream).
        h.exchange.place_orders(
            [OrderRequest("manual-1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.MARKET, D("0.1"))]
        )
        await settle()

        (t,) = h.store.history().tranches
        assert (t.exit_reason, t.exit_price, t.qty, t.fees) == ("EXTERNAL", D("44800"), D("0.1"), 0)
        assert t.realized_pnl == D("-20")
