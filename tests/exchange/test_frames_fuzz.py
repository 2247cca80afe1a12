"""Hostile exchange frames (issue 11.7): a bad frame costs one dropped frame, never an actor restart.

The stream readers catch ``MalformedMessage`` only; any other exception from a parser restarts the actor, and six
in a minute stop the daemon. So every venue parser entry point (the venue objects' ``parse_price_frame`` and
``parse_user_frame``) must answer a frame with events or ``MalformedMessage``, and whatever it accepts must be
usable arithmetic: finite Decimals of a sane size, a mark above zero, quantities and prices never negative.

The properties mutate real frames of both venues (from the codec tests and the documentation): one value
replaced by a hostile one (numbers beyond Decimal's range, Unicode digits, wrong types, huge strings, deep
nesting), a key dropped, the bytes truncated. Example counts are stated per property and derandomized; together
they run in a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posmon.domain.orders import OrderState, PositionState, SymbolRules
from posmon.exchange import fields
from posmon.exchange.aster import codec as aster_codec
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.venue import AsterVenue
from posmon.exchange.events import FORCED_KINDS, MalformedMessage, MarkPrice, OrderUpdate, PositionUpdate
from posmon.exchange.lighter import codec as lighter_codec
from posmon.exchange.lighter.client_ids import ClientIds
from posmon.exchange.lighter.markets import Market, MarketTable
from posmon.exchange.lighter.settings import LighterSettings
from posmon.exchange.lighter.venue import LighterVenue
from tests.exchange.aster.test_aster_adapter_fakes import EXCHANGE_INFO

D = Decimal
FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEEP = "\x00deep\x00"  # placeholder: serialized as 3,000 nested arrays (deeper than any JSON parser's limit)

# ---- seed frames -------------------------------------------------------------------------------------------------

ASTER_MARK = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15000000",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00038167",
    "T": 1562306400000,
}
ASTER_PRICE_FRAMES: list[Any] = [
    ASTER_MARK,
    [ASTER_MARK, {**ASTER_MARK, "s": "ETHUSDT", "p": "3000.1"}],
    {"stream": "btcusdt@markPrice@1s", "data": ASTER_MARK},
    {"result": None, "id": 1},
]
ASTER_ORDER = {
    "s": "BTCUSDT",
    "c": "pm-7-S-1",
    "S": "SELL",
    "o": "STOP_MARKET",
    "f": "GTC",
    "q": "0.001",
    "p": "0",
    "ap": "7100.5",
    "sp": "7103.04",
    "x": "TRADE",
    "X": "FILLED",
    "i": 8886774,
    "l": "0.001",
    "z": "0.001",
    "L": "7100.5",
    "N": "USDT",
    "n": "0",
    "T": 1568879465651,
    "t": 0,
    "b": "0",
    "a": "9.91",
    "m": False,
    "R": True,
    "wt": "CONTRACT_PRICE",
    "ot": "STOP_MARKET",
    "ps": "LONG",
    "cp": False,
    "rp": "-1.25",
}
ASTER_USER_FRAMES: list[Any] = [
    {"e": "ORDER_TRADE_UPDATE", "E": 1568879465651, "T": 1568879465650, "o": ASTER_ORDER},
    {
        "e": "ORDER_TRADE_UPDATE",
        "E": 1568879465651,
        "T": 1568879465650,
        "o": {**ASTER_ORDER, "o": "LIQUIDATION", "c": "autoclose-1", "x": "CALCULATED", "X": "FILLED", "ps": "BOTH"},
    },
    {
        "e": "ACCOUNT_UPDATE",
        "E": 1564745798939,
        "T": 1564745798938,
        "a": {
            "m": "ORDER",
            "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}],
            "P": [
                {
                    "s": "BTCUSDT",
                    "pa": "0",
                    "ep": "0.00000",
                    "cr": "200",
                    "up": "0",
                    "mt": "isolated",
                    "iw": "0.00000000",
                    "ps": "BOTH",
                },
                {
                    "s": "BTCUSDT",
                    "pa": "-10",
                    "ep": "6563.86000",
                    "cr": "-45.04000000",
                    "up": "-1423.15600",
                    "mt": "isolated",
                    "iw": "6570.42511771",
                    "ps": "SHORT",
                },
            ],
        },
    },
    {"stream": "key", "data": {"e": "listenKeyExpired", "E": 1576653824250}},
    {"e": "MARGIN_CALL", "E": 1, "cw": "3.1", "p": []},
]

MARKETS = MarketTable.of(
    [
        Market(
            market_id=1,
            symbol="BTC",
            size_decimals=5,
            price_decimals=1,
            min_base_amount=D("0.0002"),
            min_quote_amount=D("10"),
        ),
        Market(market_id=0, symbol="ETH", size_decimals=4, price_decimals=2),
    ]
)
LIGHTER_STATS = {
    "market_id": 1,
    "index_price": "60001.0",
    "mark_price": "60000.5",
    "last_trade_price": "60002.0",
    "open_interest": "12.5",
    "current_funding_rate": "0.0001",
}
LIGHTER_PRICE_FRAMES: list[Any] = [
    {
        "type": "update/market_stats",
        "channel": "market_stats:all",
        "timestamp": 1722337200123,
        "market_stats": {"1": LIGHTER_STATS, "0": {**LIGHTER_STATS, "market_id": 0, "mark_price": "3000.25"}},
    },
    {"type": "update/market_stats", "channel": "market_stats:1", "market_stats": LIGHTER_STATS},
    {"type": "connected"},
]
LIGHTER_ORDER = {
    "order_index": 2**48 + 7,
    "client_order_index": ClientIds("pm").index("pm-12-C3"),
    "market_index": 1,
    "initial_base_amount": "0.01000",
    "remaining_base_amount": "0.00600",
    "filled_base_amount": "0.00400",
    "filled_quote_amount": "236.000000",
    "price": "59000.0",
    "is_ask": True,
    "type": "market",
    "time_in_force": "immediate-or-cancel",
    "reduce_only": True,
    "trigger_price": "0.0",
    "status": "open",
    "timestamp": 1722337200,
}
LIGHTER_USER_FRAMES: list[Any] = [
    {"type": "update/account_all_orders", "channel": "account_all_orders:5", "orders": {"1": [LIGHTER_ORDER]}},
    {
        "type": "update/account_all_orders",
        "channel": "account_all_orders:5",
        "orders": {"1": [{**LIGHTER_ORDER, "type": "liquidation", "client_order_index": 0, "status": "filled"}]},
    },
    {"type": "subscribed/account_all_orders", "orders": {"1": [LIGHTER_ORDER]}},
    {
        "type": "update/account_all",
        "channel": "account_all:5",
        "account": 5,
        "timestamp": 1722337200123,
        "positions": {
            "1": {"market_id": 1, "symbol": "BTC", "sign": -1, "position": "0.02000", "avg_entry_price": "60000.0"},
            "0": {"market_id": 0, "symbol": "ETH", "sign": 1, "position": "0.0000", "avg_entry_price": "0"},
        },
        "trades": {
            "1": [
                {
                    "trade_id": 77,
                    "type": "deleverage",
                    "market_id": 1,
                    "size": "0.00400",
                    "price": "59000.0",
                    "ask_id": 2**48 + 7,
                    "bid_id": 2**48 + 99,
                    "ask_account_id": 5,
                    "bid_account_id": 0,
                }
            ]
        },
    },
]

# ---- the venues' entry points --------------------------------------------------------------------------------------


def aster_venue() -> AsterVenue:
    return AsterVenue(AsterSettings(), cast(Any, None))  # parsing touches neither the REST client nor the network


def lighter_venue() -> LighterVenue:
    venue = LighterVenue(LighterSettings(), cast(Any, SimpleNamespace(next_nonce=None)), clock=lambda: 1.0e9)
    venue.markets = MARKETS
    return venue


def lighter_user(frame: bytes) -> list[Any]:
    """A fresh venue that has seen the seed snapshot (so updates report fills), then ``frame``."""
    venue = lighter_venue()
    venue.parse_user_frame(orjson.dumps(LIGHTER_USER_FRAMES[2]))
    return venue.parse_user_frame(frame)


# ---- mutations ---------------------------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "1e999999999",
    "1e+999999999999999999",
    "1e-999999999",
    "-1e999999999",
    "²",
    "٣",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "-0",
    "0",
    "0E-999999",
    "-1",
    "-0.5",
    "",
    " 1 ",
    "1_0",
    "0x10",
    "1e15",
    "1000000000000001",
    "1e-31",
    "0.000000000000000000000000000001",
    "9" * 5000,
    "x" * 100_000,
    "autoclose-9",
    "adl_autoclose",
    "LIQUIDATION",
    "CALCULATED",
    "NEW_ADL",
    "liquidation",
    "account_all",
    "update/account_all_orders",
    "markPriceUpdate",
    "ORDER_TRADE_UPDATE",
]
hostile = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from([None, True, False, [], {}, [1], {"a": 1}, DEEP, 0, -1, 1, 2**63, 2**64, -(2**70), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=8),
    st.recursive(st.integers() | st.text(max_size=3), lambda inner: st.lists(inner, max_size=2), max_leaves=4),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


def replaced(value: Any, path: tuple[Any, ...], new: Any, *, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            del copy[head]
        else:
            copy[head] = replaced(value[head], rest, new, delete=delete)
        return copy
    copy_list = list(value)
    if delete and not rest:
        del copy_list[head]
    else:
        copy_list[head] = replaced(value[head], rest, new, delete=delete)
    return copy_list


def serialize(value: Any) -> bytes:
    """stdlib JSON (it writes integers beyond 64 bits, NaN and Infinity, which orjson cannot), then the deep nest."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace(json.dumps(DEEP), "[" * 3000 + "1" + "]" * 3000).encode("utf-8", "surrogatepass")


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def twisted(value: Any) -> list[Any]:
    """Near misses of a value the parser reads: its own digits pushed out of range, its sign flipped, retyped."""
    if isinstance(value, str):
        return [
            value + "e999999999",
            value + "e-999999999",
            "-" + value,
            value + "0" * 70,
            value.translate(_WIDE),
            [value],
            {"v": value},
            None,
            "",
            value * 300,
        ]
    return [str(value), -1, None, [value], True, 2**64, 1.5, float("nan")]


