"""``posmon verify`` and ``posmon protect`` on tranches with an exit plan (issue 15), on the Aster simulator.

A ladder rests one level at a time, its TP for that level's share: verify reports a level missing or of the
wrong size, protect places it as the daemon does (the level's share at the level's price, a fresh client id,
the new order before the old one is cancelled).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import trio

from posmon.cli.exit_codes import ExitCode
from posmon.config import Settings
from posmon.domain.exitplan import make_plan
from posmon.domain.orders import Purpose, Side
from posmon.domain.protection import LocalState, OrderRecord
from posmon.domain.tranche import Tranche
from posmon.sim.exchange import SimExchange
from posmon.store.store import Changes, Store
from tests.harness import make_settings, trio_clock
from tests.ops.test_ops_aster import external_close, kinds, ops, protected_account, resting

LADDER = make_plan(tp_levels=[[1, 30], [2, 30], [3, 40]])  # TP 1 % is the configured one: level 1 at 45450


def _with_plan(settings: Settings) -> Tranche:
    """Give the (one) BTCUSDT tranche the ladder in the store, as a daemon configured with it would have."""
    store = Store.open(settings.daemon.store, clock=trio_clock)
    try:
        (t,) = store.open_tranches(symbol="BTCUSDT")
        t = dataclasses.replace(t, plan=LADDER)
        store.apply(Changes(tranches=[t]))
        return t
    finally:
        store.close()


def _level_one_filled(settings: Settings, exchange: SimExchange) -> set[str]:
    """Level 1 (0.03 of 0.1) filled and the stop resized to the 0.07 left; level 2's TP never got placed (the
    daemon stopped in between). Returns every client id used so far."""
    external_close(exchange, "BTCUSDT", Side.LONG, "0.03")  # the level's fill
    store = Store.open(settings.daemon.store, clock=trio_clock)
    try:
        (t,) = store.open_tranches(symbol="BTCUSDT")
        old = store.active_orders([t.id])
        for r in old:
            exchange.engine.cancel("BTCUSDT", r.client_id, trio.current_time())
        sl = next(r for r in old if r.purpose is Purpose.SL)
        resized = dataclasses.replace(sl.request, client_id=f"pm-{t.id}-S{t.seq + 1}", qty=D("0.07"))
        state = exchange.engine.place(resized, trio.current_time())
        store.apply(
            Changes(
                tranches=[dataclasses.replace(t, plan=LADDER, qty=D("0.07"), level=1, tp=D("45900"), seq=t.seq + 1)],
                orders=[
                    *(dataclasses.replace(r, state=LocalState.DONE) for r in old),
                    OrderRecord(resized, t.id, Purpose.SL, LocalState.LIVE, exchange_id=state.order_id),
                ],
            )
        )
        return {r.client_id for r in old} | {resized.client_id}
    finally:
        store.close()


async def test_a_ladder_tp_for_the_whole_tranche_is_a_wrong_size_and_protect_places_the_levels_share(
    tmp_path, autojump_clock
):
    settings = make_settings(tmp_path)
    exchange = await protected_account(settings, ("BTCUSDT", Side.LONG, "0.1", "45000"))
    t = _with_plan(settings)
    async with ops(settings, exchange) as o:
        assert await o.verify() == ExitCode.FAILED
        assert f"TP pm-{t.id}-T1 covers 0.1, tranche {t.id} (level 1 of 3) closes 0.03 of 0.1" in o.out
        gaps = await o.gaps()
        assert kinds(gaps) == ["wrong_size"]
        assert (gaps[0]["purpose"], gaps[0]["expected"], gaps[0]["actual"]) == ("TP", "0.03", "0.1")

        assert await o.protect() == ExitCode.OK, o.out
        assert resting(exchange) == {("LIMIT", "SELL", "0.03", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        assert {x.client_id for x in exchange.engine.open_orders()} == {f"pm-{t.id}-T2", f"pm-{t.id}-S1"}
        store = o.store()
        try:
            (after,) = store.open_tranches()
            assert (after.plan, after.level, after.qty, after.seq) == (LADDER, 0, D("0.1"), 2)
            live = {r.client_id: r.request.qty for r in store.active_orders([t.id])}
            assert live == {f"pm-{t.id}-T2": D("0.03"), f"pm-{t.id}-S1": D("0.1")}
        finally:
            store.close()
        assert await o.verify() == ExitCode.OK, o.out


async def test_a_missing_ladder_level_is_placed_for_its_share_at_its_price_with_a_new_id(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(settings, ("BTCUSDT", Side.LONG, "0.1", "45000"))
    used = _level_one_filled(settings, exchange)
    async with ops(settings, exchange) as o:
        gaps = await o.gaps()
        assert kinds(gaps) == ["missing_tp"]
        assert gaps[0]["qty"] == "0.03" and "TP (level 2 of 3)" in gaps[0]["detail"]  # 30 of the 70 % left

        assert await o.protect() == ExitCode.OK, o.out
        assert resting(exchange) == {("LIMIT", "SELL", "0.03", "45900"), ("STOP_MARKET", "SELL", "0.07", "22500")}
        (tp,) = [x for x in exchange.engine.open_orders() if x.type.value == "LIMIT"]
        assert tp.client_id not in used and tp.client_id.startswith("pm-1-T")
        assert await o.verify() == ExitCode.OK, o.out
