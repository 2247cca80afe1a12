"""What a hedge pair asks of a leg's position actor, end to end on the simulators: a trim (part of a tranche closed
through its exit policy's close, booked like a ladder level, the rest re-protected, once across restarts), a tight
stop (``on_leg_exit = "protect"``), and the leg events that reach the pair coordinator (a stop-out closes the
other leg in the same tick; a partial exit is seen by the imbalance check)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest
import trio
import trio.testing

import posmon.daemon
from posmon.actors.messages import CloseTranches, Notice, ProtectTranches, TrimTranche
from posmon.actors.pairs import DirectoriesByVenue, LegExited, PairCoordinator, leg_exit_from_notice
from posmon.domain.exitplan import make_plan
from posmon.domain.orders import Side
from posmon.domain.pairs import Leg, PairRules, PairStatus, new_pair
from posmon.domain.tranche import Tranche
from posmon.store.store import Changes
from tests.harness import (
    drain,
    make_settings,
    new_exchange,
    running,
    running_aster,
    running_lighter,
    settle,
    trio_clock,
)


def events(h, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in h.store.events(kind)]


def inbox(h, symbol: str, side: Side = Side.LONG) -> trio.MemorySendChannel[Any]:
    assert h.daemon.directory is not None
    return h.daemon.directory.inbox(symbol, side)


# --- trim ------------------------------------------------------------------------------------------------------


async def test_aster_trim_closes_part_at_market_books_it_and_resizes_tp_and_sl(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.mark("BTCUSDT", "45100")
        [t] = h.store.open_tranches()
        inbox(h, "BTCUSDT").send_nowait(TrimTranche(t.id, D("0.0349"), "PAIR"))  # rounded down to the 0.001 step
        await settle()

        assert h.exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.066")
        [t] = h.store.open_tranches()
        assert (t.qty, t.closing, t.realized_pnl) == (D("0.066"), None, D("3.4"))
        # Reduce-only market close of 0.034; the TP and SL rest again for what is held (the old ones cancelled).
        assert h.resting() == {("LIMIT", "SELL", "0.066", "49500"), ("STOP_MARKET", "SELL", "0.066", "42750")}
        [e] = events(h, "partial_close")
        assert (D(e["qty"]), D(e["price"]), D(e["pnl"]), e["reason"]) == (D("0.034"), D("45100"), D("3.4"), "PAIR")
        assert h.store.closed_tranches("aster") == []

        await h.mark("BTCUSDT", "42750")  # the resized stop closes the rest
        [row] = h.store.closed_tranches("aster")
        assert (row["close_reason"], D(row["exit_qty"])) == ("SL", D("0.1"))
        assert h.orders() == [] and h.exchange.engine.position("BTCUSDT", Side.LONG) is None


async def test_lighter_trim_sends_one_bounded_close_for_the_share_and_tells_the_pair(tmp_path, autojump_clock):
    send, notices = trio.open_memory_channel[Notice](math.inf)
    async with running_lighter(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0), notices=send) as h:
        h.exchange.set_mark("BTC", D("45000"))
        h.lighter.external_entry("BTC", Side.LONG, D("0.1"))
        await settle()
        await h.mark("BTC", "45100")
        [t] = h.store.open_tranches()
        drain(notices)
        inbox(h, "BTC").send_nowait(TrimTranche(t.id, D("0.034567"), "REBALANCE"))  # step 0.00001
        await settle()

        assert h.lighter.account.signed_position("BTC") == D("0.06544")
        assert [D(e["qty"]) for e in events(h, "close_sent")] == [D("0.03456")]
        [t] = h.store.open_tranches()
        assert (t.qty, t.closing, t.sl, t.tp) == (D("0.06544"), None, D("42750"), D("49500"))
        [e] = events(h, "partial_close")
        assert D(e["qty"]) == D("0.03456") and D(e["pnl"]) == (D(e["price"]) - 45000) * D("0.03456")
        # The leg event the coordinator reads: a partial exit of the quantity, the tranche kept with what it holds.
        [leg] = [x for n in drain(notices) if (x := leg_exit_from_notice(n)) is not None]
        assert leg == LegExited(
            "lighter", "BTC", Side.LONG, t.id, "REBALANCE", D("0.03456"), partial=True, left=D("0.06544")
        )

        await h.mark("BTC", "42750")  # the watched stop closes what is left
        [row] = h.store.closed_tranches("lighter")
        assert (row["close_reason"], D(row["exit_qty"])) == ("SL", D("0.1"))
        assert h.lighter.account.signed_position("BTC") == 0


async def test_a_trim_decided_but_never_sent_is_sent_after_a_restart_and_only_once(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches()
        exchange.fail_next("place_orders", 1000)  # the close never reaches the exchange
        exchange.fail_next("query_order", 1000)
        inbox(h, "BTCUSDT").send_nowait(TrimTranche(t.id, D("0.04"), "PAIR"))
        await settle()
        [t] = h.store.open_tranches()
        assert t.closing is not None and t.qty == D("0.1")  # decided and written first
        assert exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.1")

    exchange.faults.clear()
    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        assert exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.06")
        [t] = h.store.open_tranches()
        assert (t.qty, t.closing) == (D("0.06"), None)
        assert h.resting() == {("LIMIT", "SELL", "0.06", "49500"), ("STOP_MARKET", "SELL", "0.06", "42750")}
        sent = exchange.orders_sent

    async with running(settings, exchange) as h:  # the trim already filled: nothing is sent again
        await trio.sleep(3)
        await settle()
        assert exchange.orders_sent == sent
        assert exchange.engine.position("BTCUSDT", Side.LONG).qty == D("0.06")
        assert len(events(h, "partial_close")) == 1


async def test_a_trim_of_all_a_tranche_holds_is_its_close(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches()
        inbox(h, "BTCUSDT").send_nowait(TrimTranche(t.id, D("0.5"), "PAIR"))
        await settle()
        [row] = h.store.closed_tranches("sim")
        assert (row["close_reason"], D(row["exit_qty"])) == ("PAIR", D("0.1"))
        assert h.orders() == [] and h.exchange.engine.position("BTCUSDT", Side.LONG) is None


# --- protect ---------------------------------------------------------------------------------------------------


async def test_protect_on_aster_replaces_the_stop_market_at_the_tight_price_and_never_loosens(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches()
        await h.mark("BTCUSDT", "45100")
        inbox(h, "BTCUSDT").send_nowait(ProtectTranches((t.id,), D("0.5"), "PAIR"))
        await settle()
        # 0.5 % behind the mark 45100: 44874.5; the new STOP_MARKET placed, the old one cancelled.
        assert h.resting() == {("LIMIT", "SELL", "0.1", "49500"), ("STOP_MARKET", "SELL", "0.1", "44874.5")}
        assert h.store.open_tranches()[0].sl == D("44874.5")
        [e] = events(h, "stop_moved")
        assert (D(e["old"]), D(e["new"]), e["why"]) == (D("42750"), D("44874.5"), "protect (PAIR)")
        assert h.metrics.get("stop_moves", venue="aster", reason="protect") == 1

        inbox(h, "BTCUSDT").send_nowait(ProtectTranches((t.id,), D("2"), "PAIR"))  # looser: kept as it is
        await settle()
        assert h.store.open_tranches()[0].sl == D("44874.5") and len(events(h, "stop_moved")) == 1

        await h.mark("BTCUSDT", "44874.5")
        [row] = h.store.closed_tranches("aster")
        assert row["close_reason"] == "SL" and D(row["realized_pnl"]) == D("-12.55")


async def test_protect_on_lighter_moves_the_watched_level(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0)) as h:
        h.exchange.set_mark("BTC", D("3000"))
        h.exchange.set_mark("ETH", D("3000"))
        h.lighter.external_entry("ETH", Side.SHORT, D("1"))
        await settle()
        [t] = h.store.open_tranches()
        inbox(h, "ETH", Side.SHORT).send_nowait(ProtectTranches((t.id,), D("0.5"), "PAIR"))
        await settle()
        assert h.store.open_tranches()[0].sl == D("3015")
        assert h.lighter.counters.requests["POST /api/v1/sendTx"] == 0  # nothing rests on Lighter
        await h.mark("ETH", "3014.99")
        assert h.store.open_tranches() != []
        await h.mark("ETH", "3015")
        [row] = h.store.closed_tranches("lighter")
        assert row["close_reason"] == "SL"
        assert h.lighter.account.signed_position("ETH") == 0


# --- the coordinator with a real leg ------------------------------------------------------------------------------


class _FakeVenue:
    """The other venue's position actors: a memory channel per (symbol, side)."""

    def __init__(self) -> None:
        self.channels: dict[tuple[str, Side], Any] = {}

    def inbox(self, symbol: str, side: Side) -> trio.MemorySendChannel[Any]:
        if (symbol, side) not in self.channels:
            self.channels[symbol, side] = trio.open_memory_channel[Any](math.inf)
        return self.channels[symbol, side][0]

    def taken(self, symbol: str, side: Side) -> list[Any]:
        return drain(self.channels[symbol, side][1]) if (symbol, side) in self.channels else []


