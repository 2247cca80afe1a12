"""Rounding prices to the tick and quantities to the step: on the grid, and never in the unsafe direction."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posmon.domain.rounding import quantize_qty, round_down, round_toward, round_up

# Increments as venues publish them: 1, 2, 5 or 25 times a power of ten.
increments = st.builds(
    lambda mantissa, exp: D(mantissa).scaleb(exp),
    st.sampled_from([1, 2, 5, 25]),
    st.integers(min_value=-8, max_value=2),
)
# Non-negative values with up to 8 decimals and at most ~20 significant digits (prices and quantities).
values = st.builds(
    lambda units, exp: D(units).scaleb(-exp),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=8),
)

PROPS = settings(max_examples=200, deadline=None, derandomize=True)


def on_grid(x: D, increment: D) -> bool:
    return x % increment == 0


# --- unit cases ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "increment", "down", "up"),
    [
        ("45450", "0.1", "45450.0", "45450.0"),
        ("45298.55", "0.1", "45298.5", "45298.6"),
        ("22424.99", "0.1", "22424.9", "22425.0"),
        ("0.12345", "0.001", "0.123", "0.124"),
        ("101.3737", "0.25", "101.25", "101.50"),
        ("7", "5", "5", "10"),
        ("1234", "1E+1", "1.23E+3", "1.24E+3"),
        ("0", "0.01", "0.00", "0.00"),
    ],
)
def test_round_down_and_up_known_values(value, increment, down, up):
    assert str(round_down(D(value), D(increment))) == down
    assert str(round_up(D(value), D(increment))) == up


def test_value_on_the_grid_is_unchanged_by_either_direction():
    assert round_down(D("42723"), D("0.1")) == D("42723")
    assert round_up(D("42723"), D("0.1")) == D("42723")
    assert round_toward(D("42723"), D("0.1"), D("0")) == D("42723")
    assert round_toward(D("42723"), D("0.1"), D("99999")) == D("42723")


def test_round_toward_rounds_down_when_target_is_below_and_up_when_above():
    # A LONG take-profit (above the entry) rounds down toward the entry; its stop-loss rounds up toward it.
    assert round_toward(D("45298.55"), D("0.1"), target=D("44850")) == D("45298.5")
    assert round_toward(D("22424.99"), D("0.1"), target=D("44850")) == D("22425.0")
    # A SHORT mirrors it: TP below the entry rounds up, SL above it rounds down.
    assert round_toward(D("44401.51"), D("0.1"), target=D("44850")) == D("44401.6")
    assert round_toward(D("67274.99"), D("0.1"), target=D("44850")) == D("67274.9")


def test_quantities_always_round_down():
    assert quantize_qty(D("0.1499"), D("0.001")) == D("0.149")
    assert quantize_qty(D("0.0009"), D("0.001")) == D("0")
    assert str(quantize_qty(D("3"), D("0.001"))) == "3.000"


def test_round_down_never_exceeds_a_full_precision_value():
    # 28 significant digits, as average_entry/exit_prices produce; 2.999.../0.25 needs 29 digits.
    value = D("2.999999999999999999999999999")
    assert round_down(value, D("0.25")) <= value
    assert round_down(value, D("0.25")) == D("2.75")


# --- properties ----------------------------------------------------------------------------------------------


@PROPS
@given(values, increments)
def test_results_are_on_the_grid_with_the_increments_exponent(value, increment):
    for result in (round_down(value, increment), round_up(value, increment), quantize_qty(value, increment)):
        assert on_grid(result, increment)
        assert result.as_tuple().exponent == increment.as_tuple().exponent


@PROPS
@given(values, increments, values)
def test_round_toward_is_on_the_grid_with_the_increments_exponent(value, increment, target):
    result = round_toward(value, increment, target)
    assert on_grid(result, increment)
    assert result.as_tuple().exponent == increment.as_tuple().exponent


@PROPS
@given(values, increments)
def test_round_down_and_up_bracket_the_value_within_one_increment(value, increment):
    down, up = round_down(value, increment), round_up(value, increment)
    assert down <= value <= up
    assert value - down < increment
    assert up - value < increment
    # Exactly one grid line apart unless the value is on the grid.
    assert up - down == (0 if on_grid(value, increment) else increment)


@PROPS
@given(values, increments)
def test_quantities_round_down_never_to_more_than_held(qty, step):
    q = quantize_qty(qty, step)
    assert q == round_down(qty, step)
    assert 0 <= q <= qty
    assert qty - q < step


@PROPS
@given(values, increments, values)
def test_round_toward_never_moves_away_from_the_target(value, increment, target):
    result = round_toward(value, increment, target)
    # It moves (if at all) toward the target's side, by less than one increment.
    assert (result - value) * (target - value) >= 0 or result == value
    assert abs(result - value) < increment
    if target < value:
        assert result <= value
    elif target > value:
        assert result >= value


@PROPS
@given(values, increments, values)
def test_round_toward_an_on_grid_target_never_crosses_it(value, increment, target_units):
    # For a target on the grid (a tick-aligned price) the result lies between value and target:
    # |result - target| <= |value - target|, i.e. rounding never crosses the tick in the unsafe direction.
    target = round_down(target_units, increment)
    result = round_toward(value, increment, target)
    assert abs(result - target) <= abs(value - target)
    assert min(value, target) <= result <= max(value, target)


def test_round_toward_cannot_stay_closer_to_an_off_grid_target_inside_the_same_tick():
    # With value and target inside one grid cell, every grid line is further from the target than the value:
    # the |result - target| <= |value - target| form only holds for on-grid targets (see the property above).
    # round_toward then crosses the target (see test_domain_tranche's TP-below-entry case).
    value, target = D("100.04"), D("100.05")
    result = round_toward(value, D("0.1"), target)
    assert result == D("100.1")
    assert abs(result - target) > abs(value - target)
