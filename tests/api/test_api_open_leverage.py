"""An open through the API sets the leverage on the venue before the entry, or is refused with nothing sent.

On the Aster- and Lighter-protocol simulators (real HTTP, signatures, the real adapters) and on ``SimVenue`` for
the failures a real venue makes hard to script: the leverage call is recorded by the simulated account before
the entry's order; a leverage the venue refuses answers 422 naming ``leverage``, no answer 504; no order is
sent and no tranche exists either way. The answer carries the notional, the margin and the USD at risk.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio

from posmon.control import ControlError, OpenRequest
from posmon.domain.orders import Side
from posmon.sim.engine import DEFAULT_MAX_LEVERAGE
from posmon.sim.lighter.markets import DOGE
from tests.api.test_api_end_to_end import api_of
from tests.daemon.test_lighter_end_to_end import TX_CREATE_ORDER, TxLog
from tests.harness import make_settings, running, running_aster, running_lighter, settle

BODY = {"symbol": "BTCUSDT", "size_usd": 4500, "sl_percent": 3, "rr_ratio": [1, 2]}


def posts(h, before) -> dict[str, int]:
    """POST requests the Aster simulator received since ``before`` (a copy of its request counters)."""
    now = h.aster.counters.requests
    return {k: v - before.get(k, 0) for k, v in now.items() if k.startswith("POST") and v != before.get(k, 0)}


async def test_the_leverage_is_set_on_aster_before_the_entry_and_the_answer_carries_the_sizing(
    tmp_path, autojump_clock
):
    async with running_aster(make_settings(tmp_path)) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        answer = await api.post("/api/orders/long", json={**BODY, "leverage": 7})
        await settle()

        assert answer.status_code == 200, answer.text
        body = answer.json()
        engine = h.exchange.engine
        assert engine.leverage("BTCUSDT") == 7
        history = list(engine.history)
        assert history.index(("leverage", "BTCUSDT", "7")) < history.index(("order", "BTCUSDT", body["client_id"]))
        assert h.aster.counters.requests["POST /fapi/v3/leverage"] == 1
        qty, entry, sl = D(body["qty"]), D(body["entry_price"]), D(body["sl"])
        assert (qty, entry) == (D("0.1"), D("45000"))  # 4,500 USD notional
        assert body["leverage"] == 7
        assert D(body["notional_usd"]) == qty * entry == D(4500)
        assert D(body["margin_usd"]) == qty * entry / 7
        assert D(body["risk_usd"]) == qty * (entry - sl) == D(135)  # 3 % of the notional, at the SL's price


async def test_a_leverage_aster_refuses_is_a_422_naming_it_and_nothing_is_sent(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path)) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        before = dict(h.aster.counters.requests)
        too_high = DEFAULT_MAX_LEVERAGE + 1
        answer = await api.post("/api/orders/long", json={**BODY, "leverage": too_high})
        await settle()

        assert answer.status_code == 422 and answer.json()["field"] == "leverage"
        error = answer.json()["error"]
        assert f"refused leverage {too_high} for BTCUSDT" in error and "-4028" in error and "nothing was sent" in error
        assert posts(h, before) == {"POST /fapi/v3/leverage": 1}  # no order at all
        assert h.exchange.engine.positions() == [] and h.store.open_tranches("aster") == []


async def test_no_answer_to_the_leverage_refuses_the_open_as_unknown_and_sends_no_entry(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path)) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        h.aster.stall_next("/fapi/v3/leverage", method="POST", after_execute=True)
        before = dict(h.aster.counters.requests)
        answer = await api.post("/api/orders/long", json={**BODY, "leverage": 9})
        await settle()

        assert answer.status_code == 504 and answer.json()["field"] == "leverage"
        assert "unknown, so the entry was not sent" in answer.json()["error"]
        assert posts(h, before) == {"POST /fapi/v3/leverage": 1}
        assert h.exchange.engine.leverage("BTCUSDT") == 9  # it took effect: only the daemon could not know
        assert h.exchange.engine.positions() == [] and h.store.open_tranches("aster") == []


async def test_a_leverage_above_the_lighter_markets_maximum_is_refused_with_no_order(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, symbols=("BTC", "ETH", "DOGE"))) as h, api_of(h) as api:
        log = TxLog(h.lighter)
        await settle()
        too_high = DOGE.max_leverage + 1
        body = {"symbol": "DOGE", "size_usd": 25, "leverage": too_high, "sl_percent": 3, "rr_ratio": [1, 2]}
        answer = await api.post("/api/orders/long", json=body)
        await settle()

        assert answer.status_code == 422 and answer.json()["field"] == "leverage", answer.text
        assert f"leverage {too_high} for DOGE" in answer.json()["error"]
        assert [tx["tx_type"] for c in log.calls for tx in c.txs] == [20]  # the refused UpdateLeverage only
        assert not [tx for c in log.calls for tx in c.txs if tx["tx_type"] == TX_CREATE_ORDER]
        assert h.exchange.engine.positions() == [] and h.store.open_tranches("lighter") == []


def request(leverage: int = 5) -> OpenRequest:
    return OpenRequest("BTCUSDT", Side.LONG, D(4500), leverage, D(3), (D(1), D(2)))


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [
        ("fail_next", 504, "got no answer"),
        ("rate_limit_next", 503, "rate-limiting"),
    ],
)
async def test_a_failed_leverage_call_refuses_the_open_and_sends_nothing(
    tmp_path, autojump_clock, fault, status, words
):
    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")
        getattr(h.exchange, fault)("set_leverage")
        sent = h.exchange.orders_sent
        with pytest.raises(ControlError) as refused:
            await h.daemon.control.open_position(request())
        await settle()

        assert (refused.value.status, refused.value.field) == (status, "leverage")
        assert words in str(refused.value)
        assert h.exchange.orders_sent == sent and h.store.open_tranches("sim") == []


async def test_a_leverage_call_that_never_returns_is_cut_off_and_the_open_refused(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.mark("BTCUSDT", "45000")

        async def hang(symbol: str, leverage: int) -> None:
            await trio.sleep_forever()

        h.venue.set_leverage = hang
        sent = h.exchange.orders_sent
        with pytest.raises(ControlError) as refused:
            await h.daemon.control.open_position(request())

        assert (refused.value.status, refused.value.field) == (504, "leverage")
        assert "within 30 s" in str(refused.value)
        assert h.exchange.orders_sent == sent and h.store.open_tranches("sim") == []