_WIDE = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # digits Python's int() and Decimal() both accept


@st.composite
def mutated(draw: st.DrawFn, seeds: list[Any]) -> bytes:
    """A seed frame with one to three mutations (twist a leaf, replace, drop a key, nest), or its bytes truncated."""
    frame = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 3))):
        every = list(paths(frame))
        leaves = [p for p in every if not isinstance(at(frame, p), dict | list)]
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 3)) else every))
        kind = draw(st.sampled_from(["twist", "twist", "replace", "replace", "delete", "nest"]))
        if kind == "delete" and path:
            frame = replaced(frame, path, None, delete=True)
        elif kind == "nest":
            inner = at(frame, path)
            frame = replaced(frame, path, [inner] if draw(st.booleans()) else {"data": inner, "stream": "x"})
        elif kind == "twist":
            frame = replaced(frame, path, draw(st.sampled_from(twisted(at(frame, path)))))
        else:
            frame = replaced(frame, path, draw(hostile))
    raw = serialize(frame)
    if draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    return raw


# ---- what an accepted frame must be ----------------------------------------------------------------------------------


ZERO = D(0)


def sane(value: Decimal, what: str, *, low: Decimal = ZERO, strict: bool = False) -> None:
    assert isinstance(value, Decimal) and value.is_finite(), f"{what}: {value!r}"
    assert value.copy_abs() <= fields.MAX_MAGNITUDE, f"{what}: {value!r}"
    assert value > low if strict else value >= low, f"{what}: {value!r}"
    assert (value * value + value / (value or 1)).is_finite()  # downstream arithmetic must not raise


