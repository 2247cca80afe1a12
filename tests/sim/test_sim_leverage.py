"""Leverage on the simulated account: the engine's rule (1 to the symbol's maximum, else -4028) and its record of
what the account was told, in order, through ``SimVenue`` as the daemon calls it."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from posmon.domain.orders import OrderRequest, OrderSide, OrderType
from posmon.exchange.errors import OutcomeUnknown, Rejected
from posmon.sim.engine import DEFAULT_LEVERAGE, DEFAULT_MAX_LEVERAGE
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue


def make() -> tuple[SimExchange, SimVenue]:
    exchange = SimExchange(rules_for(["BTCUSDT", "XRPUSDT"]), clock=lambda: 1_700_000_000.0)
    exchange.set_marks({"BTCUSDT": D("45000"), "XRPUSDT": D("1.0")})
    return exchange, SimVenue(exchange)


def entry(cid: str) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", OrderSide.BUY, "LONG", OrderType.MARKET, D("0.01"))


async def test_leverage_is_per_symbol_and_recorded_before_the_order_that_follows():
    exchange, venue = make()
    assert exchange.engine.leverage("BTCUSDT") == DEFAULT_LEVERAGE
    await venue.set_leverage("BTCUSDT", 7)
    await venue.place_orders([entry("pm-1-E1")])

    assert (exchange.engine.leverage("BTCUSDT"), exchange.engine.leverage("XRPUSDT")) == (7, DEFAULT_LEVERAGE)
    assert list(exchange.engine.history) == [("leverage", "BTCUSDT", "7"), ("order", "BTCUSDT", "pm-1-E1")]
    assert exchange.calls["set_leverage"] == 1


@pytest.mark.parametrize("leverage", [0, -1, DEFAULT_MAX_LEVERAGE + 1, True])
async def test_leverage_outside_1_to_the_maximum_is_refused_with_4028_and_changes_nothing(leverage):
    exchange, venue = make()
    with pytest.raises(Rejected) as refused:
        await venue.set_leverage("BTCUSDT", leverage)
    assert refused.value.code == -4028 and f"Leverage {leverage} is not valid" in refused.value.msg
    assert exchange.engine.leverage("BTCUSDT") == DEFAULT_LEVERAGE and not exchange.engine.history


async def test_the_maximum_is_the_symbols_own_and_an_unknown_symbol_is_refused():
    exchange, venue = make()
    exchange.engine.set_max_leverage("XRPUSDT", 10)
    await venue.set_leverage("XRPUSDT", 10)
    with pytest.raises(Rejected) as above:
        await venue.set_leverage("XRPUSDT", 11)
    assert above.value.code == -4028 and "1 to 10 for XRPUSDT" in above.value.msg
    with pytest.raises(Rejected) as unknown:
        await venue.set_leverage("NOPEUSDT", 5)
    assert unknown.value.code == -1121
    assert exchange.engine.leverage("XRPUSDT") == 10


async def test_a_scripted_failure_of_set_leverage_is_an_unknown_outcome():
    exchange, venue = make()
    exchange.fail_next("set_leverage", after_execute=True)
    with pytest.raises(OutcomeUnknown):
        await venue.set_leverage("BTCUSDT", 9)
    assert exchange.engine.leverage("BTCUSDT") == 9  # it took effect; the caller cannot know
