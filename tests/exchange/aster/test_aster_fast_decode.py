"""The typed (msgspec) decoding of the hot inputs is a shortcut to the field-by-field path's result, never new rules.

``parse_price_frame``, ``parse_orders`` and ``parse_positions`` first try msgspec structs and hand anything they do
not accept in full to the field-by-field path. So on any input the two give the same marks, orders or positions,
or the same ``MalformedMessage``. One difference is by design: msgspec skips the fields posmon does not read
without converting their numbers, so a frame the old path refused only because such a field held a number beyond
a double (``"i": 1e400``) is now read; the fields it reads are checked exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.parse import aster_mark_frame, mark_paths, open_orders_answer, position_risk_answer
from posmon.exchange import fields
from posmon.exchange.aster import codec
from posmon.exchange.events import MalformedMessage, MarkPrice
from tests.exchange.test_frames_fuzz import ASTER_MARK, ASTER_ORDER_STATE, FUZZ, mutated

D = Decimal
MARK_READ = ("e", "E", "s", "p")
ORDER_READ = (
    "clientOrderId",
    "orderId",
    "symbol",
    "side",
    "type",
    "status",
    "origQty",
    "positionSide",
    "executedQty",
    "avgPrice",
    "price",
    "stopPrice",
    "reduceOnly",
)
POSITION_READ = ("symbol", "positionAmt", "entryPrice", "positionSide")
POSITION = {
    "symbol": "BTCUSDT",
    "positionAmt": "-0.250",
    "entryPrice": "60000.5",
    "markPrice": "60010",
    "unRealizedProfit": "-2.5",
    "positionSide": "SHORT",
    "updateTime": 1700000000000,
}


def outcome(parse: Callable[[bytes], list[Any]], raw: bytes) -> tuple[str, str]:
    """What a parser made of the input: its result (repr: Decimal exponents count) or its error message."""
    try:
        return "ok", repr(parse(raw))
    except MalformedMessage as exc:
        return "malformed", str(exc)


def only_read(raw: bytes, read: tuple[str, ...]) -> bytes | None:
    """The input with every object keeping only the fields posmon reads (None: not JSON even to the stdlib)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict) and any(k in value for k in read):
            return {k: strip(v) for k, v in value.items() if k in read}
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    try:
        data = json.loads(raw)
        return orjson.dumps(strip(data))
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError):
        return None


def assert_same(
    typed: Callable[[bytes], list[Any]], by_field: Callable[[bytes], list[Any]], raw: bytes, read: Any
) -> None:
    new, old = outcome(typed, raw), outcome(by_field, raw)
    if new == old:
        return
    # The one difference by design: the old path refused the input as JSON because of an unread field.
    assert new[0] == "ok" and old == ("malformed", old[1]) and "is not JSON" in old[1], (raw[:300], new, old)
    stripped = only_read(raw, read)
    assert stripped is not None and outcome(by_field, stripped) == new, (raw[:300], new, old)


def by_field_orders(raw: bytes) -> list[Any]:
    return codec.parse_orders(codec.load_json(raw, "open orders answer"))


def by_field_positions(raw: bytes) -> list[Any]:
    return codec.parse_positions(codec.load_json(raw, "positionRisk answer"))


# ---- the same result ----------------------------------------------------------------------------------------------


@FUZZ
@given(mutated([[ASTER_MARK, {**ASTER_MARK, "s": "ETHUSDT", "p": "3000.10"}, {**ASTER_MARK, "p": "0"}], [ASTER_MARK]]))
def test_mark_frames_decide_as_the_field_by_field_path(raw: bytes) -> None:
    assert_same(codec.parse_price_frame, codec.parse_price_frame_by_field, raw, MARK_READ)


@FUZZ
@given(mutated([[ASTER_ORDER_STATE, {**ASTER_ORDER_STATE, "type": "TAKE_PROFIT", "status": "NEW_ADL"}]]))
def test_open_orders_decide_as_the_field_by_field_path(raw: bytes) -> None:
    assert_same(codec.parse_orders, by_field_orders, raw, ORDER_READ)


@FUZZ
@given(
    mutated(
        [
            [
                POSITION,
                {**POSITION, "positionSide": "BOTH", "positionAmt": "0"},
                {**POSITION, "positionSide": "LONG", "positionAmt": "1.5"},
            ]
        ]
    )
)
def test_position_risk_decides_as_the_field_by_field_path(raw: bytes) -> None:
    assert_same(codec.parse_positions, by_field_positions, raw, POSITION_READ)


def test_an_unread_number_beyond_a_double_no_longer_drops_the_frame() -> None:
    raw = orjson.dumps([ASTER_MARK]).replace(b'"i":"11784.62659091"', b'"i":1e400')
    with pytest.raises(MalformedMessage, match="not JSON"):
        codec.parse_price_frame_by_field(raw)
    assert codec.parse_price_frame(raw) == [
        MarkPrice("BTCUSDT", D("11794.15000000"), 1562305380.0, D("0.00038167"), 1562306400.0)
    ]