def check_events(events: list[Any]) -> None:
    for e in events:
        if isinstance(e, MarkPrice):
            sane(e.price, "mark", strict=True)
            assert e.time == e.time and e.time >= 0
        elif isinstance(e, OrderUpdate):
            for name in ("qty", "filled_qty", "last_qty", "last_price", "avg_price"):
                sane(getattr(e, name), name)
            sane(e.realized_pnl, "realized_pnl", low=-fields.MAX_MAGNITUDE)
            if e.last_qty > 0:
                sane(e.last_price, "last_price of a fill", strict=True)
                assert (e.last_qty * e.last_price).is_finite()
            assert e.forced in (None, *FORCED_KINDS)
            assert e.client_id and e.symbol and e.time == e.time
        elif isinstance(e, OrderState):
            for name in ("qty", "filled_qty", "avg_price"):
                sane(getattr(e, name), name)
            for price in (e.price, e.stop_price):
                if price is not None:
                    sane(price, "order price", strict=True)
        elif isinstance(e, PositionState):
            sane(e.qty, "position qty", strict=True)
            sane(e.entry_price, "entry price")
        elif isinstance(e, SymbolRules):
            sane(e.tick_size, "tick", strict=True)
            sane(e.step_size, "step", strict=True)
            sane(e.min_qty, "min qty")
            sane(e.min_notional, "min notional")
        else:
            assert isinstance(e, PositionUpdate)
            sane(e.position.qty, "position qty")
            sane(e.position.entry_price, "entry price")
            assert (e.position.qty * e.position.entry_price).is_finite()


