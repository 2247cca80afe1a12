"""Price paths made from the packaged recording, and the default markets they are scaled to."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

from posmon.sim.markets import DEFAULT_MARKETS, price_levels, rules_for
from posmon.sim.paths import candles_to_ticks, fan_out, load_candles, rescale


@pytest.fixture(scope="module")
def ticks() -> list[D]:
    return candles_to_ticks(load_candles())


def test_packaged_recording_loads_as_decimals() -> None:
    candles = load_candles("XRP_USDT_USDT-5m-futures.json")
    assert len(candles) == 1999
    assert candles[0] == (1636934400000, D("1.1893"), D("1.1954"), D("1.1891"), D("1.1941"))
    assert candles[-1][0] == 1637533800000
    assert load_candles("XRP_USDT_USDT-5m-futures") == candles
    for ts, open_, high, low, close in candles:
        assert isinstance(ts, int)
        assert all(isinstance(x, D) for x in (open_, high, low, close))
        assert low <= min(open_, close) <= max(open_, close) <= high
    timestamps = [c[0] for c in candles]
    assert timestamps == sorted(timestamps)


def test_unknown_recording_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        load_candles("no-such-recording.json")


def test_rising_candle_visits_low_then_high_and_falling_candle_high_then_low() -> None:
    rising = (0, D("1.0"), D("1.5"), D("0.8"), D("1.2"))
    falling = (1, D("1.2"), D("1.3"), D("0.9"), D("1.0"))
    assert candles_to_ticks([rising, falling]) == [
        D("1.0"), D("0.8"), D("1.5"), D("1.2"),
        D("1.2"), D("1.3"), D("0.9"), D("1.0"),
    ]  # fmt: skip


def test_recording_expands_to_four_ticks_per_candle(ticks: list[D]) -> None:
    assert len(ticks) == 4 * 1999
    assert ticks[:4] == [D("1.1893"), D("1.1891"), D("1.1954"), D("1.1941")]


@pytest.mark.parametrize(("base", "tick"), [(D(45000), D("0.1")), (D("0.2"), D("0.00001")), (D(100), D("0.5"))])
def test_rescale_starts_at_base_stays_on_tick_and_keeps_the_shape(ticks: list[D], base: D, tick: D) -> None:
    path = rescale(ticks, base, tick)
    assert len(path) == len(ticks)
    assert path[0] == base
    assert all(p % tick == 0 and p > 0 for p in path)
    # the recording's relative moves survive, within one tick of rounding
    for raw, scaled in zip(ticks[:500], path[:500], strict=True):
        assert abs(scaled - raw * base / ticks[0]) <= tick


def test_rescale_never_goes_to_zero_or_below() -> None:
    path = rescale([D(100), D(1), D("0.001")], D(1), D("0.1"))
    assert path == [D(1), D("0.1"), D("0.1")]
    assert rescale([], D(1), D("0.1")) == []
    with pytest.raises(ValueError):
        rescale([D(0), D(1)], D(1), D("0.1"))


def test_fan_out_is_deterministic_and_distinct_per_symbol(ticks: list[D]) -> None:
    symbols = price_levels(["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "DOGEUSDT", "BNBUSDT"])
    first = fan_out(ticks, symbols, seed=7)
    assert first == fan_out(ticks, dict(reversed(symbols.items())), seed=7)
    assert first != fan_out(ticks, symbols, seed=8)
    for symbol, (base, tick) in symbols.items():
        path = first[symbol]
        assert path[0] == base
        assert all(p % tick == 0 and p > 0 for p in path)
    # not in lockstep: the relative moves of any two symbols differ
    moves = {s: tuple((p[i + 1] / p[i]).quantize(D("0.001")) for i in range(200)) for s, p in first.items()}
    assert len(set(moves.values())) == len(moves)


def test_fan_out_gives_distinct_offsets_to_hundreds_of_symbols(ticks: list[D]) -> None:
    names = [f"SYM{i}USDT" for i in range(300)]
    paths = fan_out(ticks[:200], price_levels(names), seed=1)  # a short loop (398 ticks): collisions would be likely
    assert all(p[0] == D(100) for p in paths.values())
    assert len({tuple(p[:50]) for p in paths.values()}) == 300


def _jump(a: D, b: D) -> D:
    """Relative size of a move, the same up or down (the loop runs the recording backwards too)."""
    return max(a / b, b / a) - 1


def test_fan_out_loops_without_a_jump(ticks: list[D]) -> None:
    path = fan_out(ticks, {"X": (D(100), D("0.01"))}, seed=3)["X"]
    ring = [*path, path[0]]
    worst = max(_jump(a, b) for a, b in itertools.pairwise(ring))
    raw_worst = max(_jump(a, b) for a, b in itertools.pairwise(ticks))
    raw_wrap = _jump(ticks[-1], ticks[0])
    assert raw_wrap > D("0.09")  # replaying the raw recording in a loop would gap ~10% at the wrap
    assert worst <= raw_worst + D("0.0005")  # the fanned-out loop never moves more than the recording did


def test_default_markets_and_made_up_rules() -> None:
    rules = rules_for(["BTCUSDT", "DOGEUSDT", "ZZZUSDT"])
    assert (rules["BTCUSDT"].tick_size, rules["BTCUSDT"].step_size, rules["BTCUSDT"].min_notional) == (
        D("0.1"),
        D("0.001"),
        D(5),
    )
    assert (rules["DOGEUSDT"].tick_size, rules["DOGEUSDT"].step_size) == (D("0.00001"), D(1))
    assert (rules["ZZZUSDT"].symbol, rules["ZZZUSDT"].tick_size, rules["ZZZUSDT"].step_size) == (
        "ZZZUSDT",
        D("0.01"),
        D("0.001"),
    )
    assert rules_for(["ZZZUSDT"]) == {"ZZZUSDT": rules["ZZZUSDT"]}
    assert price_levels(["XRPUSDT", "ZZZUSDT"]) == {"XRPUSDT": (D("1.0"), D("0.0001")), "ZZZUSDT": (D(100), D("0.01"))}
    assert set(DEFAULT_MARKETS) == {"BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "DOGEUSDT", "BNBUSDT"}
    for market in DEFAULT_MARKETS.values():
        assert market.base_price % market.rules.tick_size == 0
        assert market.rules.min_qty * market.base_price > 0