async def _forward(notices: trio.MemoryReceiveChannel[Notice], pairs: trio.MemorySendChannel[Any]) -> None:
    """The daemon's notice fan-out into the coordinator (the wiring ``posmon.actors.pairs`` describes)."""
    async for notice in notices:
        if (leg := leg_exit_from_notice(notice)) is not None:
            pairs.send_nowait(leg)


async def _paired(nursery, h, notices, rules: PairRules) -> tuple[_FakeVenue, Any, int]:
    """A pair of the daemon's BTCUSDT LONG tranche and a (fake) Lighter BTC SHORT tranche 900, coordinator running."""
    [t] = h.store.open_tranches()
    other = Tranche(900, "lighter", "BTC", Side.SHORT, 0, D("45000"), D("0.1"), D("1"), D("99999"), 0.0)
    pair = new_pair(
        1,
        Leg("sim", "BTCUSDT", Side.LONG, D("0.1"), D("0.001"), tranche_ids=(t.id,)),
        Leg("lighter", "BTC", Side.SHORT, D("0.1"), D("0.00001"), tranche_ids=(900,)),
        rules,
    )
    legs = tuple(replace(leg, filled_qty=D("0.1"), entry=D("45000"), entry_done=True) for leg in pair.legs)
    h.store.apply(Changes(tranches=[other], pairs=[replace(pair, legs=legs, status=PairStatus.OPEN)]))
    lighter = _FakeVenue()
    pair_notices, _ = trio.open_memory_channel[Notice](math.inf)
    directory = DirectoriesByVenue({"sim": h.daemon.directory, "lighter": lighter})
    coordinator, pairs_inbox = PairCoordinator.create(directory, h.store, pair_notices, trio_clock)
    await nursery.start(coordinator.run)
    nursery.start_soon(_forward, notices, pairs_inbox)
    await settle()
    return lighter, coordinator, t.id


