"""Codec: Aster's JSON (REST answers and websocket frames, examples from the docs) into domain types, and
order requests into exactly the wire parameters their type takes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from posmon.domain.orders import (
    OrderRequest,
    OrderSide,
    OrderState,
    OrderStatus,
    OrderType,
    PositionState,
    Side,
    SymbolRules,
    WorkingType,
)
from posmon.exchange.aster import codec
from posmon.exchange.events import MalformedMessage, MarkPrice, OrderUpdate, PositionUpdate
from tests.exchange.aster.test_aster_adapter_fakes import EXCHANGE_INFO

D = Decimal

# --- exchangeInfo -----------------------------------------------------------------------------------------------


def test_rules_come_from_the_filters_never_from_the_precision_fields() -> None:
    info = codec.parse_exchange_info(EXCHANGE_INFO)
    assert info.rules["BTCUSDT"] == SymbolRules(
        "BTCUSDT",
        tick_size=D("0.5"),
        step_size=D("0.001"),
        min_qty=D("0.001"),
        min_notional=D("5"),
        min_price=D("0.5"),
        max_price=D("1000000"),
    )
    # pricePrecision 5 / quantityPrecision 0 would agree here; minNotional is the alternative spelling
    assert info.rules["DOGEUSDT"] == SymbolRules(
        "DOGEUSDT",
        tick_size=D("0.0001"),
        step_size=D("1"),
        min_qty=D("1"),
        min_notional=D("1"),
        min_price=D("0.0001"),
        max_price=D("300"),
    )


def test_a_symbol_without_tick_or_step_is_left_out_with_the_reason() -> None:
    info = codec.parse_exchange_info(EXCHANGE_INFO)
    assert "NOFILTERUSDT" not in info.rules
    assert "PRICE_FILTER" in info.skipped["NOFILTERUSDT"]


def test_a_symbol_with_an_unreadable_filter_is_left_out_naming_the_field() -> None:
    bad = {
        "symbol": "X",
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": 0.1},
            {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1"},
        ],
    }
    info = codec.parse_exchange_info({**EXCHANGE_INFO, "symbols": [*EXCHANGE_INFO["symbols"], bad]})
    assert "tickSize" in info.skipped["X"] and "BTCUSDT" in info.rules


def test_limits_are_read_from_rate_limits() -> None:
    info = codec.parse_exchange_info(EXCHANGE_INFO)
    assert info.limits_published
    assert (info.limits.weight_per_minute, info.limits.orders_per_minute) == (1800, 900)
    assert (
        info.limits.place_weight,
        info.limits.batch_place_weight,
        info.limits.open_orders_weight,
        info.limits.positions_weight,
        info.limits.max_batch_place,
        info.limits.max_batch_cancel,
    ) == (1, 5, 40, 5, 5, 10)


def test_short_windows_scale_to_a_minute_and_the_strictest_wins_long_windows_are_ignored() -> None:
    limits = codec.parse_rate_limits(
        [
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},  # 600 / min
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 1000},
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "RAW_REQUEST", "interval": "MINUTE", "intervalNum": 1, "limit": 5},
        ]
    )
    assert limits is not None and (limits.weight_per_minute, limits.orders_per_minute) == (2400, 600)


def test_missing_rate_limits_fall_back_to_the_documented_ones_and_say_so() -> None:
    info = codec.parse_exchange_info({**EXCHANGE_INFO, "rateLimits": []})
    assert not info.limits_published and info.limits == codec.DEFAULT_LIMITS
    assert (codec.DEFAULT_LIMITS.weight_per_minute, codec.DEFAULT_LIMITS.orders_per_minute) == (2400, 1200)


@pytest.mark.parametrize(
    "bad",
    [
        {"symbols": "BTCUSDT"},
        {"rateLimits": []},
        {"symbols": [], "rateLimits": [{"rateLimitType": "ORDERS", "interval": "FORTNIGHT", "limit": 1}]},
    ],
)
def test_malformed_exchange_info_says_what_is_wrong(bad: dict) -> None:
    with pytest.raises(MalformedMessage):
        codec.parse_exchange_info(bad)


# --- orders and positions ---------------------------------------------------------------------------------------

DOC_ORDER = {  # "Query Order" answer from the doc, as a STOP_MARKET
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
    "closePosition": False,
    "symbol": "BTCUSDT",
    "time": 1579276756075,
    "timeInForce": "GTC",
    "type": "STOP_MARKET",
    "updateTime": 1579276756075,
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
}


def test_order_json_becomes_order_state() -> None:
    assert codec.parse_order(DOC_ORDER) == OrderState(
        client_id="abc",
        order_id="1917641",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        position_side="SHORT",
        type=OrderType.STOP_MARKET,
        status=OrderStatus.NEW,
        qty=D("0.40"),
        filled_qty=D("0"),
        avg_price=D("0"),
        price=None,
        stop_price=D("9300"),
        reduce_only=False,
    )


def test_filled_limit_order_keeps_price_and_fill() -> None:
    state = codec.parse_order(
        {
            **DOC_ORDER,
            "type": "LIMIT",
            "price": "9000.5",
            "stopPrice": "0",
            "executedQty": "0.40",
            "avgPrice": "9000.5",
            "status": "FILLED",
        }
    )
    assert (state.type, state.status, state.price, state.stop_price, state.filled_qty, state.avg_price) == (
        OrderType.LIMIT,
        OrderStatus.FILLED,
        D("9000.5"),
        None,
        D("0.40"),
        D("9000.5"),
    )


def test_other_programs_order_types_map_to_the_type_that_executes_alike() -> None:
    assert codec.parse_order({**DOC_ORDER, "type": "TRAILING_STOP_MARKET"}).type is OrderType.MARKET
    assert codec.parse_order({**DOC_ORDER, "type": "TAKE_PROFIT"}).type is OrderType.LIMIT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("origQty", 0.4),
        ("status", "DONE"),
        ("side", "HOLD"),
        ("orderId", None),
        ("reduceOnly", "false"),
        ("positionSide", "BOTHWAYS"),
        ("avgPrice", "NaN"),
    ],
)
def test_malformed_order_names_the_field(field: str, value: object) -> None:
    with pytest.raises(MalformedMessage, match=field):
        codec.parse_order({**DOC_ORDER, field: value})


def test_one_way_positions_skip_zero_and_negative_amount_is_short() -> None:
    doc = [  # "Position Information v3", one-way mode, plus a short
        {
            "entryPrice": "0.00000",
            "marginType": "isolated",
            "isAutoAddMargin": "false",
            "isolatedMargin": "0.00000000",
            "leverage": "10",
            "liquidationPrice": "0",
            "markPrice": "6679.50671178",
            "maxNotionalValue": "20000000",
            "positionAmt": "0.000",
            "symbol": "BTCUSDT",
            "unRealizedProfit": "0.00000000",
            "positionSide": "BOTH",
            "updateTime": 0,
        },
        {
            "entryPrice": "3000.5",
            "positionAmt": "-1.250",
            "symbol": "ETHUSDT",
            "positionSide": "BOTH",
            "markPrice": "2990",
            "unRealizedProfit": "12.5",
            "leverage": "5",
            "updateTime": 1625474304765,
        },
    ]
    assert codec.parse_positions(doc) == [PositionState("ETHUSDT", Side.SHORT, D("1.250"), D("3000.5"))]


def test_hedge_positions_take_their_side_from_position_side() -> None:
    doc = [  # "Position Information v3", hedge mode
        {
            "entryPrice": "6563.66500",
            "positionAmt": "20.000",
            "symbol": "BTCUSDT",
            "positionSide": "LONG",
            "markPrice": "6679.50671178",
            "unRealizedProfit": "2316.83423560",
            "leverage": "10",
        },
        {
            "entryPrice": "6563.86000",
            "positionAmt": "-10.000",
            "symbol": "BTCUSDT",
            "positionSide": "SHORT",
            "markPrice": "6679.50671178",
            "unRealizedProfit": "-1156.46711780",
            "leverage": "10",
        },
    ]
    assert codec.parse_positions(doc) == [
        PositionState("BTCUSDT", Side.LONG, D("20.000"), D("6563.66500")),
        PositionState("BTCUSDT", Side.SHORT, D("10.000"), D("6563.86000")),
    ]


def test_premium_index_single_and_array() -> None:
    doc = {
        "symbol": "BTCUSDT",
        "markPrice": "11793.63104562",
        "indexPrice": "11781.80495970",
        "estimatedSettlePrice": "11781.16138815",
        "lastFundingRate": "0.00038246",
        "nextFundingTime": 1597392000000,
        "interestRate": "0.00010000",
        "time": 1597370495002,
    }
    mark = MarkPrice("BTCUSDT", D("11793.63104562"), 1597370495.002, D("0.00038246"), 1597392000.0)
    assert codec.parse_mark_prices(doc) == [mark]
    unlisted = {**doc, "symbol": "NEWUSDT", "markPrice": "0"}
    assert codec.parse_mark_prices([doc, unlisted]) == [mark]


def test_error_body_recognises_binance_errors_only() -> None:
    assert codec.error_body({"code": -1121, "msg": "Invalid symbol."}) == (-1121, "Invalid symbol.")
    assert codec.error_body({"code": "-2011", "msg": "Unknown order sent."}) == (-2011, "Unknown order sent.")
    assert codec.error_body({"code": 200, "msg": "success"}) is None
    assert codec.error_body({"code": "200", "msg": "The operation of cancel all open order is done."}) is None
    assert codec.error_body(DOC_ORDER) is None


# --- outgoing order parameters ----------------------------------------------------------------------------------


def request(type_: OrderType, **kw: object) -> OrderRequest:
    base: dict = {
        "client_id": "pm-1-T-1",
        "symbol": "BTCUSDT",
        "side": OrderSide.SELL,
        "position_side": "LONG",
        "type": type_,
        "qty": D("0.010"),
    }
    return OrderRequest(**{**base, **kw})


def test_limit_sends_gtc_quantity_and_price() -> None:
    assert codec.order_params(request(OrderType.LIMIT, price=D("45000.50"))) == [
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("positionSide", "LONG"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", "45000.5"),
        ("newClientOrderId", "pm-1-T-1"),
    ]


def test_stop_market_sends_stop_and_working_type_but_no_time_in_force_or_price() -> None:
    params = dict(
        codec.order_params(
            request(OrderType.STOP_MARKET, stop_price=D("40000"), price=D("1"), working_type=WorkingType.MARK_PRICE)
        )
    )
    assert params == {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "positionSide": "LONG",
        "type": "STOP_MARKET",
        "quantity": "0.01",
        "stopPrice": "40000",
        "workingType": "MARK_PRICE",
        "newClientOrderId": "pm-1-T-1",
    }


def test_take_profit_market_and_market_send_only_what_applies() -> None:
    tp = dict(
        codec.order_params(
            request(OrderType.TAKE_PROFIT_MARKET, stop_price=D("50000"), working_type=WorkingType.CONTRACT_PRICE)
        )
    )
    assert tp["stopPrice"] == "50000" and tp["workingType"] == "CONTRACT_PRICE" and "timeInForce" not in tp
    market = dict(codec.order_params(request(OrderType.MARKET, price=D("1"), stop_price=D("2"))))
    assert set(market) == {"symbol", "side", "positionSide", "type", "quantity", "newClientOrderId"}


def test_reduce_only_is_sent_in_one_way_mode_only() -> None:
    one_way = dict(codec.order_params(request(OrderType.MARKET, position_side="BOTH", reduce_only=True)))
    hedge = dict(codec.order_params(request(OrderType.MARKET, position_side="LONG", reduce_only=True)))
    assert one_way["reduceOnly"] == "true" and "reduceOnly" not in hedge
    assert "reduceOnly" not in dict(codec.order_params(request(OrderType.MARKET, position_side="BOTH")))


def test_batch_parameter_is_compact_json_of_string_values() -> None:
    text = codec.batch_orders_param([request(OrderType.LIMIT, price=D("1E+4"))])
    assert text == (
        '[{"symbol":"BTCUSDT","side":"SELL","positionSide":"LONG","type":"LIMIT","timeInForce":"GTC",'
        '"quantity":"0.01","price":"10000","newClientOrderId":"pm-1-T-1"}]'
    )
    assert codec.client_ids_param(["a", "b"]) == '["a","b"]'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("1E+1"), "10"),
        (D("1.50E+3"), "1500"),
        (D("0.00000010"), "0.0000001"),
        (D("1E-8"), "0.00000001"),
        (D("100"), "100"),
        (D("0E-8"), "0"),
        (D("-0"), "0"),
        (D("12.3400"), "12.34"),
    ],
)
def test_decimals_are_written_plainly(value: Decimal, text: str) -> None:
    assert codec.plain(value) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=D("-1e30"), max_value=D("1e30"), places=None))
def test_plain_never_uses_exponents_and_reads_back_equal(value: Decimal) -> None:
    text = codec.plain(value)
    assert "E" not in text and "e" not in text and Decimal(text) == value


# --- websocket frames -------------------------------------------------------------------------------------------

MARK = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15000000",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00038167",
    "T": 1562306400000,
}
BTC_MARK = MarkPrice("BTCUSDT", D("11794.15000000"), 1562305380.0, D("0.00038167"), 1562306400.0)


def frame(data: object) -> bytes:
    return orjson.dumps(data)


def test_single_array_and_combined_mark_frames() -> None:
    eth = {**MARK, "s": "ETHUSDT", "p": "3000.1"}
    assert codec.parse_price_frame(frame(MARK)) == [BTC_MARK]
    assert codec.parse_price_frame(frame([MARK, eth])) == [
        BTC_MARK,
        replace(BTC_MARK, symbol="ETHUSDT", price=D("3000.1")),
    ]
    assert codec.parse_price_frame(frame({"stream": "btcusdt@markPrice@1s", "data": MARK})) == [BTC_MARK]
    assert codec.parse_price_frame(frame({"stream": "!markPrice@arr@1s", "data": [MARK]})) == [BTC_MARK]


def test_subscription_acks_carry_no_price() -> None:
    assert codec.parse_price_frame(frame({"result": None, "id": 1})) == []


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"not json", "not JSON"),
        (frame({"stream": "btcusdt@markPrice@1s"}), "data"),
        (frame({**MARK, "p": "abc"}), "'p'"),
        (frame({**MARK, "p": "-1"}), "negative"),
        (frame({**MARK, "E": "1562305380000"}), "'E'"),
        (frame([MARK, 5]), "not a JSON object"),
        (frame({"e": "aggTrade", "E": 1, "s": "BTCUSDT", "p": "1"}), "markPriceUpdate"),
        (frame({"code": 2, "msg": "Invalid request: unknown variant"}), "error"),
    ],
)
def test_malformed_price_frames_say_what_is_wrong(raw: bytes, says: str) -> None:
    with pytest.raises(MalformedMessage, match=says):
        codec.parse_price_frame(raw)


DOC_ORDER_UPDATE = {  # "Event: Order Update" from the doc
    "e": "ORDER_TRADE_UPDATE",
    "E": 1568879465651,
    "T": 1568879465650,
    "o": {
        "s": "BTCUSDT",
        "c": "TEST",
        "S": "SELL",
        "o": "TRAILING_STOP_MARKET",
        "f": "GTC",
        "q": "0.001",
        "p": "0",
        "ap": "0",
        "sp": "7103.04",
        "x": "NEW",
        "X": "NEW",
        "i": 8886774,
        "l": "0",
        "z": "0",
        "L": "0",
        "N": "USDT",
        "n": "0",
        "T": 1568879465651,
        "t": 0,
        "b": "0",
        "a": "9.91",
        "m": False,
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": "TRAILING_STOP_MARKET",
        "ps": "LONG",
        "cp": False,
        "AP": "7476.89",
        "cr": "5.0",
        "rp": "0",
    },
}


def test_order_trade_update_becomes_an_order_update() -> None:
    fill = {
        **DOC_ORDER_UPDATE,
        "o": {
            **DOC_ORDER_UPDATE["o"],
            "o": "STOP_MARKET",
            "c": "pm-7-S-1",
            "x": "TRADE",
            "X": "FILLED",
            "l": "0.001",
            "z": "0.001",
            "L": "7100.5",
            "ap": "7100.5",
            "rp": "-1.25",
            "R": True,
            "n": "0.0028402",  # the fee of this fill, in "N" (USDT)
        },
    }
    [update] = codec.parse_user_frame(frame(fill))
    assert update == OrderUpdate(
        symbol="BTCUSDT",
        client_id="pm-7-S-1",
        order_id="8886774",
        side=OrderSide.SELL,
        position_side="LONG",
        type=OrderType.STOP_MARKET,
        status=OrderStatus.FILLED,
        exec_type="TRADE",
        qty=D("0.001"),
        filled_qty=D("0.001"),
        last_qty=D("0.001"),
        last_price=D("7100.5"),
        avg_price=D("7100.5"),
        reduce_only=True,
        realized_pnl=D("-1.25"),
        time=1568879465.651,
        commission=D("0.0028402"),
        commission_asset="USDT",
    )
    assert update.is_fill


def test_doc_order_update_of_another_programs_trailing_stop_is_understood() -> None:
    [update] = codec.parse_user_frame(frame(DOC_ORDER_UPDATE))
    assert (update.type, update.exec_type, update.status, update.client_id) == (
        OrderType.MARKET,
        "NEW",
        OrderStatus.NEW,
        "TEST",
    )


def test_liquidation_update_is_understood() -> None:
    liq = {
        **DOC_ORDER_UPDATE,
        "o": {
            **DOC_ORDER_UPDATE["o"],
            "o": "LIQUIDATION",
            "c": "autoclose-1",
            "x": "CALCULATED",
            "X": "NEW_INSURANCE",
            "ps": "BOTH",
        },
    }
    [update] = codec.parse_user_frame(frame(liq))
    assert (update.type, update.status, update.exec_type) == (OrderType.MARKET, OrderStatus.NEW, "CALCULATED")


DOC_ACCOUNT_UPDATE = {  # "Event: Balance and Position Update" from the doc
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
                "pa": "20",
                "ep": "6563.66500",
                "cr": "0",
                "up": "2850.21200",
                "mt": "isolated",
                "iw": "13200.70726908",
                "ps": "LONG",
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
}


def test_account_update_becomes_position_updates() -> None:
    t = 1564745798.939
    assert codec.parse_user_frame(frame(DOC_ACCOUNT_UPDATE)) == [
        PositionUpdate(PositionState("BTCUSDT", Side.LONG, D(0), D(0)), t),
        PositionUpdate(PositionState("BTCUSDT", Side.SHORT, D(0), D(0)), t),
        PositionUpdate(PositionState("BTCUSDT", Side.LONG, D("20"), D("6563.66500")), t),
        PositionUpdate(PositionState("BTCUSDT", Side.SHORT, D("10"), D("6563.86000")), t),
    ]


def test_one_way_short_in_account_update() -> None:
    update = {
        **DOC_ACCOUNT_UPDATE,
        "a": {"m": "ORDER", "B": [], "P": [{"s": "ETHUSDT", "pa": "-2.5", "ep": "3000", "ps": "BOTH"}]},
    }
    assert codec.parse_user_frame(frame(update)) == [
        PositionUpdate(PositionState("ETHUSDT", Side.SHORT, D("2.5"), D("3000")), 1564745798.939)
    ]


def test_funding_fee_account_update_without_positions_is_empty() -> None:
    update = {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": "1"}]}}
    assert codec.parse_user_frame(frame(update)) == []


def test_listen_key_expired_is_recognised_and_other_events_are_ignored() -> None:
    expired = frame({"e": "listenKeyExpired", "E": 1576653824250})
    assert codec.is_listen_key_expired(expired)
    assert codec.is_listen_key_expired(frame({"stream": "k", "data": {"e": "listenKeyExpired", "E": 1}}))
    assert not codec.is_listen_key_expired(frame(DOC_ORDER_UPDATE))
    assert not codec.is_listen_key_expired(b'{"e": "listenKeyExpired"')
    assert codec.parse_user_frame(expired) == []
    assert codec.parse_user_frame(frame({"e": "MARGIN_CALL", "E": 1, "cw": "3.1", "p": []})) == []
    assert (
        codec.parse_user_frame(frame({"e": "ACCOUNT_CONFIG_UPDATE", "E": 1, "T": 1, "ac": {"s": "X", "l": 25}})) == []
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\x00\x01", "not JSON"),
        (frame([DOC_ORDER_UPDATE]), "not a JSON object"),
        (frame({"E": 1}), "'e'"),
        (frame({**DOC_ORDER_UPDATE, "o": {**DOC_ORDER_UPDATE["o"], "x": "TELEPORTED"}}), "execution type"),
        (frame({**DOC_ORDER_UPDATE, "o": {**DOC_ORDER_UPDATE["o"], "q": 0.001}}), "'q'"),
        (frame({**DOC_ORDER_UPDATE, "o": {**DOC_ORDER_UPDATE["o"], "R": "no"}}), "'R'"),
        (frame({**DOC_ORDER_UPDATE, "o": {**DOC_ORDER_UPDATE["o"], "o": "MOON"}}), "OrderType"),
        (frame({**DOC_ACCOUNT_UPDATE, "a": {"P": {"s": "BTCUSDT"}}}), "not a list"),
        (
            frame({**DOC_ACCOUNT_UPDATE, "a": {"P": [{"s": "BTCUSDT", "pa": "1", "ep": "1", "ps": "UP"}]}}),
            "position side",
        ),
    ],
)
def test_malformed_user_frames_say_what_is_wrong(raw: bytes, says: str) -> None:
    with pytest.raises(MalformedMessage, match=says):
        codec.parse_user_frame(raw)
