"""Lighter codec: market scaling, client-id mapping, order/position/price frames into posmon's events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from posmon.domain.orders import OrderSide, OrderStatus, OrderType, Purpose, Side
from posmon.domain.protection import client_order_id, parse_client_order_id
from posmon.exchange.events import MalformedMessage, OrderUpdate, PositionUpdate
from posmon.exchange.lighter import codec
from posmon.exchange.lighter.client_ids import MAX_CLIENT_ORDER_INDEX, MAX_SEQ, MAX_TRANCHE_ID, ClientIds, UnmappableId
from posmon.exchange.lighter.markets import Market, MarketTable, OffGrid, parse_order_book_details

D = Decimal
BTC = Market(
    market_id=1, symbol="BTC", size_decimals=5, price_decimals=1, min_base_amount=D("0.0002"), min_quote_amount=D("10")
)
ETH = Market(market_id=0, symbol="ETH", size_decimals=4, price_decimals=2)
MARKETS = MarketTable.of([BTC, ETH])
IDS = ClientIds("pm")


def frame(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def order(**kw: Any) -> dict[str, Any]:
    base = {
        "order_index": 2**48 + 7,
        "client_order_index": IDS.index("pm-12-C3"),
        "market_index": 1,
        "initial_base_amount": "0.01000",
        "remaining_base_amount": "0.01000",
        "filled_base_amount": "0.00000",
        "filled_quote_amount": "0.000000",
        "price": "59000.0",
        "is_ask": True,
        "type": "market",
        "time_in_force": "immediate-or-cancel",
        "reduce_only": True,
        "trigger_price": "0.0",
        "status": "open",
        "timestamp": 1722337200,
    }
    return {**base, **kw}


# --- markets and scaling ------------------------------------------------------------------------------------


def test_order_book_details_give_tick_step_and_minimums() -> None:
    table = parse_order_book_details(
        {
            "code": 200,
            "order_book_details": [
                {
                    "symbol": "BTC",
                    "market_id": 1,
                    "market_type": "perp",
                    "status": "active",
                    "size_decimals": 5,
                    "price_decimals": 1,
                    "min_base_amount": "0.00020",
                    "min_quote_amount": "10.000000",
                    "mark_price": "60000.0",
                },
                {"symbol": "BAD", "market_id": 9, "size_decimals": "x", "price_decimals": 1},
            ],
            "spot_order_book_details": [],
        }
    )
    rules = table.by_symbol["BTC"].rules
    assert (rules.tick_size, rules.step_size, rules.min_qty, rules.min_notional) == (
        D("0.1"),
        D("0.00001"),
        D("0.0002"),
        D("10"),
    )
    assert table.by_id[1].symbol == "BTC"
    assert "BAD" in table.skipped and "BAD" not in table.by_symbol


def test_scaling_is_exact_and_refuses_values_off_the_grid() -> None:
    assert BTC.base_amount(D("0.01")) == 1000
    assert BTC.price_units(D("60000.1")) == 600001
    assert BTC.qty_of(1000) == D("0.01") and BTC.price_of(600001) == D("60000.1")
    with pytest.raises(OffGrid):
        BTC.base_amount(D("0.000001"))
    with pytest.raises(OffGrid):
        BTC.price_units(D("60000.05"))
    with pytest.raises(OffGrid):
        BTC.price_units(D("0"))
    with pytest.raises(OffGrid):
        BTC.price_units(D(2**32))  # the signer's price is a uint32


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=0, max_value=12))
def test_scaling_round_trips(units: int, decimals: int) -> None:
    m = Market(market_id=3, symbol="X", size_decimals=decimals, price_decimals=decimals)
    assert m.base_amount(m.qty_of(units)) == units


# --- client ids ---------------------------------------------------------------------------------------------


@given(
    st.integers(min_value=0, max_value=MAX_TRANCHE_ID),
    st.sampled_from(list(Purpose)),
    st.integers(min_value=0, max_value=MAX_SEQ),
)
def test_client_ids_round_trip_through_the_48_bit_index(tranche: int, purpose: Purpose, seq: int) -> None:
    cid = client_order_id("pm", tranche, purpose, seq)
    index = IDS.index(cid)
    assert 2**47 <= index <= MAX_CLIENT_ORDER_INDEX
    assert IDS.is_ours(index)
    assert IDS.client_id(index) == cid


@given(st.integers(min_value=1, max_value=2**47 - 1))
def test_foreign_indexes_never_parse_as_ours_and_map_back(index: int) -> None:
    cid = IDS.client_id(index, 2**48 + 5)
    assert cid == f"lighter-{index}"
    assert parse_client_order_id("pm", cid) is None
    assert IDS.index(cid) == index


def test_foreign_order_without_client_index_is_named_by_its_order_index() -> None:
    assert IDS.client_id(0, 2**48 + 5) == f"lighter-{2**48 + 5}"


@pytest.mark.parametrize("cid", ["pm-1-E99999", f"pm-{2**32}-E1", "xx-1-E1", "pm-1-E01", "lighter-0", "lighter-x"])
def test_ids_beyond_the_bit_fields_or_not_ours_are_refused(cid: str) -> None:
    with pytest.raises(UnmappableId):
        IDS.index(cid)


# --- orders -------------------------------------------------------------------------------------------------


def test_ioc_close_partly_filled_then_ended_reports_the_fill_and_expires() -> None:
    fills = codec.FillTracker()
    first = codec.parse_user_frame(
        frame(
            {
                "type": "update/account_all_orders",
                "channel": "account_all_orders:5",
                "orders": {"1": [order(filled_base_amount="0.00400", filled_quote_amount="236.000000")]},
            }
        ),
        MARKETS,
        IDS,
        fills,
        0.0,
    )
    (u,) = first
    assert isinstance(u, OrderUpdate)
    assert (u.client_id, u.symbol, u.side, u.type, u.reduce_only) == (
        "pm-12-C3",
        "BTC",
        OrderSide.SELL,
        OrderType.MARKET,
        True,
    )
    assert (u.status, u.exec_type, u.last_qty, u.last_price, u.filled_qty) == (
        OrderStatus.PARTIALLY_FILLED,
        "TRADE",
        D("0.004"),
        D("59000"),
        D("0.004"),
    )
    assert u.is_fill and u.position_side == "BOTH" and u.time == 1722337200
    (end,) = codec.parse_user_frame(
        frame(
            {
                "type": "update/account_all_orders",
                "orders": {
                    "1": [
                        order(
                            status="canceled-not-enough-liquidity",
                            filled_base_amount="0.00600",
                            filled_quote_amount="353.940000",
                        )
                    ]
                },
            }
        ),
        MARKETS,
        IDS,
        fills,
        0.0,
    )
    assert isinstance(end, OrderUpdate)
    assert end.status is OrderStatus.EXPIRED and end.filled_qty == D("0.006") < end.qty
    assert (end.last_qty, end.last_price) == (D("0.002"), D("58970"))
    assert end.avg_price == D("353.94") / D("0.006")
    (again,) = codec.parse_user_frame(
        frame(
            {
                "type": "update/account_all_orders",
                "orders": {
                    "1": [
                        order(
                            status="canceled-not-enough-liquidity",
                            filled_base_amount="0.00600",
                            filled_quote_amount="353.940000",
                        )
                    ]
                },
            }
        ),
        MARKETS,
        IDS,
        fills,
        0.0,
    )
    assert isinstance(again, OrderUpdate) and not again.is_fill  # a repeated final update is not a second fill


def test_subscription_snapshot_sets_the_baseline_without_reporting_fills() -> None:
    fills = codec.FillTracker()
    o = order(
        type="limit", time_in_force="good-till-time", filled_base_amount="0.00500", filled_quote_amount="295.000000"
    )
    (snap,) = codec.parse_user_frame(
        frame({"type": "subscribed/account_all_orders", "orders": {"1": [o]}}), MARKETS, IDS, fills, 0.0
    )
    assert isinstance(snap, OrderUpdate) and not snap.is_fill and snap.status is OrderStatus.PARTIALLY_FILLED
    done = {**o, "status": "filled", "filled_base_amount": "0.01000", "filled_quote_amount": "590.000000"}
    (u,) = codec.parse_user_frame(
        frame({"type": "update/account_all_orders", "orders": {"1": [done]}}), MARKETS, IDS, fills, 0.0
    )
    assert isinstance(u, OrderUpdate) and (u.status, u.last_qty) == (OrderStatus.FILLED, D("0.005"))


def test_limit_cancel_is_canceled_and_foreign_order_keeps_a_foreign_id() -> None:
    o = order(type="limit", time_in_force="good_till_time", status="canceled", client_order_index=77, is_ask=False)
    (u,) = codec.parse_user_frame(
        frame({"type": "update/account_all_orders", "orders": {"1": [o]}}), MARKETS, IDS, codec.FillTracker(), 0.0
    )
    assert isinstance(u, OrderUpdate)
    assert (u.client_id, u.status, u.exec_type, u.side) == (
        "lighter-77",
        OrderStatus.CANCELED,
        "CANCELED",
        OrderSide.BUY,
    )


def test_positions_from_account_all_are_one_way_and_flat_means_both_sides() -> None:
    events = codec.parse_user_frame(
        frame(
            {
                "type": "update/account_all",
                "channel": "account_all:5",
                "account": 5,
                "timestamp": 1722337200123,
                "positions": {
                    "1": {
                        "market_id": 1,
                        "symbol": "BTC",
                        "sign": -1,
                        "position": "0.02000",
                        "avg_entry_price": "60000.0",
                    },
                    "0": {"market_id": 0, "symbol": "ETH", "sign": 1, "position": "0.0000", "avg_entry_price": "0"},
                },
                "trades": {},
            }
        ),
        MARKETS,
        IDS,
        codec.FillTracker(),
        0.0,
    )
    assert all(isinstance(e, PositionUpdate) for e in events)
    got = {(e.position.symbol, e.position.side, e.position.qty) for e in events}  # type: ignore[union-attr]
    assert got == {("BTC", Side.SHORT, D("0.02")), ("ETH", Side.LONG, D(0)), ("ETH", Side.SHORT, D(0))}
    assert events[0].time == pytest.approx(1722337200.123)


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"[]",
        b'{"no": "type"}',
        b'{"type": "update/account_all_orders", "orders": {"1": [{"market_index": 1}]}}',
        b'{"type": "update/account_all", "positions": {"1": {"market_id": 1, "position": "1", "sign": 3,'
        b' "avg_entry_price": "1"}}}',
    ],
)
def test_malformed_user_frames_raise(bad: bytes) -> None:
    with pytest.raises(MalformedMessage):
        codec.parse_user_frame(bad, MARKETS, IDS, codec.FillTracker(), 0.0)


def test_user_frames_without_events_give_nothing() -> None:
    for f in ({"type": "connected"}, {"type": "ping"}, {"type": "subscribed/account_all_orders"}):
        assert codec.parse_user_frame(frame(f), MARKETS, IDS, codec.FillTracker(), 0.0) == []


# --- prices -------------------------------------------------------------------------------------------------


def test_market_stats_all_and_single_give_mark_prices() -> None:
    marks = codec.parse_price_frame(
        frame(
            {
                "type": "update/market_stats",
                "channel": "market_stats:all",
                "timestamp": 1722337200000,
                "market_stats": {
                    "1": {"market_id": 1, "mark_price": "60000.1", "index_price": "1"},
                    "0": {"market_id": 0, "mark_price": "3335.09"},
                    "99": {"market_id": 99, "mark_price": "1.0"},
                },
            }
        ),
        MARKETS,
        5.0,
    )
    assert {(m.symbol, m.price, m.time) for m in marks} == {
        ("BTC", D("60000.1"), 1722337200.0),
        ("ETH", D("3335.09"), 1722337200.0),
    }
    (one,) = codec.parse_price_frame(
        frame(
            {
                "type": "update/market_stats",
                "channel": "market_stats:0",
                "market_stats": {"market_id": 0, "mark_price": "3335.09"},
            }
        ),
        MARKETS,
        5.0,
    )
    assert (one.symbol, one.time) == ("ETH", 5.0)
    assert codec.parse_price_frame(frame({"type": "ping"}), MARKETS, 0.0) == []
    with pytest.raises(MalformedMessage):
        bad = {"type": "update/market_stats", "market_stats": {"market_id": 0, "mark_price": "x"}}
        codec.parse_price_frame(frame(bad), MARKETS, 0)
