"""The operator API on a running daemon, over loopback HTTP, on both venues' protocol simulators.

The acceptance example of the specification: ``{"sl_percent": 3, "rr_ratio": [1, 2]}`` puts the stop 3 % and the
take-profit 6 % from the entry's fill price.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D

import httpx
import trio

from posmon.api.app import create_app
from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings
from posmon.domain.orders import Side
from posmon.domain.rounding import round_toward
from posmon.metrics import render
from tests.harness import make_settings, running_aster, running_lighter, settle
from tests.scenario import assert_protected_and_no_orphans

BODY = {"size_usd": 900, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}


@asynccontextmanager
async def api_of(h) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(h.daemon.control, metrics_render=lambda: render(h.metrics), token=None)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_api, app, ApiSettings(port=0))
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()


def expected_exits(entry: D, side: Side, tick: D) -> tuple[D, D]:
    """(SL, TP) 3 % and 6 % from ``entry`` on the tick, rounded toward the entry."""
    sl = entry * (100 - side.sign * 3) / 100
    tp = entry * (100 + side.sign * 6) / 100
    return round_toward(sl, tick, entry), round_toward(tp, tick, entry)


async def test_long_and_short_endpoints_put_sl_3_and_tp_6_percent_from_the_entry_on_aster(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, symbols=("BTCUSDT", "ETHUSDT"))) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        await h.mark("ETHUSDT", "3000")
        long = await api.post("/api/orders/long", json={"symbol": "BTCUSDT", **BODY})
        short = await api.post("/api/orders/short", json={"symbol": "ETHUSDT", **BODY})
        await settle()

        assert long.status_code == 200 and short.status_code == 200
        for answer, side, symbol in ((long.json(), Side.LONG, "BTCUSDT"), (short.json(), Side.SHORT, "ETHUSDT")):
            entry = D(answer["entry_price"])
            sl, tp = expected_exits(entry, side, h.daemon.rules[symbol].tick_size)
            assert (D(answer["sl"]), D(answer["tp"])) == (sl, tp)
            assert h.exchange.engine.position(symbol, side).qty == D(answer["qty"])
            resting = {(o.type.value, o.price or o.stop_price) for o in h.orders(symbol)}
            assert resting == {("LIMIT", tp), ("STOP_MARKET", sl)}  # protected on the exchange
        status = (await api.get("/api/monitor/status")).json()
        assert {(t["symbol"], t["side"], t["exits"]) for t in status["tranches"]} == {
            ("BTCUSDT", "LONG", "exchange"),
            ("ETHUSDT", "SHORT", "exchange"),
        }
        assert_protected_and_no_orphans(h)


async def test_long_endpoint_on_lighter_books_the_exits_without_resting_orders(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, symbols=("BTC", "ETH", "DOGE"))
    async with running_lighter(settings) as h, api_of(h) as api:
        await settle()
        answer = await api.post(
            "/api/orders/long",
            json={"symbol": "DOGE", "size_usd": 25, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]},
        )
        await settle()

        assert answer.status_code == 200, answer.text
        body = answer.json()
        entry = D(body["entry_price"])
        assert (D(body["sl"]), D(body["tp"])) == expected_exits(entry, Side.LONG, h.daemon.rules["DOGE"].tick_size)
        assert h.exchange.engine.position("DOGE", Side.LONG).qty == D(body["qty"])
        assert h.exchange.engine.open_orders("DOGE") == []  # Lighter: posmon holds the exits itself
        [t] = (await api.get("/api/monitor/status")).json()["tranches"]
        assert (t["symbol"], t["exits"]) == ("DOGE", "emulated")


async def test_bad_body_is_refused_naming_the_field_and_nothing_reaches_the_exchange(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path)) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        before = dict(h.aster.counters.requests)
        answer = await api.post("/api/orders/long", json={"symbol": "BTCUSDT", **BODY, "sl_percent": 150})
        await settle()

        assert answer.status_code == 422 and answer.json()["field"] == "sl_percent"
        sent = {k: v - before.get(k, 0) for k, v in h.aster.counters.requests.items() if v != before.get(k, 0)}
        assert not [k for k in sent if k.startswith("POST")], sent


async def test_metrics_move_with_the_scenario(tmp_path, autojump_clock):
    from prometheus_client.parser import text_string_to_metric_families

    async with running_aster(make_settings(tmp_path)) as h, api_of(h) as api:

        def samples(text):
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }

        before = samples((await api.get("/metrics")).text)
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        h.exchange.set_marks({"BTCUSDT": D("45460")}, trade=False)  # through the TP: an instant close
        await settle()
        after = samples((await api.get("/metrics")).text)

        def grew(name, **labels):
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0) > before.get(key, 0)

        assert grew("posmon_exits_triggered_total", venue="aster", reason="TP")
        assert grew("posmon_tranches_closed_total", venue="aster", reason="TP")
        assert grew("posmon_tick_to_order_seconds_count", venue="aster")
        assert grew("posmon_price_frames_total", venue="aster")
