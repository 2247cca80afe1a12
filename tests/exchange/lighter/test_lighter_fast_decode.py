"""Lighter's typed ``market_stats`` decoding gives what the field-by-field path gives, or the same refusal.

Same contract as Aster's (``tests/exchange/aster/test_aster_fast_decode.py``): the typed path is a shortcut,
anything it does not take in full goes to the field-by-field path; the one difference by design is a number beyond
a double in a field posmon does not read, which no longer drops the frame.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given

from bench.parse import lighter_markets, lighter_stats_frame, mark_paths
from posmon.exchange.events import MalformedMessage, MarkPrice
from posmon.exchange.lighter import codec
from tests.exchange.aster.test_aster_fast_decode import assert_same
from tests.exchange.test_frames_fuzz import FUZZ, LIGHTER_PRICE_FRAMES, MARKETS, mutated

D = Decimal
READ = ("type", "market_stats", "timestamp", "error", "market_id", "mark_price")
STATS = {"market_id": 1, "mark_price": "60000.5", "index_price": "60001.0", "daily_price_low": 59000.25}


def typed(raw: bytes) -> list[Any]:
    return codec.parse_price_frame(raw, MARKETS, 5.0)


def by_field(raw: bytes) -> list[Any]:
    return codec.parse_price_frame_by_field(raw, MARKETS, 5.0)


def frame(stats: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"type": "update/market_stats", "channel": "market_stats:all", "market_stats": stats, **extra})


@FUZZ
@given(mutated(LIGHTER_PRICE_FRAMES))
def test_market_stats_frames_decide_as_the_field_by_field_path(raw: bytes) -> None:
    assert_same(typed, by_field, raw, READ)


def test_recorded_market_stats_take_the_typed_path_and_match(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = mark_paths(1008, 2)
    markets = lighter_markets(paths)
    raw = lighter_stats_frame(paths, 1)
    expected = repr(codec.parse_price_frame_by_field(raw, markets, 0.0))

    def refuse(*_: Any) -> Any:
        raise AssertionError("took the field-by-field path")

    monkeypatch.setattr(codec, "parse_price_frame_by_field", refuse)
    marks = codec.parse_price_frame(raw, markets, 0.0)
    assert repr(marks) == expected
    assert [(m.symbol, m.price) for m in marks] == [(s, p[1]) for s, p in paths.items()]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"mark_price": 60000.5}, "field 'mark_price' is not a decimal string"),
        ({"mark_price": "NaN"}, "field 'mark_price' is not a decimal number"),
        ({"mark_price": "Infinity"}, "field 'mark_price' is not a decimal number"),
        ({"mark_price": "-1"}, "field 'mark_price' is negative"),
        ({"mark_price": None}, "field 'mark_price' is not a decimal string"),
        ({"market_id": "one"}, "field 'market_id' is not an integer"),
        ({"market_id": -1}, "field 'market_id' is not an integer"),
        ({"market_id": True}, "field 'market_id' is not an integer"),
        ({"market_id": 2**63}, "field 'market_id' is not an integer"),
    ],
)
def test_a_bad_market_drops_the_whole_frame_and_names_the_field(change: dict[str, Any], says: str) -> None:
    with pytest.raises(MalformedMessage, match=says):
        typed(frame({"0": {**STATS, "market_id": 0}, "1": {**STATS, **change}}))


@pytest.mark.parametrize("missing", ["market_id", "mark_price"])
def test_a_missing_field_drops_the_frame(missing: str) -> None:
    with pytest.raises(MalformedMessage, match=f"missing field '{missing}'"):
        typed(frame({"1": {k: v for k, v in STATS.items() if k != missing}}))


def test_errors_single_markets_and_other_frames_keep_their_meaning() -> None:
    with pytest.raises(MalformedMessage, match="error"):
        typed(frame({"1": STATS}, error={"code": 1}))
    assert typed(orjson.dumps({"type": "update/market_stats", "market_stats": STATS, "timestamp": 1722337200000})) == [
        MarkPrice("BTC", D("60000.5"), 1722337200.0)
    ]
    assert typed(orjson.dumps({"type": "pong"})) == []
    assert typed(frame({"1": STATS}, timestamp="soon")) == [MarkPrice("BTC", D("60000.5"), 5.0)]
    assert typed(frame({"1": {**STATS, "mark_price": "0"}, "7": {**STATS, "market_id": 7}})) == []


def test_a_huge_frame_with_one_bad_market_gives_nothing() -> None:
    stats = {str(i): {**STATS, "market_id": i} for i in range(100_000)}
    assert len(typed(frame(stats))) == 2  # only markets 0 and 1 are known
    stats["bad"] = {**STATS, "mark_price": "1e999999"}
    with pytest.raises(MalformedMessage, match="mark_price"):
        typed(frame(stats))
