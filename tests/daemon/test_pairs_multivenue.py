"""Hedge pairs across Aster's and Lighter's protocol simulators in one daemon (issue 16's acceptance list).

A pair opened over the API fills both entries and protects each leg by its venue's exit style; when one leg exits
on its venue (stop-out, liquidation) the other is closed at once; a rejected or partial entry leaves nothing
unhedged; a restart keeps the pair and sends nothing twice, and catches a leg that exited while it was down; one
venue's streams down never stop the other venue's exits, and the pair shows that leg stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
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


async def test_one_entry_refused_by_its_venue_unwinds_the_other(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await marks(h)
        h.lighter.set_liquidity("BTC", 50)  # a market order cannot fill within its worst price: cancelled
        async with api_of(h.daemon) as api:
            answer = await api.post("/api/pairs", json=PAIR)
        await settle()
        assert answer.status_code == 200, answer.text
        pair = answer.json()
        assert pair["status"] in ("broken", "closed") and pair["close_reason"] == "ENTRY_REJECTED"
        assert lighter_qty(h) == 0 and aster_qty(h) == 0  # the Aster leg's fill was unwound at market
        assert closed_reasons(h)["aster"] == ["PAIR"] and h.aster_resting() == set()
        assert h.store.pair(pair["id"]).status is PairStatus.CLOSED and h.store.open_pairs() == []


class PartialAster:
    """Aster's adapter, but the venue fills only ``fill`` of a pair's entry (the rest of the market order is
    cancelled, as a thin book's IOC would): what the daemon sees is a partially filled entry."""

    def __init__(self, venue: Any, fill: D) -> None:
        self._venue, self.fill = venue, fill

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    async def place_orders(self, orders: Any) -> Any:
        orders = [replace(o, qty=self.fill) if o.client_id.endswith("-E1") else o for o in orders]
        return await self._venue.place_orders(orders)


async def test_one_entry_filled_partially_trims_the_other_to_match(tmp_path, autojump_clock):
    settings = two_venue_settings(tmp_path)
    async with AsyncExitStack() as stack:
        aster_venue, lighter_venue, aster_x, lighter_x, lighter_sim, _ = await stack.enter_async_context(
            simulators(settings)
        )
        venues = [PartialAster(aster_venue, D("0.006")), lighter_venue]
        daemon, store, _ = await stack.enter_async_context(daemon_on(settings, venues))
        aster_x.set_mark("BTCUSDT", D(45000))
        lighter_x.set_mark("BTC", D(45000))
        await settle()
        async with api_of(daemon) as api:
            answer = await api.post("/api/pairs", json=PAIR)
        await settle()
        assert answer.status_code == 200, answer.text
        pair = answer.json()
        assert pair["status"] == "open"
        assert aster_x.engine.position("BTCUSDT", Side.LONG).qty == D("0.006")
        assert lighter_sim.account.signed_position("BTC") == D("-0.006")  # trimmed at market to match
        [stored] = store.open_pairs()
        assert [leg.filled_qty for leg in stored.legs] == [D("0.006"), D("0.006")]
        [lt] = store.open_tranches("lighter")
        assert lt.qty == D("0.006")


def order_posts(aster_sim: Any) -> int:
    return sum(n for k, n in aster_sim.counters.requests.items() if k.startswith("POST") and "rder" in k)


async def test_restart_with_a_pair_open_keeps_the_pair_and_its_legs_and_sends_nothing(tmp_path, autojump_clock):
    settings = two_venue_settings(tmp_path)
    async with AsyncExitStack() as stack:
        aster_venue, lighter_venue, aster_x, lighter_x, lighter_sim, aster_sim = await stack.enter_async_context(
            simulators(settings)
        )
        venues = [aster_venue, lighter_venue]
        async with daemon_on(settings, venues) as (daemon, store, _):
            aster_x.set_mark("BTCUSDT", D(45000))
            lighter_x.set_mark("BTC", D(45000))
            await settle()
            async with api_of(daemon) as api:
                assert (await api.post("/api/pairs", json=PAIR)).status_code == 200
            await settle()
            [before] = store.open_pairs()
            tranches = {v: store.open_tranches(v) for v in ("aster", "lighter")}
        resting = sorted(o.client_id for o in aster_x.engine.open_orders("BTCUSDT"))
        posts, txs = order_posts(aster_sim), lighter_sim.counters.requests["POST /api/v1/sendTx"]

        async with daemon_on(settings, venues) as (daemon, store, _):
            await trio.sleep(5)
            await settle()
            assert store.open_pairs() == [before]
            assert {v: store.open_tranches(v) for v in ("aster", "lighter")} == tranches
            assert sorted(o.client_id for o in aster_x.engine.open_orders("BTCUSDT")) == resting
            assert (order_posts(aster_sim), lighter_sim.counters.requests["POST /api/v1/sendTx"]) == (posts, txs)
            [view] = (await daemon.control.status()).pairs
            assert view.id == before.id and [leg.tranche_ids for leg in view.legs] == [
                list(leg.tranche_ids) for leg in before.legs
            ]
            # The restored pair hears its legs again: the Aster stop-out closes the Lighter leg.
            aster_x.set_mark("BTCUSDT", D("42700"))
            await settle()
            assert lighter_sim.account.signed_position("BTC") == 0
            assert store.pair(before.id).status is PairStatus.CLOSED


async def test_a_leg_exit_while_the_daemon_was_down_is_caught_at_start_up_and_the_other_leg_closed(
    tmp_path, autojump_clock
):
    settings = two_venue_settings(tmp_path)
    async with AsyncExitStack() as stack:
        aster_venue, lighter_venue, aster_x, lighter_x, lighter_sim, _ = await stack.enter_async_context(
            simulators(settings)
        )
        venues = [aster_venue, lighter_venue]
        async with daemon_on(settings, venues) as (daemon, store, _):
            aster_x.set_mark("BTCUSDT", D(45000))
            lighter_x.set_mark("BTC", D(45000))
            await settle()
            async with api_of(daemon) as api:
                pair = (await api.post("/api/pairs", json=PAIR)).json()
            await settle()
        aster_x.set_mark("BTCUSDT", D("42700"))  # the Aster leg's resting stop fills while posmon is down
        await settle()
        assert aster_x.engine.position("BTCUSDT", Side.LONG) is None
        assert lighter_sim.account.signed_position("BTC") == D("-0.01")  # naked

        async with daemon_on(settings, venues) as (daemon, store, _):
            await trio.sleep(5)
            await settle()
            assert lighter_sim.account.signed_position("BTC") == 0
            stored = store.pair(pair["id"])
            assert (stored.status, stored.close_reason) == (PairStatus.CLOSED, "LEG_SL")
            assert [r["close_reason"] for r in store.closed_tranches("lighter")] == ["PAIR"]


async def test_one_venues_streams_down_the_other_venues_exit_still_closes_the_pair_and_the_leg_shows_stale(
    tmp_path, autojump_clock
):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await marks(h)
        pair = await open_pair(h)
        assert h.lighter.drop_websockets() >= 1  # Lighter's price and account streams go down
        await settle()
        [view] = (await h.daemon.control.status()).pairs
        assert [(leg.venue, leg.stale) for leg in view.legs] == [("aster", False), ("lighter", True)]
        async with api_of(h.daemon) as api:
            listed = (await api.get("/api/pairs")).json()["pairs"]
        assert [leg["stale"] for leg in listed[0]["legs"]] == [False, True]

        h.aster_exchange.set_mark("BTCUSDT", D("42700"))  # Aster's SL fills meanwhile
        await settle()
        assert aster_qty(h) == 0 and lighter_qty(h) == 0  # the Lighter leg's close went out over REST
        await trio.sleep(60)  # Lighter's streams come back; an account read books the close's fill
        await settle()
        assert closed_reasons(h) == {"aster": ["SL"], "lighter": ["PAIR"]}
        assert h.store.pair(pair["id"]).status is PairStatus.CLOSED


async def test_a_bad_pair_request_is_refused_naming_the_field_and_nothing_is_sent(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h, api_of(h.daemon) as api:
        await marks(h)
        cases = [
            ({"qty": "0.00001"}, "qty"),  # below Aster's step
            ({"legs": [{"venue": "aster", "symbol": "BTCUSDT"}, {"venue": "binance"}]}, "legs[1].venue"),
            (
                {"legs": [{"venue": "aster", "symbol": "BTCUSDT"}, {"venue": "lighter", "symbol": "ETH"}]},
                "legs[1].symbol",
            ),
            ({"legs": [{"venue": "aster", "symbol": "DOGEUSDT"}, {"venue": "lighter"}]}, "legs[0].symbol"),
        ]
        for change, field in cases:
            answer = await api.post("/api/pairs", json={**PAIR, **change})
            assert answer.status_code in (404, 422) and answer.json()["field"] == field, answer.text
        await settle()
        assert aster_qty(h) == 0 and lighter_qty(h) == 0
        assert h.store.open_pairs() == [] and h.store.events("pair_opening") == []


async def test_two_positions_linked_into_a_pair_exit_together(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await h.aster_entry("BTCUSDT", Side.LONG, "0.02", "45000")
        await h.lighter_entry("BTC", Side.SHORT, "0.02", "45000")
        async with api_of(h.daemon) as api:
            answer = await api.post(
                "/api/pairs/link",
                json={"legs": [{"venue": "aster", "symbol": "BTCUSDT"}, {"venue": "lighter", "symbol": "BTC"}]},
            )
            assert answer.status_code == 200, answer.text
            assert [(leg["side"], D(leg["qty"])) for leg in answer.json()["legs"]] == [
                ("LONG", D("0.02")),
                ("SHORT", D("0.02")),
            ]
            h.aster_exchange.set_mark("BTCUSDT", D("42700"))
            await settle()
            assert lighter_qty(h) == 0 and closed_reasons(h) == {"aster": ["SL"], "lighter": ["PAIR"]}
            closed = await api.post("/api/pairs/1/close", json={})
            assert (closed.status_code, closed.json()["field"]) == (404, "id")  # closed already