def parsed_or_malformed(parse: Callable[[bytes], list[Any]], frame: bytes) -> None:
    try:
        events = parse(frame)
    except MalformedMessage as exc:
        assert len(str(exc)) < 2000  # one readable log line, not the frame
        return
    check_events(events)


# ---- the properties ----------------------------------------------------------------------------------------------


def test_seed_frames_parse_into_events() -> None:
    """The mutations start from frames each venue accepts (so a mutation is what makes a frame bad)."""
    aster, lighter = aster_venue(), lighter_venue()
    assert all(aster.parse_price_frame(orjson.dumps(f)) for f in ASTER_PRICE_FRAMES[:3])
    assert all(aster.parse_user_frame(orjson.dumps(f)) for f in ASTER_USER_FRAMES[:3])
    assert all(lighter.parse_price_frame(orjson.dumps(f)) for f in LIGHTER_PRICE_FRAMES[:2])
    assert all(lighter_user(orjson.dumps(f)) for f in LIGHTER_USER_FRAMES)


@FUZZ
@given(mutated(ASTER_PRICE_FRAMES))
def test_aster_price_frames_give_marks_or_malformed(frame: bytes) -> None:
    """400 mutated Aster mark-price frames (single, array, combined, ack)."""
    parsed_or_malformed(aster_venue().parse_price_frame, frame)


@FUZZ
@given(mutated(ASTER_USER_FRAMES))
def test_aster_user_frames_give_events_or_malformed(frame: bytes) -> None:
    """400 mutated Aster user frames (ORDER_TRADE_UPDATE fill and liquidation, ACCOUNT_UPDATE, listenKeyExpired)."""
    parsed_or_malformed(aster_venue().parse_user_frame, frame)


@FUZZ
@given(mutated(LIGHTER_PRICE_FRAMES))
def test_lighter_price_frames_give_marks_or_malformed(frame: bytes) -> None:
    """400 mutated Lighter market_stats frames (all markets, one market, connected)."""
    parsed_or_malformed(lighter_venue().parse_price_frame, frame)


