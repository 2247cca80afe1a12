"""Risk limits end to end: an operator entry that would break one is refused before anything is sent; a fill from
another program that breaks one is told to the operator, and closed (only that fill) with close_breaching_fills.

Operator entries go through the HTTP API to the daemon trading the Aster- and Lighter-protocol simulators over
real HTTP (the balance is read with the venue's own balance endpoint); fills from elsewhere are played on the
in-process simulated venue.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio

from posmon.actors.messages import Notice
from posmon.control import ControlError, OpenRequest
from posmon.domain.orders import Side
from posmon.domain.tranche import ExitReason
from tests.api.test_api_end_to_end import api_of
from tests.daemon.test_lighter_end_to_end import TxLog
from tests.harness import drain, make_settings, running, running_aster, running_lighter, settle

BODY = {"symbol": "BTCUSDT", "size_usd": 4500, "leverage": 5, "sl_percent": 3, "rr_ratio": [1, 2]}


def requests_since(h, before: dict[str, int]) -> dict[str, int]:
    """Requests the Aster simulator received since ``before`` (a copy of its counters), by method and path."""
    now = h.aster.counters.requests
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


async def refused(h, api, body: dict) -> tuple[dict, dict[str, int]]:
    """POST an open that the limits refuse: (the answer's body, every request the venue got meanwhile)."""
    before = dict(h.aster.counters.requests)
    answer = await api.post("/api/orders/long", json=body)
    await settle()
    assert answer.status_code == 422, answer.text
    return answer.json(), requests_since(h, before)


def nothing_sent(sent: dict[str, int]) -> bool:
    """No POST (no leverage, no order) and no DELETE reached the venue: at most reads."""
    return not [k for k in sent if not k.startswith("GET ")]


# --- operator entries ----------------------------------------------------------------------------------------


async def test_max_open_positions_refuses_an_entry_into_a_new_position_and_sends_nothing(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, max_open_positions=1)
    async with running_aster(settings) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        await h.mark("ETHUSDT", "3000")
        first = await api.post("/api/orders/long", json=BODY)
        await settle()
        assert first.status_code == 200, first.text

        body, sent = await refused(h, api, {**BODY, "symbol": "ETHUSDT", "size_usd": 300})

        assert body["field"] == "max_open_positions"
        assert "max_open_positions is 1; this would make it 2" in body["error"]
        assert "nothing was sent" in body["error"]
        assert nothing_sent(sent), sent
        assert h.exchange.engine.position("ETHUSDT", Side.LONG) is None
        assert h.exchange.engine.leverage("ETHUSDT") != 5  # not even the leverage was set
        # Adding to the position already open opens no new one: allowed.
        more = await api.post("/api/orders/long", json={**BODY, "size_usd": 450})
        assert more.status_code == 200, more.text


async def test_max_notional_per_symbol_refuses_an_entry_that_would_exceed_it_and_sends_nothing(
    tmp_path, autojump_clock
):
    settings = make_settings(tmp_path, max_notional_per_symbol=4000)
    async with running_aster(settings) as h, api_of(h) as api:
        await h.mark("BTCUSDT", "45000")
        body, sent = await refused(h, api, BODY)

        assert body["field"] == "max_notional_per_symbol"
        assert "max_notional_per_symbol is 4000 USD; this would make it 4500 USD" in body["error"]
        assert nothing_sent(sent), sent
        assert h.exchange.engine.positions() == [] and h.store.open_tranches("aster") == []


async def test_max_risk_per_position_pct_refuses_against_the_venues_balance_and_sends_nothing(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, max_risk_per_position_pct=1)
    exchange_deposit = D(10_000)  # 1 % = 100 USD; the entry loses 135 at its SL (3 % of 4,500)
    async with running_aster(settings) as h, api_of(h) as api:
        h.exchange.deposit = exchange_deposit
        await trio.sleep(31)  # the guard reads the balance every 30 s
        await h.mark("BTCUSDT", "45000")
        body, sent = await refused(h, api, BODY)

        assert body["field"] == "max_risk_per_position_pct"
        assert "max_risk_per_position_pct is 1 %; this would make it 1.35 %" in body["error"]
        assert nothing_sent(sent), sent
        assert h.exchange.engine.positions() == []
        # Within the limit it goes through: 2 % allows 200 USD.
        h.exchange.deposit = D(20_000)
        await trio.sleep(31)
        ok = await api.post("/api/orders/long", json=BODY)
        assert ok.status_code == 200, ok.text


async def test_the_balance_is_read_with_the_aster_balance_endpoint(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, max_risk_per_position_pct=1)
    async with running_aster(settings, auth="v1") as h:
        h.exchange.deposit = D("12345.5")
        await trio.sleep(31)
        assert h.aster.counters.requests["GET /fapi/v2/balance"] >= 1
        assert h.daemon.risk_guard.last_balance == D("12345.5")


async def test_an_unreadable_balance_refuses_the_entry_with_503_and_sends_nothing(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, max_risk_per_position_pct=1)
    async with running(settings) as h:
        h.exchange.fail_next("balance", 5)  # the refresh at 30 s fails too: the cached balance grows old
        await trio.sleep(31)
        await h.mark("BTCUSDT", "45000")
        sent = h.exchange.orders_sent
        with pytest.raises(ControlError) as err:
            await h.daemon.control.open_position(OpenRequest("BTCUSDT", Side.LONG, D(4500), 5, D(3), (D(1), D(2))))
        assert (err.value.status, err.value.field) == (503, "max_risk_per_position_pct")
        assert "nothing was sent" in str(err.value)
        assert h.exchange.orders_sent == sent and h.exchange.calls["set_leverage"] == 0


async def test_a_limit_refuses_an_operator_entry_on_lighter_with_nothing_sent(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, symbols=("BTC", "ETH", "DOGE"), max_risk_per_position_pct="0.05")
    async with running_lighter(settings) as h, api_of(h) as api:
        h.lighter.collateral = D(1000)  # the entry loses 0.75 USD at its SL: 0.075 % of it
        await trio.sleep(31)
        log = TxLog(h.lighter)
        await settle()
        body = {"symbol": "DOGE", "size_usd": 25, "leverage": 3, "sl_percent": 3, "rr_ratio": [1, 2]}
        answer = await api.post("/api/orders/long", json=body)
        await settle()

        assert answer.status_code == 422 and answer.json()["field"] == "max_risk_per_position_pct", answer.text
        assert "max_risk_per_position_pct is 0.05 %" in answer.json()["error"]
        assert log.calls == []  # no transaction at all: neither UpdateLeverage nor the order
        assert h.exchange.engine.positions() == [] and h.store.open_tranches("lighter") == []
        assert h.daemon.risk_guard.last_balance == D(1000)


# --- fills from elsewhere ----------------------------------------------------------------------------------------


def risk_notices(notices) -> list[Notice]:
    return [n for n in drain(notices) if n.kind == "risk_limit"]


@pytest.mark.parametrize(
    ("limits", "name", "words"),
    [
        ({"max_open_positions": 1}, "max_open_positions", "max_open_positions is 1; this would make it 2"),
        (
            {"max_notional_per_symbol": 3000},
            "max_notional_per_symbol",
            "max_notional_per_symbol is 3000 USD; this would make it 3100 USD",
        ),
        # sl_pct 50: the ETH fill of 1 @ 3,100 loses 1,550 at its SL: 1.55 % of the 100,000 balance.
        ({"max_risk_per_position_pct": 1}, "max_risk_per_position_pct", "this would make it 1.55 %"),
    ],
)
async def test_a_fill_from_elsewhere_that_breaks_a_limit_raises_a_notice_and_stays_protected(
    tmp_path, autojump_clock, limits, name, words
):
    send, notices = trio.open_memory_channel[Notice](100)
    async with running(make_settings(tmp_path, **limits), notices=send) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.01", "45000")  # 450 USD, 225 at the SL: inside every limit
        drain(notices)
        await h.entry("ETHUSDT", Side.LONG, "1", "3100")

        seen = risk_notices(notices)
        assert len(seen) == 1, seen
        n = seen[0]
        assert (n.symbol, n.side, n.data["limit"]) == ("ETHUSDT", "LONG", name)
        assert words in n.text and "left open" in n.text and n.needs_human
        # Noticed only: the fill is a tranche like any other, protected on the venue.
        held = h.store.open_tranches("sim", "ETHUSDT")
        assert held and not any(t.closing for t in held)
        assert h.exchange.engine.position("ETHUSDT", Side.LONG) is not None
        assert h.metrics.get("risk_limit_breaches", venue="sim", limit=name) == 1


@pytest.mark.parametrize(
    ("limits", "name", "first", "kept"),
    [
        # A new position beyond the limit: closed, the held one untouched.
        ({"max_open_positions": 1}, "max_open_positions", ("BTCUSDT", "0.01", "45000"), None),
        # Growth of a held position: only the fill is closed, never the quantity that kept inside the limit.
        ({"max_notional_per_symbol": 3000}, "max_notional_per_symbol", ("ETHUSDT", "0.5", "3000"), D("0.5")),
        ({"max_risk_per_position_pct": 1}, "max_risk_per_position_pct", ("ETHUSDT", "0.5", "3000"), D("0.5")),
    ],
)
async def test_with_close_breaching_fills_only_the_breaking_fill_is_closed_as_its_own_tranche(
    tmp_path, autojump_clock, limits, name, first, kept
):
    send, notices = trio.open_memory_channel[Notice](100)
    settings = make_settings(tmp_path, close_breaching_fills=True, tp_pct=10, **limits)  # 3,100 is below every TP
    async with running(settings, notices=send) as h:
        symbol, qty, price = first
        await h.entry(symbol, Side.LONG, qty, price)
        before = {t.id: t for t in h.store.open_tranches("sim")}
        drain(notices)
        await h.entry("ETHUSDT", Side.LONG, "1", "3100")
        await trio.sleep(1)

        seen = [n for n in drain(notices) if n.kind in ("risk_limit", "exit")]
        assert [n.kind for n in seen] == ["risk_limit", "exit"], seen
        assert seen[0].data["limit"] == name and "closing it at market" in seen[0].text
        closed = h.store.history(venue="sim").tranches
        assert [(t.symbol, t.qty, t.exit_reason) for t in closed] == [("ETHUSDT", D(1), ExitReason.RISK_LIMIT)]
        assert closed[0].id == seen[0].data["tranche_id"] and closed[0].id not in before
        # What was held before the fill is held as it was, and protected; the venue holds exactly that.
        assert {t.id: t for t in h.store.open_tranches("sim")} == before
        eth = h.exchange.engine.position("ETHUSDT", Side.LONG)
        assert (eth.qty if eth is not None else None) == kept
        protected = {("LIMIT", "SELL", "0.5", "3300"), ("STOP_MARKET", "SELL", "0.5", "1500")}
        assert h.resting("ETHUSDT") == (protected if kept else set())


async def test_two_operator_entries_at_once_cannot_both_slip_under_a_limit(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path, max_open_positions=1)) as h:
        await h.mark("BTCUSDT", "45000")
        await h.mark("ETHUSDT", "3000")
        outcomes: dict[str, object] = {}

        async def open_one(symbol: str) -> None:
            request = OpenRequest(symbol, Side.LONG, D(4500), 5, D(3), (D(1), D(2)))
            try:
                outcomes[symbol] = (await h.daemon.control.open_position(request)).status
            except ControlError as exc:
                outcomes[symbol] = exc.field

        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_one, "BTCUSDT")
            nursery.start_soon(open_one, "ETHUSDT")

        # Which one goes first is trio's (randomized) scheduling: exactly one of them, never both.
        assert sorted(outcomes.values()) == ["FILLED", "max_open_positions"], outcomes
        filled = next(symbol for symbol, outcome in outcomes.items() if outcome == "FILLED")
        assert [p.symbol for p in h.exchange.engine.positions()] == [filled]
        assert h.daemon.risk_guard.positions().keys() == {(filled, Side.LONG)}  # nothing left reserved
