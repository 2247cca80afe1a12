"""Unified instrument names (``BTC/USDT:USDT``) on running daemons, over loopback, on both protocol simulators:
named from each venue's own market list, accepted wherever an operator types a symbol (a body, a path with its
``/`` sent as ``%2F``, a query), and shown beside the venue symbol in the status."""

from decimal import Decimal as D

import pytest
import trio

from posmon.config import load_settings
from posmon.control import OpenRequest
from posmon.domain.instruments import InstrumentError, InstrumentTable
from posmon.domain.orders import Side
from tests.api.test_api_end_to_end import BODY, api_of
from tests.harness import make_settings, running, running_aster, running_lighter, settle

LIGHTER_SYMBOLS = ("BTC", "ETH", "DOGE")


def held(h, symbol, side):
    """The simulated account's position quantity (0 when none)."""
    position = h.exchange.engine.position(symbol, side)
    return position.qty if position is not None else 0


def settings_in(tmp_path, name, symbols):
    where = tmp_path / name
    where.mkdir()
    return make_settings(where, symbols=symbols)


async def test_both_simulators_market_lists_name_their_symbols_and_pair_them_by_base(tmp_path, autojump_clock):
    aster_settings = settings_in(tmp_path, "aster", ("BTCUSDT", "ETHUSDT", "XRPUSDT"))
    async with (
        running_aster(aster_settings) as aster,
        running_lighter(settings_in(tmp_path, "lighter", LIGHTER_SYMBOLS)) as lighter,
    ):
        # What exchangeInfo published (baseAsset/quoteAsset/marginAsset), not a split of the symbol's spelling.
        btc = aster.daemon.rules["BTCUSDT"]
        assert (btc.base_asset, btc.quote_asset, btc.settle_asset) == ("BTC", "USDT", "USDT")
        assert {s: aster.daemon.instruments.name("aster", s) for s in aster.daemon.rules} == {
            "BTCUSDT": "BTC/USDT:USDT",
            "ETHUSDT": "ETH/USDT:USDT",
            "XRPUSDT": "XRP/USDT:USDT",
        }
        # Lighter's markets are named by their base and settle in USDC.
        assert {s: lighter.daemon.instruments.name("lighter", s) for s in lighter.daemon.rules} == {
            "BTC": "BTC/USDC:USDC",
            "ETH": "ETH/USDC:USDC",
            "DOGE": "DOGE/USDC:USDC",
        }
        both = InstrumentTable.build({"aster": aster.daemon.rules, "lighter": lighter.daemon.rules})
        assert both.problems == ()
        assert both.counterpart("aster", "BTCUSDT", "lighter") == "BTC"
        assert both.counterpart("lighter", "BTC", "aster") == "BTCUSDT"
        assert both.counterpart("lighter", "ETH", "aster") == "ETHUSDT"
        with pytest.raises(InstrumentError, match="aster lists no DOGE"):
            both.counterpart("lighter", "DOGE", "aster")
        with pytest.raises(InstrumentError, match="lighter lists no XRP"):
            both.counterpart("aster", "XRPUSDT", "lighter")


async def test_a_unified_name_opens_shows_closes_and_filters_history_on_aster(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, symbols=("BTCUSDT", "ETHUSDT"))) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        opened = await api.post("/api/orders/long", json={"symbol": "btc/usdt:usdt", **BODY})
        await settle()

        assert opened.status_code == 200, opened.text
        body = opened.json()
        assert (body["symbol"], body["instrument"]) == ("BTCUSDT", "BTC/USDT:USDT")
        assert held(h, "BTCUSDT", Side.LONG) == D(body["qty"]) > 0
        [t] = (await api.get("/api/monitor/status")).json()["tranches"]
        assert (t["symbol"], t["instrument"]) == ("BTCUSDT", "BTC/USDT:USDT")

        closed = await api.post("/api/positions/BTC%2FUSDT%3AUSDT/close", json={})
        await settle()

        assert closed.status_code == 200, closed.text
        assert [(c["symbol"], c["side"]) for c in closed.json()["closing"]] == [("BTCUSDT", "LONG")]
        assert held(h, "BTCUSDT", Side.LONG) == 0
        history = (await api.get("/api/history", params={"symbol": "BTC/USDT:USDT"})).json()
        assert [(c["symbol"], c["exit_reason"]) for c in history["tranches"]] == [("BTCUSDT", "MANUAL")]


