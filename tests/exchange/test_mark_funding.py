"""The funding rate and next funding time a mark carries where the venue's price frame has them (Aster's ``r``/``T``
and premiumIndex, Lighter's ``current_funding_rate``/``funding_timestamp``): read the same on the fast typed path
and the field-by-field one; a missing or unreadable funding field leaves the mark without funding, never drops it."""

from __future__ import annotations

from decimal import Decimal as D

import orjson
import pytest

from posmon.exchange.aster import codec as aster
from posmon.exchange.lighter import codec as lighter
from tests.exchange.lighter.test_lighter_adapter_codec import MARKETS

ASTER = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15",
    "r": "-0.00012",
    "T": 1562306400000,
}


def _both_aster(entry: dict) -> list:
    raw = orjson.dumps([entry])
    fast, slow = aster.parse_price_frame(raw), aster.parse_price_frame_by_field(raw)
    assert fast == slow
    return fast


def test_aster_marks_carry_the_negative_rate_and_next_time():
    (mark,) = _both_aster(ASTER)
    assert (mark.funding_rate, mark.next_funding_time) == (D("-0.00012"), 1562306400.0)


@pytest.mark.parametrize("bad", [{"r": None}, {"r": "x"}, {"r": 1}, {"T": "1"}, {"T": True}, {"T": -1}, {"T": None}])
def test_an_unreadable_aster_funding_field_leaves_the_mark_without_funding(bad):
    (mark,) = _both_aster({**ASTER, **bad})
    assert mark.price == D("11794.15") and (mark.funding_rate, mark.next_funding_time) == (None, None)


def _lighter(stats: dict) -> list:
    raw = orjson.dumps({"type": "update/market_stats", "channel": "market_stats:all", "market_stats": {"1": stats}})
    fast, slow = lighter.parse_price_frame(raw, MARKETS, 5.0), lighter.parse_price_frame_by_field(raw, MARKETS, 5.0)
    assert fast == slow
    return fast


def test_lighter_market_stats_carry_the_current_rate_and_the_funding_timestamp_in_ms():
    stats = {"market_id": 1, "mark_price": "60000.1", "current_funding_rate": "0.0012", "funding_timestamp": 3_600_000}
    (mark,) = _lighter(stats)
    assert (mark.funding_rate, mark.next_funding_time) == (D("0.0012"), 3600.0)
    (bare,) = _lighter({"market_id": 1, "mark_price": "60000.1", "current_funding_rate": "n/a"})
    assert bare.price == D("60000.1") and (bare.funding_rate, bare.next_funding_time) == (None, None)
