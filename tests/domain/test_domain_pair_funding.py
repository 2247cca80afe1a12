"""Pair legs' funding estimated from the venue's rate: the payment's sign by side and rate, exact decimals, one
count per funding time, and the schedule read from the marks (which funding time passed, at which rate)."""

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from posmon.domain.orders import Side
from posmon.domain.pairs import FundingDue, FundingWatch, Leg, add_funding, funding_payment, new_pair

T = 1_700_006_400.0  # a funding time (epoch seconds)


def test_a_positive_rate_is_paid_by_the_long_and_received_by_the_short_exactly():
    # 0.015 x 45123.45 x 0.0001 = 0.06768517500: kept to the last digit, no rounding
    assert funding_payment(Side.LONG, D("0.015"), D("45123.45"), D("0.0001")) == D("-0.067685175000")
    assert funding_payment(Side.SHORT, D("0.015"), D("45123.45"), D("0.0001")) == D("0.067685175000")


def test_a_negative_rate_pays_the_long_and_charges_the_short():
    assert funding_payment(Side.LONG, D("2"), D("100"), D("-0.00025")) == D("0.05")
    assert funding_payment(Side.SHORT, D("2"), D("100"), D("-0.00025")) == D("-0.05")


@given(
    st.decimals(min_value=D("0.00001"), max_value=D(1000), places=5),
    st.decimals(min_value=D("0.01"), max_value=D(200000), places=2),
    st.decimals(min_value=D("-0.01"), max_value=D("0.01"), places=8),
)
def test_the_two_legs_of_a_hedge_at_one_mark_net_to_zero(qty, mark, rate):
    long, short = funding_payment(Side.LONG, qty, mark, rate), funding_payment(Side.SHORT, qty, mark, rate)
    assert long + short == 0 and abs(long) == qty * mark * abs(rate)


def _pair():
    return new_pair(
        1,
        Leg("aster", "BTCUSDT", Side.LONG, D("0.01"), D("0.001"), D("0.01"), D(45000)),
        Leg("lighter", "BTC", Side.SHORT, D("0.01"), D("0.00001"), D("0.01"), D(45000)),
    )


def test_a_funding_time_is_counted_once_per_leg_and_an_older_one_never():
    p = add_funding(_pair(), 0, D("-0.045"), T)
    assert p is not None and p.legs[0].funding == D("-0.045") and p.legs[0].funded_at == T
    assert add_funding(p, 0, D("-0.045"), T) is None  # the same funding time again (a restart): not counted
    assert add_funding(p, 0, D("-0.045"), T - 3600) is None  # an older one arriving late
    later = add_funding(p, 0, D("-0.05"), T + 3600)
    assert later is not None and later.legs[0].funding == D("-0.095") and later.legs[0].funded_at == T + 3600
    other = add_funding(p, 1, D("0.045"), T)  # the other leg keeps its own key
    assert other is not None and other.legs[1].funding == D("0.045")
    untimed = add_funding(p, 0, D("1"))  # a payment without a time is always added, the key kept
    assert untimed is not None and untimed.legs[0].funding == D("0.955") and untimed.legs[0].funded_at == T


def test_the_watch_reports_a_funding_time_once_with_the_rate_announced_for_it():
    w, due = FundingWatch().see(T - 10, D(100), D("0.0001"), T)
    assert due is None
    w, due = w.see(T - 5, D(101), D("0.0002"), T)  # the estimate moved: the last one before the time counts
    assert due is None
    w, due = w.see(T + 1, D(102), D("0.0003"), T + 28800)
    assert due == FundingDue(T, D("0.0002"), D(102))
    w, due = w.see(T + 2, D(103), D("0.0003"), T + 28800)
    assert due is None and w.next_time == T + 28800 and w.rate == D("0.0003")


def test_the_time_passing_counts_even_while_the_venue_still_announces_it_and_only_once():
    w, _ = FundingWatch().see(T - 1, D(100), D("0.0001"), T)
    w, due = w.see(T, D(100), D("0.0001"), T)  # reached the time, the frame not yet moved on
    assert due == FundingDue(T, D("0.0001"), D(100))
    w, due = w.see(T + 1, D(100), D("0.0001"), T)
    assert due is None  # the stale announcement does not re-arm it
    w, due = w.see(T + 2, D(100), D("0.0001"), T + 3600)
    assert due is None and w.next_time == T + 3600


def test_marks_without_funding_or_first_seen_after_a_time_estimate_nothing():
    w, due = FundingWatch().see(T + 5, D(100), None, None)
    assert due is None and w == FundingWatch()
    w, due = FundingWatch().see(T + 5, D(100), D("0.0001"), T + 3600)  # started after T: T is not estimated
    assert due is None
    w2, due = w.see(T + 6, D(100), D("0.0001"), T)  # an older frame arriving late does not move it back
    assert due is None and w2 == w
