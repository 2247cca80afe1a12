"""Client order ids and the TP/SL/close orders built for a tranche."""

import re
from decimal import Decimal as D

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from posmon.domain.orders import OrderSide, OrderType, Purpose, Side, WorkingType
from posmon.domain.protection import (
    LocalState,
    client_order_id,
    close_order,
    parse_client_order_id,
    protection_orders,
)
from posmon.domain.tranche import Tranche

# The venues' (Binance-style) newClientOrderId rule.
VENUE_CID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")

prefixes = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)  # what config accepts
tranche_ids = st.integers(1, 10**12)
seqs = st.integers(0, 10**9)
purposes = st.sampled_from(Purpose)


def tranche(side: Side = Side.LONG, *, seq: int = 0) -> Tranche:
    tp, sl = (D("45450.0"), D("22500.0")) if side is Side.LONG else (D("44550.0"), D("67500.0"))
    return Tranche(
        id=42,
        venue="sim",
        symbol="BTCUSDT",
        side=side,
        index=0,
        entry=D("45000"),
        qty=D("0.150"),
        tp=tp,
        sl=sl,
        opened_at=0.0,
        seq=seq,
    )


# --- client ids ------------------------------------------------------------------------------------------------


def test_client_order_id_format():
    assert client_order_id("pm", 7, Purpose.TP, 3) == "pm-7-T3"
    assert parse_client_order_id("pm", "pm-7-T3") == (7, Purpose.TP, 3)
    assert parse_client_order_id("pm", "pm-12-C0") == (12, Purpose.CLOSE, 0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(prefixes, tranche_ids, purposes, seqs)
def test_client_ids_round_trip_and_suit_the_venue(prefix, tid, purpose, seq):
    cid = client_order_id(prefix, tid, purpose, seq)
    assert len(cid) <= 36
    assert VENUE_CID.match(cid)
    assert parse_client_order_id(prefix, cid) == (tid, purpose, seq)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(prefixes, prefixes, tranche_ids, purposes, seqs)
def test_ids_with_another_prefix_are_not_ours(mine, theirs, tid, purpose, seq):
    assume(mine != theirs)
    assert parse_client_order_id(mine, client_order_id(theirs, tid, purpose, seq)) is None


@pytest.mark.parametrize(
    "foreign",
    [
        "ext-1",
        "",
        "pm",
        "pm-",
        "pm-1",
        "pm-1-",
        "pm-1-T",
        "pm-1-X1",
        "pm-x-T1",
        "pm-1-T1-2",
        "pmx-1-T1",
        "xpm-1-T1",
        "PM-1-T1",
        "pm_1_T1",
        "pm-1-t1",
        "web_8f3a2c",
        "pm--1-T1",
        " pm-1-T1",
    ],
)
def test_foreign_ids_parse_to_none(foreign):
    assert parse_client_order_id("pm", foreign) is None


# --- protection orders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
@pytest.mark.parametrize("hedge_mode", [True, False])
def test_protection_orders_close_the_whole_tranche_at_its_tp_and_sl(side, hedge_mode):
    t = tranche(side, seq=4)
    t2, tp, sl = protection_orders(t, prefix="pm", working_type=WorkingType.CONTRACT_PRICE, hedge_mode=hedge_mode)
    closing = OrderSide.SELL if side is Side.LONG else OrderSide.BUY
    position_side = side.value if hedge_mode else "BOTH"

    assert t2.seq == 5 and t2.qty == t.qty and t2.tp == t.tp and t2.sl == t.sl

    assert (tp.tranche_id, tp.purpose, tp.state) == (42, Purpose.TP, LocalState.PENDING)
    r = tp.request
    assert (r.symbol, r.side, r.position_side, r.type) == ("BTCUSDT", closing, position_side, OrderType.LIMIT)
    assert (r.qty, r.price, r.stop_price) == (D("0.150"), t.tp, None)
    assert r.reduce_only is (not hedge_mode)
    assert parse_client_order_id("pm", r.client_id) == (42, Purpose.TP, 5)

    assert (sl.tranche_id, sl.purpose, sl.state) == (42, Purpose.SL, LocalState.PENDING)
    r = sl.request
    assert (r.symbol, r.side, r.position_side, r.type) == ("BTCUSDT", closing, position_side, OrderType.STOP_MARKET)
    assert (r.qty, r.price, r.stop_price) == (D("0.150"), None, t.sl)
    assert r.working_type is WorkingType.CONTRACT_PRICE
    assert r.reduce_only is (not hedge_mode)
    assert parse_client_order_id("pm", r.client_id) == (42, Purpose.SL, 5)


def test_each_protection_round_gets_new_client_ids():
    t = tranche()
    t, tp1, sl1 = protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=True)
    t, tp2, sl2 = protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=True)
    ids = {tp1.client_id, sl1.client_id, tp2.client_id, sl2.client_id}
    assert len(ids) == 4
    assert t.seq == 2


def test_protection_orders_are_deterministic_for_a_retry():
    t = tranche(seq=9)
    a = protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=False)
    b = protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=False)
    assert a == b


# --- close ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
@pytest.mark.parametrize("hedge_mode", [True, False])
def test_close_order_is_a_market_order_on_the_closing_side(side, hedge_mode):
    t = tranche(side, seq=2)
    t2, rec = close_order(t, D("0.05"), prefix="pm", hedge_mode=hedge_mode)
    r = rec.request
    assert r.type is OrderType.MARKET
    assert r.side is (OrderSide.SELL if side is Side.LONG else OrderSide.BUY)
    assert r.position_side == (side.value if hedge_mode else "BOTH")
    assert (r.qty, r.price, r.stop_price) == (D("0.05"), None, None)
    assert r.reduce_only is (not hedge_mode)
    assert (rec.tranche_id, rec.purpose, rec.state) == (42, Purpose.CLOSE, LocalState.PENDING)
    assert t2.seq == 3
    assert parse_client_order_id("pm", rec.client_id) == (42, Purpose.CLOSE, 3)
