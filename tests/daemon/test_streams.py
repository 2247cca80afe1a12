"""Stream failures: prices keep flowing over REST while the stream is down; fills missed while the user
stream was disconnected are found by reconciliation after it reconnects."""

from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


async def test_stalled_price_stream_falls_back_to_rest_marks_and_still_closes(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.stall_prices(True)
        h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)  # no frame is published
        await settle()
        assert h.store.open_tranches()  # nothing seen yet

        await trio.sleep(h.settings.daemon.stale_stream_seconds + 3)  # stale -> reconnect, REST polling meanwhile
        await settle()
        assert h.metrics.get("price_stream_stale", venue="sim") >= 1
        assert h.store.open_tranches() == []
        assert_protected_and_no_orphans(h)


async def test_dropped_streams_reconnect_and_a_fill_missed_meanwhile_is_processed(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        h.exchange.drop_streams()
        h.exchange.set_marks({"BTCUSDT": D("45460")})  # the TP limit trades while nobody listens
        await settle()
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert len(h.orders("BTCUSDT")) == 1  # the SL is still resting: posmon has not heard yet

        await trio.sleep(5)  # reconnect backoff, then reconcile
        await settle()
        assert h.metrics.get("user_stream_reconnects", venue="sim") >= 1
        closed = {r["symbol"]: (r["close_reason"], D(r["realized_pnl"])) for r in h.store.closed_tranches()}
        assert closed == {"BTCUSDT": ("TP", D("45"))}
        assert h.orders("BTCUSDT") == []
        assert_protected_and_no_orphans(h)


async def test_entry_while_user_stream_down_is_adopted_after_reconnect(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        h.exchange.drop_streams()
        h.exchange.set_mark("ETHUSDT", D("3000"))
        h.exchange.external_entry("ETHUSDT", Side.LONG, D("2"))
        await trio.sleep(10)
        await settle()
        [t] = h.store.open_tranches()
        assert (t.symbol, t.side, t.qty, t.entry) == ("ETHUSDT", Side.LONG, D("2"), D("3000"))
        assert_protected_and_no_orphans(h)


async def test_malformed_and_unroutable_user_events_are_counted_and_skipped(tmp_path, autojump_clock):
    from posmon.domain.orders import OrderSide, OrderStatus, OrderType
    from posmon.exchange.events import OrderUpdate
    from posmon.sim.wire import encode_user_event

    async with running(make_settings(tmp_path)) as h:
        h.exchange.publish_raw_user_frame(b'{"e":"ORDER_TRADE_UPDATE","E":1,"o":{"s":"BTCUSDT"}}')
        h.exchange.publish_raw_user_frame(b"\x00garbage")
        foreign = OrderUpdate(
            symbol="FOOUSDT",
            client_id="ext-9",
            order_id="9",
            side=OrderSide.BUY,
            position_side="LONG",
            type=OrderType.MARKET,
            status=OrderStatus.FILLED,
            exec_type="TRADE",
            qty=D("1"),
            filled_qty=D("1"),
            last_qty=D("1"),
            last_price=D("10"),
            avg_price=D("10"),
            reduce_only=False,
            realized_pnl=D("0"),
            time=1.0,
        )
        h.exchange.publish_raw_user_frame(encode_user_event(foreign, 1000))
        await settle()
        assert h.metrics.get("user_frames_dropped", venue="sim") == 2
        assert h.metrics.get("user_events_unroutable", venue="sim") == 1

        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # still working
        assert_protected_and_no_orphans(h)
        assert len(h.orders()) == 2
