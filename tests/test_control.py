"""The operator's control surface on a running daemon: open, status, close, stop and resume monitoring."""

import dataclasses
from decimal import Decimal as D

import pytest
import trio

from posmon.control import ControlError, OpenRequest
from posmon.domain.orders import Side
from tests.emulated import lighter_like, one_way
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


def open_request(side=Side.LONG, **kw):
    fields = {
        "symbol": "BTCUSDT",
        "side": side,
        "size_usd": D(4500),
        "leverage": 5,
        "sl_pct": D(3),
        "rr_ratio": (D(1), D(2)),
    } | kw
    return OpenRequest(**fields)


async def test_open_long_places_the_entry_and_protects_it_at_sl_3_and_tp_6_percent(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")
        result = await h.daemon.control.open_position(open_request())
        await settle()

        assert result.status == "FILLED"
        assert (result.qty, result.entry_price) == (D("0.1"), D("45000"))  # 4,500 USD notional at 45,000
        assert (result.sl, result.tp) == (D("43650"), D("47700"))  # 3 % below, 6 % above the fill
        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.1")
        assert h.resting() == {("LIMIT", "SELL", "0.1", "47700"), ("STOP_MARKET", "SELL", "0.1", "43650")}
        assert_protected_and_no_orphans(h)


async def test_open_short_on_emulated_exits_venue_books_sl_and_tp_without_resting_orders(tmp_path, autojump_clock):
    settings = one_way(tmp_path)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.mark("BTCUSDT", "45000")
        result = await h.daemon.control.open_position(open_request(Side.SHORT))
        await settle()

        assert (result.sl, result.tp) == (D("46350"), D("42300"))
        assert h.orders() == []
        await h.mark("BTCUSDT", "42290")
        assert h.exchange.engine.position("BTCUSDT", Side.SHORT) is None
        assert [r["close_reason"] for r in h.store.closed_tranches("sim")] == ["TP"]


async def test_open_refuses_unknown_symbol_and_a_size_below_the_minimum_and_sends_nothing(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")
        sent = h.exchange.orders_sent
        with pytest.raises(ControlError) as unknown:
            await h.daemon.control.open_position(open_request(symbol="NOPEUSDT"))
        assert (unknown.value.field, unknown.value.status) == ("symbol", 404)
        with pytest.raises(ControlError) as tiny:
            await h.daemon.control.open_position(open_request(size_usd=D("0.01"), leverage=1))
        assert tiny.value.field == "size_usd"
        assert h.exchange.orders_sent == sent


async def test_status_lists_every_tranche_with_its_exits_timeout_and_unrealized_pnl(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, max_hold_seconds=600)
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await trio.sleep(100)
        await h.mark("BTCUSDT", "45100")
        report = await h.daemon.control.status()

        [t] = report.tranches
        assert (t.symbol, t.side, t.entry, t.qty, t.tp, t.sl) == (
            "BTCUSDT",
            Side.LONG,
            D(45000),
            D("0.1"),
            D(45450),
            D(22500),
        )
        assert t.max_hold_seconds == 600 and t.remaining_seconds == pytest.approx(500)
        assert t.unrealized_pnl == D("10.0")
        assert report.running and report.venue == "sim"
        assert {s.name for s in report.streams} == {"price", "user"}
        # The user stream's last frame is known too (the entry's fill), not "no frame yet".
        [user] = [s for s in report.streams if s.name == "user"]
        assert user.up and user.last_frame_age_seconds is not None and user.last_frame_age_seconds >= 0


async def test_close_now_closes_the_position_at_market(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [result] = await h.daemon.control.close("BTCUSDT")
        await settle()

        assert result.side is Side.LONG and len(result.tranche_ids) == 1
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert h.orders() == []
        assert [r["close_reason"] for r in h.store.closed_tranches("sim")] == ["MANUAL"]


async def test_stop_monitoring_forgets_without_closing_and_the_position_is_not_readopted(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        result = await h.daemon.control.stop_monitoring("BTCUSDT")
        await settle()

        assert len(result.tranche_ids) == 1
        assert h.orders() == []  # posmon's TP and SL are gone ...
        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.1")  # ... the position is not
        assert h.store.open_tranches("sim") == []

        # Another fill and account sweeps (as after a stream reconnect) later, it is still left alone.
        await h.entry("BTCUSDT", Side.LONG, "0.05", "45000")
        for _ in range(2):
            assert await h.daemon.reconciler.sweep()
            await trio.sleep(5)
            await settle()
        assert h.store.open_tranches("sim") == [] and h.orders() == []

        await h.daemon.control.resume_monitoring("BTCUSDT")
        await trio.sleep(10)  # adoption waits for the gap to show in two snapshots
        await settle()
        assert sum(t.qty for t in h.store.open_tranches("sim")) == D("0.15")
        assert_protected_and_no_orphans(h)


async def test_stopped_symbol_stays_unmonitored_across_a_restart(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = None
    async with running(settings) as h:
        exchange = h.exchange
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.daemon.control.stop_monitoring("BTCUSDT")
        await settle()
    async with running(dataclasses.replace(settings), exchange) as h:
        await trio.sleep(30)
        await settle()
        assert h.store.open_tranches("sim") == [] and h.orders() == []
        assert (await h.daemon.control.status()).unmonitored == ["BTCUSDT"]


async def test_book_gauges_count_open_tranches_and_unprotected_positions(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        await trio.sleep(6)
        assert h.metrics.get("open_tranches", venue="sim") == 2
        assert h.metrics.get("unprotected_positions", venue="sim") == 0

        await h.daemon.control.close("ETHUSDT")
        await trio.sleep(6)
        assert h.metrics.get("open_tranches", venue="sim") == 1


async def test_status_reports_the_request_budget_left_and_the_daemon_clock(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")
        for _ in range(3):
            await h.daemon.control.open_position(open_request())
        await settle()
        busy = await h.daemon.control.status()
        await trio.sleep(5)  # no request meanwhile: the budget refills and the report says so
        later = await h.daemon.control.status()

        assert busy.rate_limit is not None and later.rate_limit is not None
        assert busy.rate_limit.weight_headroom < later.rate_limit.weight_headroom <= 1.0
        assert busy.rate_limit.orders_headroom < later.rate_limit.orders_headroom <= 1.0
        assert (busy.rate_limit.weight_per_minute, busy.rate_limit.paused_seconds) == (2400, 0.0)
        assert busy.now == pytest.approx(trio.current_time() - 5)  # the clock opened_at is on
        assert len(busy.tranches) == 3 and all(t.opened_at <= busy.now for t in busy.tranches)


async def test_stop_says_posmons_tp_and_sl_orders_were_cancelled_and_the_position_is_left_unprotected(
    tmp_path, autojump_clock
):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches("sim")
        result = await h.daemon.control.stop_monitoring("BTCUSDT")
        await settle()
        assert h.orders() == []  # what the message says happened, happened
    assert result.exits == "exchange"
    assert result.message == (
        f"stopped monitoring BTCUSDT: posmon cancelled its TP and SL orders of tranche {t.id} on the venue; the "
        "position is left open and UNPROTECTED (no TP, no SL from posmon) until you close it or run "
        "'posmon resume BTCUSDT'"
    )


async def test_stop_on_an_emulated_exits_venue_says_posmon_no_longer_watches_the_exits(tmp_path, autojump_clock):
    settings = one_way(tmp_path)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches("sim")
        result = await h.daemon.control.stop_monitoring("BTCUSDT")
    assert result.exits == "emulated"
    assert f"posmon no longer watches the TP and SL of tranche {t.id}" in result.message
    assert "left open and UNPROTECTED" in result.message


async def test_status_shows_a_tranche_whose_sl_was_cancelled_on_the_venue_as_not_live(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [before] = (await h.daemon.control.status()).tranches
        assert before.exits_live and before.exit_orders == {"tp": "LIVE", "sl": "LIVE"}

        # Someone cancels the SL on the venue, and posmon's attempt to put it back gets no answer.
        [sl] = [o for o in h.orders() if o.type.value == "STOP_MARKET"]
        h.exchange.fail_next("place_orders")
        h.exchange.cancel_orders("BTCUSDT", [sl.client_id])
        await settle()
        [after] = (await h.daemon.control.status()).tranches

        assert not after.exits_live
        assert after.exit_orders["tp"] == "LIVE" and after.exit_orders["sl"] in ("MISSING", "PENDING")


async def test_status_shows_emulated_exits_as_watched_while_the_actor_holds_the_tranche(tmp_path, autojump_clock):
    settings = one_way(tmp_path)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = (await h.daemon.control.status()).tranches
        assert t.exits == "emulated" and t.exits_live and t.exit_orders == {"tp": "WATCHED", "sl": "WATCHED"}

        h.daemon.directory.actor("BTCUSDT", Side.LONG).running = False  # as while a crashed actor awaits its restart
        [t] = (await h.daemon.control.status()).tranches
        assert not t.exits_live and t.exit_orders == {"tp": "UNWATCHED", "sl": "UNWATCHED"}


async def test_the_headroom_metric_refills_while_the_daemon_is_idle(tmp_path, autojump_clock):
    """The gauge is read at each scrape: a budget spent by a burst shows as refilled once nothing is sent."""
    from posmon.metrics import render

    def scraped() -> float:
        body, _ = render(h.metrics)
        [line] = [ln for ln in body.decode().splitlines() if ln.startswith("posmon_rate_limit_headroom{")]
        return float(line.rsplit(" ", 1)[1])

    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")
        for _ in range(3):
            await h.daemon.control.open_position(open_request())
        await settle()
        busy = scraped()
        await trio.sleep(60)  # nothing sent meanwhile
        idle = scraped()
    assert busy < idle == 1.0
