"""The Lighter simulator's UpdateLeverage transaction, signed by the SDK's Go signer and sent over loopback HTTP:
accepted within the market's range (its initial margin fraction and the engine's leverage follow, in order with
the account's orders), refused with 21711 beyond it or for a margin-mode change while a position is held."""

from __future__ import annotations

from decimal import Decimal as D

from posmon.domain.orders import Side
from posmon.exchange.lighter.signer import CROSS_MARGIN_MODE, ISOLATED_MARGIN_MODE
from posmon.sim.lighter import errors as e
from posmon.sim.lighter.markets import DOGE, ETH
from tests.sim.lighter.test_lighter_sim_helpers import make_sim, running


async def test_update_leverage_sets_the_markets_margin_fraction_and_the_engines_leverage(autojump_clock):
    sim = make_sim()
    async with running(sim) as client:
        tx = client.signer.update_leverage(
            market_index=ETH.market_id, leverage=8, margin_mode=CROSS_MARGIN_MODE, nonce=await client.nonce()
        )
        answer = await client.send(tx)
        assert answer.status_code == 200, answer.text
        assert (await client.order(market=ETH.market_id, coi=5)).status_code == 200
        positions = await client.positions()

    assert sim.imf[ETH.market_id] == 1250  # 10,000 / 8
    assert sim.exchange.engine.leverage("ETH") == 8
    assert [kind for kind, _, _ in sim.exchange.engine.history] == ["leverage", "order"]
    assert positions[ETH.market_id]["initial_margin_fraction"] == "12.50"


async def test_leverage_above_the_markets_maximum_is_refused_and_changes_nothing(autojump_clock):
    sim = make_sim()
    assert DOGE.max_leverage == 20  # its minimum initial margin fraction is 5 %
    async with running(sim) as client:
        tx = client.signer.update_leverage(
            market_index=DOGE.market_id, leverage=21, margin_mode=CROSS_MARGIN_MODE, nonce=await client.nonce()
        )
        refused = await client.send(tx)
        ok = await client.send(
            client.signer.update_leverage(
                market_index=DOGE.market_id, leverage=20, margin_mode=CROSS_MARGIN_MODE, nonce=await client.nonce()
            )
        )

    assert refused.status_code == 400 and refused.json()["code"] == e.INVALID_LEVERAGE
    assert "leverage above 20x" in refused.json()["message"]
    assert ok.status_code == 200, ok.text
    assert sim.imf[DOGE.market_id] == 500 and sim.exchange.engine.leverage("DOGE") == 20
    assert sim.counters.txs_rejected == 1


async def test_the_margin_mode_cannot_change_while_the_market_holds_a_position(autojump_clock):
    sim = make_sim()
    sim.external_entry("ETH", Side.LONG, D("0.1"))
    async with running(sim) as client:
        isolated = client.signer.update_leverage(
            market_index=ETH.market_id, leverage=5, margin_mode=ISOLATED_MARGIN_MODE, nonce=await client.nonce()
        )
        refused = await client.send(isolated)
        cross = client.signer.update_leverage(
            market_index=ETH.market_id, leverage=5, margin_mode=CROSS_MARGIN_MODE, nonce=await client.nonce()
        )
        accepted = await client.send(cross)

    assert refused.status_code == 400 and refused.json()["code"] == e.INVALID_LEVERAGE
    assert "margin mode" in refused.json()["message"]
    assert accepted.status_code == 200, accepted.text
    assert sim.margin_mode[ETH.market_id] == CROSS_MARGIN_MODE and sim.exchange.engine.leverage("ETH") == 5