async def test_a_real_legs_stop_fill_closes_the_other_leg_within_the_same_tick(tmp_path, autojump_clock):
    send, notices = trio.open_memory_channel[Notice](math.inf)
    async with running(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0), notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        async with trio.open_nursery() as nursery:
            lighter, _, _ = await _paired(nursery, h, notices, PairRules())
            at = trio.current_time()
            await h.mark("BTCUSDT", "42750")  # the venue fills the resting stop
            assert trio.current_time() == at
            assert lighter.taken("BTC", Side.SHORT) == [CloseTranches((900,), "PAIR")]
            assert h.store.pair(1).status is PairStatus.CLOSING and h.store.pair(1).close_reason == "LEG_SL"
            nursery.cancel_scope.cancel()


@pytest.fixture
def ladder(monkeypatch):
    plan = make_plan(tp_levels=[[1, 30], [2, 30], [3, 40]])
    risk_of = posmon.daemon.risk_of
    monkeypatch.setattr(posmon.daemon, "risk_of", lambda s, symbol: replace(risk_of(s, symbol), plan=plan))


async def test_a_ladder_level_of_a_real_leg_is_seen_by_the_imbalance_check_and_rebalanced(
    tmp_path, autojump_clock, ladder
):
    send, notices = trio.open_memory_channel[Notice](math.inf)
    settings = make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0, instant_tp_enabled=False)
    async with running(settings, notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        async with trio.open_nursery() as nursery:
            lighter, coordinator, _ = await _paired(nursery, h, notices, PairRules(auto_rebalance=True))
            await h.mark("BTCUSDT", "45460")  # level 1 (0.03) fills; the tranche keeps 0.07
            assert h.store.open_tranches()[0].qty == D("0.07")
            assert lighter.taken("BTC", Side.SHORT) == [TrimTranche(900, D("0.03"), "PAIR")]
            [view] = coordinator.views()
            assert [leg.qty for leg in view.legs] == [D("0.07"), D("0.07")] and view.status == "open"
            nursery.cancel_scope.cancel()


async def test_a_partial_liquidation_of_a_real_leg_is_seen_by_the_imbalance_check(tmp_path, autojump_clock):
    send, notices = trio.open_memory_channel[Notice](math.inf)
    async with running(make_settings(tmp_path, tp_pct=10.0, sl_pct=5.0), notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        async with trio.open_nursery() as nursery:
            lighter, coordinator, _ = await _paired(nursery, h, notices, PairRules(auto_rebalance=True))
            h.exchange.liquidate("BTCUSDT", Side.LONG, D("0.04"))  # the venue takes 0.04 of the leg
            await settle()
            assert h.store.open_tranches()[0].qty == D("0.06")
            assert lighter.taken("BTC", Side.SHORT) == [TrimTranche(900, D("0.04"), "PAIR")]
            [view] = coordinator.views()
            assert [leg.qty for leg in view.legs] == [D("0.06"), D("0.06")]
            nursery.cancel_scope.cancel()