def test_deep_nesting_in_an_unread_field_is_refused_or_skipped_never_a_crash() -> None:
    """msgspec skips an unread value within Python's recursion limit (else RecursionError: the old path refuses)."""
    raw = b'[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
    assert outcome(codec.parse_price_frame, raw) in (
        outcome(codec.parse_price_frame_by_field, raw),
        ("ok", repr([MarkPrice("BTCUSDT", D(1), 0.001)])),
    )


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the field-by-field path fail loudly: what still parses took the typed path."""

    def refuse(*_: Any) -> Any:
        raise AssertionError("took the field-by-field path")

    monkeypatch.setattr(codec, "parse_price_frame_by_field", refuse)
    monkeypatch.setattr(codec, "load_json", refuse)


def test_recorded_frames_and_start_up_lists_take_the_typed_path(no_fallback: None) -> None:
    """The hot inputs as the venue sends them (prices from the packaged recording) never need the slow path."""
    paths = mark_paths(1008, 3)
    for step in range(3):
        for doc_fields in (True, False):
            marks = codec.parse_price_frame(aster_mark_frame(paths, step, doc_fields=doc_fields))
            assert [(m.symbol, m.price) for m in marks] == [(s, p[step]) for s, p in paths.items()]
    orders = codec.parse_orders(open_orders_answer(paths, 500))
    assert len(orders) == 500 and {o.type.value for o in orders} == {"LIMIT", "STOP_MARKET"}
    positions = codec.parse_positions(position_risk_answer(paths))
    assert len(positions) == 1008  # every other symbol holds both sides, the flat entries are left out


def test_recorded_inputs_give_what_the_field_by_field_path_gives() -> None:
    paths = mark_paths(1008, 2)
    for doc_fields in (True, False):
        frame = aster_mark_frame(paths, 1, doc_fields=doc_fields)
        assert repr(codec.parse_price_frame(frame)) == repr(codec.parse_price_frame_by_field(frame))
    orders = open_orders_answer(paths, 300)
    assert repr(codec.parse_orders(orders)) == repr(by_field_orders(orders))
    risk = position_risk_answer(paths)
    assert repr(codec.parse_positions(risk)) == repr(by_field_positions(risk))


# ---- hostile input: one clear rejection, nothing parsed -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"p": 11794.15}, "field 'p' is not a decimal string"),
        ({"p": 11794}, "field 'p' is not a decimal string"),
        ({"p": "NaN"}, "field 'p' is not a decimal number"),
        ({"p": "Infinity"}, "field 'p' is not a decimal number"),
        ({"p": "-Infinity"}, "field 'p' is not a decimal number"),
        ({"p": "1e999999"}, "field 'p' is not a decimal number"),
        ({"p": "1e15000"}, "field 'p' is not a decimal number"),
        ({"p": "1e16"}, "field 'p' is out of range"),
        ({"p": " 1"}, "field 'p' is not a decimal number"),
        ({"p": "1_000"}, "field 'p' is not a decimal number"),
        ({"p": "١٢"}, "field 'p' is not a decimal number"),
        ({"p": "-1"}, "field 'p' is negative"),
        ({"p": None}, "field 'p' is not a decimal string"),
        ({"E": "1562305380000"}, "field 'E' is not a millisecond timestamp"),
        ({"E": True}, "field 'E' is not a millisecond timestamp"),
        ({"E": 1.5e12}, "field 'E' is not a millisecond timestamp"),
        ({"E": -1}, "field 'E' is not a millisecond timestamp"),
        ({"s": 7}, "field 's' is not a non-empty string"),
        ({"s": ""}, "field 's' is not a non-empty string"),
        ({"s": "X" * 257}, "field 's' is not a non-empty string"),
        ({"e": "aggTrade"}, "not a markPriceUpdate"),
        ({"p": ["1"]}, "field 'p' is not a decimal string"),
    ],
)
def test_a_bad_field_in_a_mark_frame_drops_the_frame_and_names_the_field(change: dict[str, Any], says: str) -> None:
    good = {**ASTER_MARK, "s": "ETHUSDT"}
    with pytest.raises(MalformedMessage, match=says):
        codec.parse_price_frame(orjson.dumps([good, {**ASTER_MARK, **change}, good]))


@pytest.mark.parametrize("missing", MARK_READ)
def test_a_missing_field_drops_the_mark_frame(missing: str) -> None:
    entry = {k: v for k, v in ASTER_MARK.items() if k != missing}
    with pytest.raises(MalformedMessage, match=r"missing field|not a markPriceUpdate"):
        codec.parse_price_frame(orjson.dumps([ASTER_MARK, entry]))


@pytest.mark.parametrize(
    "raw",
    [
        b'[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":' + b"[" * 5000 + b"]" * 5000 + b"}]",
        b'[{"e":"markPriceUpdate","E":1,"s":"BTC\xffUSDT","p":"1"}]',
        b'[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"}',
        b'[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"},]',
        b'[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1","x":NaN}]',
        b'[{"e":"markPriceUpdate","E":18446744073709551616,"s":"BTCUSDT","p":"1"}]',
        b'[{"e":"markPriceUpdate","E":1,"s":"\\ud800","p":"1"}]',
        b"[5]",
        b"[[]]",
    ],
)
def test_frames_that_are_not_json_or_not_entries_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        codec.parse_price_frame(raw)


def test_a_huge_frame_with_one_bad_entry_at_the_end_gives_nothing() -> None:
    entries = [{**ASTER_MARK, "s": f"S{i}"} for i in range(200_000)]
    assert len(codec.parse_price_frame(orjson.dumps(entries))) == 200_000
    with pytest.raises(MalformedMessage, match="field 'p'"):
        codec.parse_price_frame(orjson.dumps([*entries, {**ASTER_MARK, "p": "NaN"}]))


def test_unusual_but_valid_frames_still_parse_through_the_field_by_field_path() -> None:
    """A leading space, a non-ASCII symbol, an exponent, a repeated key: read as before, not refused."""
    expected = [MarkPrice("BTCUSDT", D("11794.15000000"), 1562305380.0, D("0.00038167"), 1562306400.0)]
    assert codec.parse_price_frame(b" " + orjson.dumps([ASTER_MARK])) == expected
    assert codec.parse_price_frame(orjson.dumps([{**ASTER_MARK, "p": "1.179415E4"}])) == expected
    (other,) = codec.parse_price_frame(orjson.dumps([{**ASTER_MARK, "s": "BTC€USDT"}]))
    assert other.symbol == "BTC€USDT"
    repeated = orjson.dumps([ASTER_MARK]).replace(b'"p":"11794.15000000"', b'"p":"1","p":"11794.15000000"')
    assert codec.parse_price_frame(repeated) == codec.parse_price_frame_by_field(repeated) == expected


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"price": 100.5}, "'price' is not a decimal string"),
        ({"origQty": "NaN"}, "'origQty' is not a decimal number"),
        ({"origQty": "-1"}, "'origQty' is negative"),
        ({"side": "SIDEWAYS"}, "unknown OrderSide"),
        ({"orderId": True}, "order id"),
        ({"positionSide": "UP"}, "unknown position side"),
        ({"reduceOnly": "true"}, "'reduceOnly' is not a boolean"),
    ],
)
def test_a_bad_order_in_the_open_orders_answer_fails_the_answer(change: dict[str, Any], says: str) -> None:
    raw = orjson.dumps([ASTER_ORDER_STATE, {**ASTER_ORDER_STATE, **change}])
    with pytest.raises(MalformedMessage, match=says):
        codec.parse_orders(raw)


def test_a_missing_order_field_fails_the_answer() -> None:
    for key in ("clientOrderId", "orderId", "symbol", "side", "type", "status", "origQty"):
        entry = {k: v for k, v in ASTER_ORDER_STATE.items() if k != key}
        with pytest.raises(MalformedMessage, match="missing field"):
            codec.parse_orders(orjson.dumps([entry]))


# ---- the fast number reader -----------------------------------------------------------------------------------------


@FUZZ
@given(
    st.one_of(
        st.from_regex(r"-?[0-9]{0,20}(\.[0-9]{0,14})?", fullmatch=True),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.text(alphabet="0123456789.-+eE _٣²", max_size=40),
    )
)
def test_plain_decimal_reads_exactly_what_number_reads(text: str) -> None:
    """``plain_decimal`` is a subset of ``number``: what it reads is the same Decimal, digit for digit."""
    fast = fields.plain_decimal(text)
    if fast is None:
        return
    assert repr(fast) == repr(fields.number(text, "x")) and fast.is_finite() and abs(fast) <= fields.MAX_MAGNITUDE


def test_a_large_order_list_is_decoded_in_chunks_to_the_same_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole account's list is decoded ~1,000 items at a time (one C call holds the interpreter lock): chunks
    split on the items themselves, so ids full of brackets, commas and quotes come through unchanged."""
    body = open_orders_answer(mark_paths(7, 2), 60)
    odd = orjson.loads(body)
    for n, item in enumerate(odd):
        item["clientOrderId"] = f'pm-{n}-T-1"}},{{"x":[1,2]}}],[' if n % 3 == 0 else item["clientOrderId"]
    odd_body = orjson.dumps(odd)
    whole = codec.parse_orders(body), codec.parse_orders(odd_body)
    splits: list[int] = []

    class CountingRaw:
        def decode(self, data: bytes) -> Any:
            raws = raw_list.decode(data)
            splits.append(len(raws))
            return raws

    raw_list = codec._RAW_LIST
    monkeypatch.setattr(codec, "_RAW_LIST", CountingRaw())
    monkeypatch.setattr(codec, "DECODE_CHUNK_BYTES", 0)
    monkeypatch.setattr(codec, "DECODE_CHUNK_ITEMS", 7)
    chunked = codec.parse_orders(body), codec.parse_orders(odd_body)
    assert chunked == whole and len(chunked[0]) == 60
    assert [o.client_id for o in chunked[1]][:4] == [o["clientOrderId"] for o in odd][:4]
    assert splits == [60, 60]  # both went the chunked way (and no fallback to the field-by-field path)
