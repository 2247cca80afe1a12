"""Emulated exits (the Lighter way): no resting TP/SL; posmon closes with bounded reduce-only market orders.

Runs on the in-process simulator in one-way mode with Lighter-style market orders (``price`` is the worst
acceptable fill; what cannot fill within it expires), so the rules are tested apart from the protocol.
"""

from decimal import Decimal as D

import trio

from posmon.actors.messages import Notice
from posmon.domain.orders import Side
from tests.emulated import lighter_like, one_way
from tests.harness import running, settle


def closed(h, symbol="BTCUSDT"):
    return {
        r["idx"]: (r["close_reason"], D(r["realized_pnl"]))
        for r in h.store.closed_tranches("sim")
        if r["symbol"] == symbol
    }


def close_bounds(h):
    return [D(e["data"]["worst_price"]) for e in h.store.events("close_sent")]


async def test_long_take_profit_is_watched_by_posmon_and_closed_with_a_bounded_order(tmp_path, autojump_clock):
    settings = one_way(tmp_path, tp_pct=1.0, sl_pct=5.0)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # TP 45450, SL 42750
        assert h.orders() == []  # nothing rests on the exchange: the exits are posmon's
        [t] = h.store.open_tranches("sim")
        assert (t.tp, t.sl) == (D("45450"), D("42750"))

        await h.mark("BTCUSDT", "45449.9")
        assert closed(h) == {}
        await h.mark("BTCUSDT", "45460")

        assert closed(h) == {0: ("TP", (D("45460") - D("45000")) * D("0.1"))}
        assert close_bounds(h) == [D("45232.7")]  # 0.5 % below the mark, rounded down to the tick
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert h.orders() == []


async def test_short_stop_loss_closes_only_when_the_mark_reaches_the_stop(tmp_path, autojump_clock):
    settings = one_way(tmp_path, tp_pct=1.0, sl_pct=5.0)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.SHORT, "0.2", "45000")  # TP 44550, SL 47250
        await h.mark("BTCUSDT", "47249.9")
        assert closed(h) == {}
        await h.mark("BTCUSDT", "47300")

        assert closed(h) == {0: ("SL", (D("45000") - D("47300")) * D("0.2"))}
        assert close_bounds(h) == [D("47536.5")]  # a BUY may pay at most 0.5 % above the mark
        assert h.exchange.engine.position("BTCUSDT", Side.SHORT) is None


async def test_tranche_held_past_max_hold_seconds_is_closed_at_its_deadline(tmp_path, autojump_clock):
    settings = one_way(tmp_path, tp_pct=1.0, sl_pct=5.0, max_hold_seconds=60)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await trio.sleep(59)
        assert closed(h) == {}
        await trio.sleep(2)
        await settle()

        assert closed(h) == {0: ("TIMEOUT", D(0))}
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None


async def test_close_that_cannot_fill_within_the_bound_is_retried_wider_until_it_fills(tmp_path, autojump_clock):
    settings = one_way(tmp_path, tp_pct=1.0, sl_pct=5.0)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        exchange.engine.set_market_impact("BTCUSDT", D("0.8"))  # a thin book: market sells fill 0.8 % under
        await h.mark("BTCUSDT", "42000")  # through the stop at 42750

        # 0.5 % expires unfilled, 1.0 % fills (at 0.8 % under the mark).
        assert close_bounds(h) == [D("41790"), D("41580")]
        assert closed(h) == {0: ("SL", (D("41664") - D("45000")) * D("0.1"))}
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None


async def test_close_beyond_the_slippage_cap_alerts_a_human_and_never_leaves_the_position_silently(
    tmp_path, autojump_clock
):
    settings = one_way(tmp_path, tp_pct=1.0, sl_pct=5.0)
    exchange, venue = lighter_like(settings)
    send, notices = trio.open_memory_channel[Notice](100)
    async with running(settings, exchange, venue=venue, notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        exchange.engine.set_market_impact("BTCUSDT", D("4"))  # nothing fills within the 1.5 % cap
        await h.mark("BTCUSDT", "42000")

        assert close_bounds(h) == [D("41790"), D("41580"), D("41370")]  # widened up to the cap, never beyond
        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.1")
        [t] = h.store.open_tranches("sim")  # still held and still being closed: not forgotten
        assert t.closing == "SL"
        seen = []
        while True:
            try:
                seen.append(notices.receive_nowait())
            except trio.WouldBlock:
                break
        assert [n.kind for n in seen if n.kind == "close_failed"] == ["close_failed"]

        # A minute later: still trying at the cap, with a doubling pause, and the operator was told only once.
        await trio.sleep(60)
        await settle()
        assert set(close_bounds(h)[3:]) == {D("41370")} and 3 <= len(close_bounds(h)[3:]) <= 5
        while True:
            try:
                seen.append(notices.receive_nowait())
            except trio.WouldBlock:
                break
        assert [n.kind for n in seen if n.kind == "close_failed"] == ["close_failed"]

        # It keeps trying at the cap; once the book recovers the next attempt closes it.
        exchange.engine.set_market_impact("BTCUSDT", D("0.1"))
        await trio.sleep(120)  # the pause between tries at the cap is at most two minutes
        await settle()
        assert max(close_bounds(h)) == D("41790") and min(close_bounds(h)) == D("41370")
        assert closed(h)[0][0] == "SL"
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
