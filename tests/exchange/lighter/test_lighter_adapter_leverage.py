"""``LighterVenue.set_leverage`` against the Lighter-protocol simulator: one signed UpdateLeverage in the key's
nonce sequence, a refusal as ``Rejected``, and one resend after a nonce refusal."""

from __future__ import annotations

import pytest

from posmon.exchange.errors import Rejected
from posmon.sim.lighter import errors as e
from posmon.sim.lighter.markets import DOGE, ETH
from tests.exchange.lighter.test_lighter_adapter_sim import lighter_on_sim, order


async def test_set_leverage_sends_one_update_leverage_before_the_next_order():
    async with lighter_on_sim() as (venue, sim):
        await venue.set_leverage("ETH", 10)
        [placed] = await venue.place_orders([order("pm-1-E1")])
    assert not isinstance(placed, Exception), placed
    assert sim.imf[ETH.market_id] == 1000 and sim.exchange.engine.leverage("ETH") == 10
    assert [kind for kind, _, _ in sim.exchange.engine.history] == ["leverage", "order"]
    assert sim.counters.requests["POST /api/v1/sendTx"] == 2


async def test_a_leverage_the_market_does_not_allow_is_rejected_naming_the_code():
    async with lighter_on_sim() as (venue, sim):
        with pytest.raises(Rejected) as refused:
            await venue.set_leverage("DOGE", DOGE.max_leverage + 1)
        with pytest.raises(Rejected, match="not a Lighter perpetual market"):
            await venue.set_leverage("NOPE", 5)
    assert refused.value.code == e.INVALID_LEVERAGE
    assert sim.imf[DOGE.market_id] == DOGE.default_imf and not sim.exchange.engine.history


async def test_a_nonce_refusal_is_resent_once_with_a_fresh_nonce():
    async with lighter_on_sim() as (venue, sim):
        sim.force_nonce_error(1)
        await venue.set_leverage("ETH", 4)
    assert sim.exchange.engine.leverage("ETH") == 4
    assert sim.counters.requests["POST /api/v1/sendTx"] == 2