async def test_a_unified_name_the_venue_does_not_list_is_refused_naming_it_and_nothing_is_sent(
    tmp_path, autojump_clock
):
    async with running_aster(make_settings(tmp_path)) as h, api_of(h) as api:
        await h.mark("ETHUSDT", "3000")
        before = dict(h.aster.counters.requests)
        answer = await api.post("/api/orders/short", json={"symbol": "ETH/USDC:USDC", **BODY})
        stop = await api.post("/api/monitor/stop/DOGE%2FUSDT%3AUSDT", json={})
        await settle()

        assert (answer.status_code, answer.json()) == (
            404,
            {
                "error": "'ETH/USDC:USDC' is not a symbol aster lists (aster lists no ETH/USDC:USDC; aster lists ETH "
                "as ETH/USDT:USDT)",
                "field": "symbol",
            },
        )
        assert stop.status_code == 404 and "'DOGE/USDT:USDT' is not a symbol aster lists" in stop.json()["error"]
        sent = [k for k, v in h.aster.counters.requests.items() if v != before.get(k, 0) and k.startswith("POST")]
        assert sent == []


async def test_a_unified_name_opens_and_closes_on_lighter_in_either_path_spelling(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, symbols=LIGHTER_SYMBOLS)) as h, api_of(h) as api:
        await settle()
        order = {"size_usd": 25, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}
        doge = await api.post("/api/orders/long", json={"symbol": "DOGE/USDC:USDC", **order})
        eth = await api.post("/api/orders/short", json={"symbol": "ETH/USDC:USDC", **order})
        await settle()

        assert (doge.status_code, eth.status_code) == (200, 200), (doge.text, eth.text)
        assert (doge.json()["symbol"], doge.json()["instrument"]) == ("DOGE", "DOGE/USDC:USDC")
        assert held(h, "ETH", Side.SHORT) == D(eth.json()["qty"]) > 0
        status = (await api.get("/api/monitor/status")).json()
        assert {(t["symbol"], t["instrument"]) for t in status["tranches"]} == {
            ("DOGE", "DOGE/USDC:USDC"),
            ("ETH", "ETH/USDC:USDC"),
        }

        encoded = await api.post("/api/positions/DOGE%2FUSDC%3AUSDC/close", json={})
        raw = await api.post("/api/positions/ETH/USDC:USDC/close", json={"side": "SHORT"})  # an unencoded "/"
        await trio.sleep(5)  # (virtual time) Lighter's standard tier paces the second close behind the first
        await settle()

        assert (encoded.status_code, raw.status_code) == (200, 200), (encoded.text, raw.text)
        assert held(h, "DOGE", Side.LONG) == 0
        assert held(h, "ETH", Side.SHORT) == 0


async def test_configured_overrides_name_the_daemons_symbols_and_an_unused_one_is_logged(
    tmp_path, autojump_clock, caplog
):
    make_settings(tmp_path, symbols=("BTCUSDT", "XRPUSDT"))
    path = tmp_path / "config.toml"
    path.write_text(path.read_text() + '\n[instruments.sim]\nXRPUSDT = "RIPPLE"\nGONEUSDT = "GONE/USDT:USDT"\n')
    async with running(load_settings(path, env={})) as h:
        await h.mark("XRPUSDT", "1.0")
        result = await h.daemon.control.open_position(
            OpenRequest("RIPPLE/USDT:USDT", Side.LONG, D(100), 5, D(3), (D(1), D(2)))
        )
        await settle()

        assert (result.symbol, result.instrument, result.status) == ("XRPUSDT", "RIPPLE/USDT:USDT", "FILLED")
        assert held(h, "XRPUSDT", Side.LONG) == result.qty
        [t] = (await h.daemon.control.status()).tranches
        assert (t.symbol, t.instrument) == ("XRPUSDT", "RIPPLE/USDT:USDT")
    assert "instruments: instruments.sim.GONEUSDT: sim does not list GONEUSDT; the override is unused" in caplog.text
