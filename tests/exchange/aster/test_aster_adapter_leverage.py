"""``AsterVenue.set_leverage``: one signed ``POST leverage`` (v1 and v3 paths), the venue's refusal as ``Rejected``,
and any answer that does not confirm the leverage asked for as an unknown outcome."""

from __future__ import annotations

import pytest

from posmon.exchange.errors import OutcomeUnknown, Rejected
from tests.exchange.aster.test_aster_adapter_fakes import FakeAster
from tests.exchange.aster.test_aster_adapter_rest import venue_on

OK = {"leverage": 7, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}


@pytest.mark.parametrize("auth", ["v1", "v3"])
async def test_set_leverage_is_one_signed_post_naming_symbol_and_leverage(auth):
    fake = FakeAster(auth=auth)
    fake.answer("POST", "/leverage", 200, OK)
    async with venue_on(fake) as venue:
        await venue.set_leverage("BTCUSDT", 7)
    [call] = fake.calls("POST", "/leverage")
    assert call.path == f"/fapi/{auth}/leverage" and call.in_body
    assert (call.params["symbol"], call.params["leverage"]) == ("BTCUSDT", "7")
    assert "signature" in call.params


async def test_the_venues_refusal_is_rejected_with_its_code_and_message():
    fake = FakeAster()
    fake.answer("POST", "/leverage", 400, {"code": -4028, "msg": "Leverage 200 is not valid"})
    async with venue_on(fake) as venue:
        with pytest.raises(Rejected) as refused:
            await venue.set_leverage("BTCUSDT", 200)
        with pytest.raises(Rejected, match="not a symbol posmon trades"):
            await venue.set_leverage("NOPEUSDT", 5)
    assert (refused.value.code, refused.value.msg) == (-4028, "Leverage 200 is not valid")
    assert len(fake.calls("POST", "/leverage")) == 1  # the unknown symbol was never sent


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
        (200, {**OK, "leverage": 5}),  # another leverage than asked for
        (200, {"symbol": "BTCUSDT"}),  # no leverage at all
    ],
)
async def test_an_answer_that_does_not_confirm_the_leverage_is_an_unknown_outcome(status, body):
    fake = FakeAster()
    fake.answer("POST", "/leverage", status, body)
    async with venue_on(fake) as venue:
        with pytest.raises(OutcomeUnknown):
            await venue.set_leverage("BTCUSDT", 7)