@FUZZ
@given(mutated(LIGHTER_USER_FRAMES))
def test_lighter_user_frames_give_events_or_malformed(frame: bytes) -> None:
    """400 mutated Lighter account_all_orders (update, liquidation, snapshot) and account_all (ADL trade) frames."""
    parsed_or_malformed(lighter_user, frame)


# ---- REST answers (the same parsers' siblings: a reconcile must not crash on a corrupt answer either) ------------

ASTER_ORDER_STATE = {
    "avgPrice": "0.00000",
    "clientOrderId": "abc",
    "cumQuote": "0",
    "executedQty": "0",
    "orderId": 1917641,
    "origQty": "0.40",
    "origType": "STOP_MARKET",
    "price": "0",
    "reduceOnly": False,
    "side": "BUY",
    "positionSide": "SHORT",
    "status": "NEW",
    "stopPrice": "9300",
    "symbol": "BTCUSDT",
    "time": 1579276756075,
    "type": "STOP_MARKET",
}
ASTER_ANSWERS: list[Any] = [
    {"order": ASTER_ORDER_STATE},
    {"orders": [ASTER_ORDER_STATE, {**ASTER_ORDER_STATE, "type": "LIMIT", "price": "9000.5", "stopPrice": "0"}]},
    {
        "positions": [
            {"entryPrice": "3000.5", "positionAmt": "-1.250", "symbol": "ETHUSDT", "positionSide": "BOTH"},
            {"entryPrice": "6563.665", "positionAmt": "20.000", "symbol": "BTCUSDT", "positionSide": "LONG"},
        ]
    },
    {
        "marks": [
            {"symbol": "BTCUSDT", "markPrice": "11793.63104562", "indexPrice": "11781.80495970", "time": 1597370495002}
        ]
    },
    {"info": EXCHANGE_INFO},
    {"error": {"code": -2011, "msg": "Unknown order sent."}},
]
LIGHTER_ANSWERS: list[Any] = [
    {"orders": {"code": 200, "orders": [LIGHTER_ORDER, {**LIGHTER_ORDER, "status": "filled", "type": "limit"}]}},
    {
        "account": {
            "code": 200,
            "total": 1,
            "accounts": [
                {
                    "index": 5,
                    "positions": [
                        {
                            "market_id": 1,
                            "symbol": "BTC",
                            "sign": -1,
                            "position": "0.02000",
                            "avg_entry_price": "60000.0",
                            "open_order_count": 1,
                            "pending_order_count": 0,
                        }
                    ],
                }
            ],
        }
    },
    {
        "marks": {
            "code": 200,
            "order_book_details": [{"symbol": "BTC", "market_id": 1, "market_type": "perp", "mark_price": "60000.5"}],
        }
    },
]


def aster_answer(raw: bytes) -> list[Any]:
    """The answer's one key names the parser (so a mutation of the key is a frame no parser is asked about)."""
    data = aster_codec.load_json(raw, "answer")
    if not isinstance(data, dict) or len(data) != 1:
        return []
    [(kind, body)] = data.items()
    if kind == "order":
        return [aster_codec.parse_order(body)]
    if kind == "orders":
        return list(aster_codec.parse_orders(body))
    if kind == "positions":
        return list(aster_codec.parse_positions(body))
    if kind == "marks":
        return list(aster_codec.parse_mark_prices(body))
    if kind == "info":
        return list(aster_codec.parse_exchange_info(body).rules.values())
    if kind == "error":
        aster_codec.error_body(body)
    return []


def lighter_answer(raw: bytes) -> list[Any]:
    data = lighter_codec.load_json(raw, "answer")
    if not isinstance(data, dict) or len(data) != 1:
        return []
    [(kind, body)] = data.items()
    ids = ClientIds("pm")
    if kind == "orders":
        return [o.state for o in lighter_codec.parse_orders(body, MARKETS, ids)]
    if kind == "account":
        lighter_codec.open_order_markets(body)
        return list(lighter_codec.parse_account_positions(body, MARKETS))
    if kind == "marks":
        return list(lighter_codec.parse_mark_prices(body, MARKETS, 1.0e9))
    return []


