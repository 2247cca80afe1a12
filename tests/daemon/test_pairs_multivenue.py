"""Hedge pairs across Aster's and Lighter's protocol simulators in one daemon (issue 16's acceptance list).

A pair opened over the API fills both entries and protects each leg by its venue's exit style; when one leg exits
on its venue (stop-out, liquidation) the other is closed at once; a rejected or partial entry leaves nothing
unhedged; a restart keeps the pair and sends nothing twice, and catches a leg that exited while it was down; one
venue's streams down never stop the other venue's exits, and the pair shows that leg stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal as D
from typing import Any

import httpx
import trio

from posmon.api.app import create_app
from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings
from posmon.domain.orders import Side
from posmon.domain.pairs import PairStatus
from tests.daemon.test_multivenue import daemon_on, running_both, simulators, two_venue_settings
from tests.harness import settle

PAIR = {"legs": [{"venue": "aster", "symbol": "BTC/USDT:USDT"}, {"venue": "lighter"}], "side": "LONG", "qty": "0.01"}


@asynccontextmanager
async def api_of(daemon: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(daemon.control, metrics_render=None, token=None)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_api, app, ApiSettings(port=0))
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()


async def marks(h: Any, price: str = "45000") -> None:
    h.aster_exchange.set_mark("BTCUSDT", D(price))
    h.lighter_exchange.set_mark("BTC", D(price))
    await settle()


async def open_pair(h: Any, **body: Any) -> dict[str, Any]:
    async with api_of(h.daemon) as api:
        answer = await api.post("/api/pairs", json={**PAIR, **body})
    await settle()
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def aster_qty(h: Any, side: Side = Side.LONG) -> D:
    position = h.aster_exchange.engine.position("BTCUSDT", side)
    return D(0) if position is None else position.qty


def lighter_qty(h: Any) -> D:
    return D(h.lighter.account.signed_position("BTC"))


def closed_reasons(h: Any) -> dict[str, list[str]]:
    return {v: [r["close_reason"] for r in h.store.closed_tranches(v)] for v in ("aster", "lighter")}


async def test_a_pair_opened_over_the_api_fills_both_legs_each_protected_by_its_venue(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await marks(h)
        pair = await open_pair(h)

        assert pair["status"] == "open" and D(pair["imbalance_pct"]) == 0
        assert [(leg["venue"], leg["symbol"], leg["side"], D(leg["qty"])) for leg in pair["legs"]] == [
            ("aster", "BTCUSDT", "LONG", D("0.01")),
            ("lighter", "BTC", "SHORT", D("0.01")),
        ]
        assert aster_qty(h) == D("0.01") and lighter_qty(h) == D("-0.01")
        # Aster: TP and SL rest on the venue; Lighter: nothing rests, posmon watches both.
        assert h.aster_resting() == {("LIMIT", "SELL", "45450"), ("STOP_MARKET", "SELL", "42750")}
        assert h.lighter.account.open_orders() == []
        [lt] = h.store.open_tranches("lighter")
        assert (lt.tp, lt.sl) == (D("44550"), D("47250"))
        [stored] = h.store.open_pairs()
        assert stored.id == pair["id"] and stored.status is PairStatus.OPEN
        assert [leg.tranche_ids for leg in stored.legs] == [tuple(leg["tranche_ids"]) for leg in pair["legs"]]

        control = h.daemon.control
        report = await control.status()
        [view] = report.pairs
        assert (view.id, [leg.stale for leg in view.legs]) == (pair["id"], [False, False])
        assert h.metrics.get("open_pairs") in (0, 1)  # the gauge's first round may not have run yet
        await trio.sleep(6)
        assert h.metrics.get("open_pairs") == 1


async def test_aster_leg_stopped_out_on_the_venue_closes_the_lighter_leg_in_the_same_tick(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await marks(h)
        pair = await open_pair(h)
        at = trio.current_time()
        h.aster_exchange.set_mark("BTCUSDT", D("42700"))  # the resting STOP_MARKET fills on Aster
        await settle()
        assert trio.current_time() == at
        assert aster_qty(h) == 0 and lighter_qty(h) == 0
        assert closed_reasons(h) == {"aster": ["SL"], "lighter": ["PAIR"]}
        stored = h.store.pair(pair["id"])
        assert (stored.status, stored.close_reason) == (PairStatus.CLOSED, "LEG_SL")
        assert h.store.open_pairs() == []
        assert h.metrics.get("pair_exits", reason="LEG_SL") == 1


async def test_lighter_leg_stopped_out_closes_the_aster_leg_in_the_same_tick(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await marks(h)
        pair = await open_pair(h)
        at = trio.current_time()
        h.lighter_exchange.set_mark("BTC", D("47300"))  # through the SHORT leg's watched SL: posmon closes it
        await settle()
        assert trio.current_time() == at
        assert aster_qty(h) == 0 and lighter_qty(h) == 0
        assert closed_reasons(h) == {"aster": ["PAIR"], "lighter": ["SL"]}
        assert h.aster_resting() == set()  # the Aster leg's TP and SL went with it
        assert h.store.pair(pair["id"]).status is PairStatus.CLOSED


async def test_a_liquidation_of_one_leg_closes_the_other_and_says_so(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await marks(h)
        pair = await open_pair(h)
        h.lighter.liquidate("BTC")  # the venue takes the whole Lighter leg
        await settle()
        assert aster_qty(h) == 0 and lighter_qty(h) == 0
        assert closed_reasons(h) == {"aster": ["PAIR"], "lighter": ["LIQUIDATION"]}
        # The liquidated leg's exit, then the other leg's close (the coordinator's own, reason PAIR).
        exits = [(e["venue"], e["data"]["reason"]) for e in h.store.events("pair_leg_exit")]
        assert exits == [("lighter", "LIQUIDATION"), ("aster", "PAIR")]
        [closed] = h.store.events("pair_closed")
        assert closed["data"] == {"pair_id": pair["id"], "reason": "LEG_LIQUIDATION"}
        assert h.metrics.get("pair_exits", reason="LEG_LIQUIDATION") == 1
