"""The core scenarios over the Aster protocol: real HTTP and websockets to the Aster-protocol simulator,
entries arriving as fills of orders posmon did not place, read from the user data stream."""

from decimal import Decimal as D

import pytest

from posmon.domain.orders import Side
from tests.harness import make_settings, running_aster, settle
from tests.scenario import assert_protected_and_no_orphans


@pytest.mark.parametrize("auth", ["v3", "v1"])
async def test_worked_example_over_the_aster_protocol(tmp_path, autojump_clock, auth):
    async with running_aster(make_settings(tmp_path), auth=auth) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        await h.entry("BTCUSDT", Side.LONG, "0.05", "44550")
        assert h.resting() == {("LIMIT", "SELL", "0.15", "45298.5"), ("STOP_MARKET", "SELL", "0.15", "22425")}
        tranche0 = {o.client_id for o in h.orders()}
        await h.entry("BTCUSDT", Side.LONG, "0.08", "42300")
        assert h.resting() == {
            ("LIMIT", "SELL", "0.15", "45298.5"),
            ("STOP_MARKET", "SELL", "0.15", "22425"),
            ("LIMIT", "SELL", "0.08", "42723"),
            ("STOP_MARKET", "SELL", "0.08", "21150"),
        }
        assert tranche0 <= {o.client_id for o in h.orders()}
        assert_protected_and_no_orphans(h)


@pytest.mark.parametrize(
    ("side", "entry2", "through", "tp1", "pnl"),
    [
        (Side.LONG, "42300", "42800", ("LIMIT", "SELL", "0.08", "42723"), D("40")),
        (Side.SHORT, "47700", "47200", ("LIMIT", "BUY", "0.08", "47223"), D("40")),
    ],
)
async def test_instant_close_over_the_aster_protocol(tmp_path, autojump_clock, side, entry2, through, tp1, pnl):
    async with running_aster(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", side, "0.1", "45000")
        await h.entry("BTCUSDT", side, "0.08", entry2)
        assert tp1 in h.resting()
        before = h.resting() - {tp1} - {("STOP_MARKET", tp1[1], "0.08", x) for x in ("21150", "71550")}

        h.exchange.set_marks({"BTCUSDT": D(through)}, trade=False)
        await settle()

        closed = {r["idx"]: (r["close_reason"], D(r["realized_pnl"])) for r in h.store.closed_tranches("aster")}
        assert closed == {1: ("TP", pnl)}
        assert h.resting() == before
        assert h.exchange.engine.position("BTCUSDT", side).qty == D("0.1")
        assert_protected_and_no_orphans(h)


@pytest.mark.parametrize("auth", ["v3", "v1"])
async def test_secrets_never_reach_the_logs(tmp_path, autojump_clock, caplog, auth):
    import logging

    from posmon.sim.aster import credentials as cred

    with caplog.at_level(logging.DEBUG):
        async with running_aster(make_settings(tmp_path), auth=auth) as h:
            await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
            h.aster.expire_listen_key()
            await h.mark("BTCUSDT", "45500")
    text = "\n".join(r.getMessage() for r in caplog.records) + repr(h.venue) + repr(h.venue.settings)
    assert "tranche 1 closed by TP" in text  # the log did see the scenario
    for secret in (cred.DEFAULT_SIGNER_PRIVATE_KEY, cred.DEFAULT_SIGNER_PRIVATE_KEY[2:], cred.DEFAULT_API_SECRET):
        assert secret not in text