def test_seed_answers_parse() -> None:
    assert all(aster_answer(orjson.dumps(a)) for a in ASTER_ANSWERS[:5])
    assert all(lighter_answer(orjson.dumps(a)) for a in LIGHTER_ANSWERS)


@FUZZ
@given(mutated(ASTER_ANSWERS))
def test_aster_rest_answers_give_states_or_malformed(answer: bytes) -> None:
    """400 mutated Aster REST answers (order, open orders, positionRisk, premiumIndex, exchangeInfo, error)."""
    parsed_or_malformed(aster_answer, answer)


@FUZZ
@given(mutated(LIGHTER_ANSWERS))
def test_lighter_rest_answers_give_states_or_malformed(answer: bytes) -> None:
    """400 mutated Lighter REST answers (orders, account, orderBookDetails)."""
    parsed_or_malformed(lighter_answer, answer)


# ---- the frames the issue names ------------------------------------------------------------------------------------


def aster_order(**o: Any) -> bytes:
    return orjson.dumps({**ASTER_USER_FRAMES[0], "o": {**ASTER_ORDER, **o}})


def aster_position(**p: Any) -> bytes:
    return orjson.dumps(
        {
            "e": "ACCOUNT_UPDATE",
            "E": 1,
            "a": {"m": "ORDER", "P": [{"s": "BTCUSDT", "pa": "1", "ep": "100", "ps": "BOTH", **p}]},
        }
    )


def lighter_orders(**o: Any) -> bytes:
    return serialize({"type": "update/account_all_orders", "orders": {"1": [{**LIGHTER_ORDER, **o}]}})


def lighter_stats(**s: Any) -> bytes:
    return orjson.dumps({"type": "update/market_stats", "market_stats": {**LIGHTER_STATS, **s}})


ISSUE_FRAMES = [
    pytest.param(lambda: aster_venue().parse_user_frame(aster_position(pa="1e999999999")), id="aster-pa-overflow"),
    pytest.param(lambda: aster_venue().parse_user_frame(aster_position(pa="-1e999999999")), id="aster-pa-neg-overflow"),
    pytest.param(lambda: aster_venue().parse_user_frame(aster_position(ep="-5")), id="aster-negative-entry"),
    pytest.param(
        lambda: aster_venue().parse_price_frame(orjson.dumps({**ASTER_MARK, "p": "1e+999999999999999999"})),
        id="aster-absurd-mark",
    ),
    pytest.param(
        lambda: aster_venue().parse_price_frame(orjson.dumps({**ASTER_MARK, "p": "2e15"})), id="aster-mark-above-bound"
    ),
    pytest.param(
        lambda: aster_venue().parse_price_frame(orjson.dumps({**ASTER_MARK, "p": "٣"})), id="aster-unicode-digit-mark"
    ),
    pytest.param(
        lambda: aster_venue().parse_price_frame(orjson.dumps({**ASTER_MARK, "E": 10**19})),
        id="aster-time-beyond-64-bit",
    ),
    pytest.param(lambda: aster_venue().parse_user_frame(aster_order(q="1e-999999999")), id="aster-qty-underflow"),
    pytest.param(lambda: aster_venue().parse_user_frame(aster_order(l="1", L="0")), id="aster-fill-without-price"),
    pytest.param(lambda: aster_venue().parse_user_frame(aster_order(L="-7100")), id="aster-negative-fill-price"),
    pytest.param(lambda: aster_venue().parse_user_frame(aster_order(c="x" * 100_000)), id="aster-huge-client-id"),
    pytest.param(lambda: lighter_user(lighter_orders(market_index="²")), id="lighter-market-superscript-two"),
    pytest.param(
        lambda: lighter_user(lighter_orders(filled_base_amount="1e-999999999")), id="lighter-filled-underflow"
    ),
    pytest.param(
        lambda: lighter_user(lighter_orders(filled_base_amount="0.005", filled_quote_amount="1")),
        id="lighter-quote-went-down",
    ),
    pytest.param(lambda: lighter_user(lighter_orders(order_index=2**64)), id="lighter-index-beyond-64-bit"),
    pytest.param(
        lambda: lighter_user(lighter_orders(filled_base_amount="0.000001", filled_quote_amount="1e15")),
        id="lighter-average-price-beyond-bound",
    ),
    pytest.param(
        lambda: lighter_user(
            orjson.dumps(
                {
                    "type": "update/account_all",
                    "positions": {"1": {"market_id": "²", "sign": 1, "position": "1", "avg_entry_price": "1"}},
                }
            )
        ),
        id="lighter-position-market",
    ),
    pytest.param(lambda: lighter_venue().parse_price_frame(lighter_stats(market_id="²")), id="lighter-stats-market"),
    pytest.param(
        lambda: lighter_venue().parse_price_frame(lighter_stats(mark_price="1e+999999999999999999")),
        id="lighter-absurd-mark",
    ),
    pytest.param(
        lambda: lighter_venue().parse_price_frame(lighter_stats(mark_price=10**16)),
        id="lighter-integer-mark-above-bound",
    ),
    pytest.param(
        lambda: aster_codec.parse_exchange_info(
            {
                **EXCHANGE_INFO,
                "rateLimits": [{"rateLimitType": "ORDERS", "interval": ["MINUTE"], "intervalNum": 1, "limit": 1}],
            }
        ),
        id="aster-rate-limit-interval-list",
    ),
    pytest.param(
        lambda: lighter_venue().parse_price_frame(
            b'{"type": "update/market_stats", "market_stats": ' + b"[" * 3000 + b"]" * 3000 + b"}"
        ),
        id="lighter-deep",
    ),
]


@pytest.mark.parametrize("parse", ISSUE_FRAMES)
def test_frames_from_the_issue_are_malformed_not_crashes(parse: Callable[[], object]) -> None:
    with pytest.raises(MalformedMessage):
        parse()


def test_a_filter_with_an_unhashable_type_leaves_only_its_symbol_out() -> None:
    info = aster_codec.parse_exchange_info(
        {
            **EXCHANGE_INFO,
            "symbols": [*EXCHANGE_INFO["symbols"], {"symbol": "X", "filters": [{"filterType": ["PRICE_FILTER"]}]}],
        }
    )
    assert "PRICE_FILTER" in info.skipped["X"] and "BTCUSDT" in info.rules


def test_strict_numbers_refuse_what_decimal_alone_would_take() -> None:
    """``Decimal()`` reads Unicode digits, spaces, underscores and NaN; a venue field must be plain ASCII."""
    for text in ("٣", " 1 ", "1_000", "NaN", "-Infinity", "1e+99999", "1e-31", "1" * 65, "0x10"):
        with pytest.raises(MalformedMessage):
            fields.number(text, "x")
    assert fields.number("0E-999", "x") == 0 and fields.number("1.0000000000000000000000000000000000", "x") == 1
    assert fields.number("-1e15", "x") == D("-1e15") and fields.number(7, "x", ints=True) == 7
    with pytest.raises(MalformedMessage):
        fields.number(7, "x")  # only where the venue writes integers
    with pytest.raises(MalformedMessage):
        fields.number(True, "x", ints=True)


def test_an_error_message_about_a_huge_or_deep_value_stays_one_short_line() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(MalformedMessage) as caught:
        fields.as_object(deep, "frame")
    assert len(str(caught.value)) < 300
    with pytest.raises(MalformedMessage) as caught:
        fields.text({"c": "x" * 1_000_000}, "c")
    assert len(str(caught.value)) < 400
