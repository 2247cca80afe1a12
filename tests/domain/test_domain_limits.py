"""The risk limits' pure check: each limit, 0 turning it off, the per-symbol override, the first breach named."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from posmon.actors.risk_guard import RiskGuard
from posmon.config import load_settings
from posmon.domain.limits import Breach, Entry, Exposure, Limits, check_entry, exposure_of, loss_at_sl
from posmon.domain.orders import Side
from tests.harness import make_settings

LONG, SHORT = Side.LONG, Side.SHORT
BOOK = {
    ("BTCUSDT", LONG): Exposure(D(3000), D(90)),
    ("BTCUSDT", SHORT): Exposure(D(1000), D(30)),
    ("ETHUSDT", LONG): Exposure(D(2000), D(60)),
}


def entry(symbol: str = "XRPUSDT", side: Side = LONG, notional: str = "500", loss: str = "15") -> Entry:
    return Entry(symbol, side, D(notional), D(loss))


def test_no_limit_set_passes_anything() -> None:
    assert check_entry(Limits(), BOOK, D(1), entry(notional="1e9", loss="1e9")) is None
    assert not Limits().any


def test_max_open_positions_refuses_a_new_key_beyond_it_but_not_growth_of_a_held_one() -> None:
    limits = Limits(max_open_positions=3)
    assert check_entry(limits, BOOK, None, entry()) == Breach("max_open_positions", D(3), D(4))
    assert check_entry(limits, BOOK, None, entry("BTCUSDT", SHORT)) is None  # held already: no new position
    assert check_entry(Limits(max_open_positions=4), BOOK, None, entry()) is None


def test_max_notional_per_symbol_counts_both_sides_of_the_symbol() -> None:
    limits = Limits(max_notional_per_symbol=D(4500))
    breach = check_entry(limits, BOOK, None, entry("BTCUSDT", LONG, notional="600"))
    assert breach == Breach("max_notional_per_symbol", D(4500), D(4600))
    assert breach.text == "max_notional_per_symbol is 4500 USD; this would make it 4600 USD"
    assert check_entry(limits, BOOK, None, entry("BTCUSDT", LONG, notional="500")) is None  # exactly at it: allowed
    assert check_entry(limits, BOOK, None, entry("ETHUSDT", LONG, notional="2500")) is None


def test_max_risk_per_position_pct_adds_the_entry_to_its_own_position_only() -> None:
    limits = Limits(max_risk_per_position_pct=D(1))
    # BTC LONG already loses 90 at its SLs; +15 = 105 of 10,000 = 1.05 %.
    breach = check_entry(limits, BOOK, D(10_000), entry("BTCUSDT", LONG, loss="15"))
    assert breach == Breach("max_risk_per_position_pct", D(1), D("1.05"))
    assert breach.text == "max_risk_per_position_pct is 1 %; this would make it 1.05 %"
    assert check_entry(limits, BOOK, D(10_000), entry("BTCUSDT", LONG, loss="10")) is None  # 1.00 %: at it
    assert check_entry(limits, BOOK, D(10_000), entry("BTCUSDT", SHORT, loss="60")) is None  # its own 30 + 60


def test_max_risk_per_position_pct_with_no_balance_is_not_judged_and_with_none_left_always_breaks() -> None:
    limits = Limits(max_risk_per_position_pct=D(1))
    assert check_entry(limits, BOOK, None, entry(loss="1000")) is None  # the caller decides what unknown means
    breach = check_entry(limits, BOOK, D(0), entry(loss="0.01"))
    assert breach is not None and breach.name == "max_risk_per_position_pct" and "balance is 0" in breach.text


def test_the_first_limit_broken_is_named_in_a_fixed_order() -> None:
    limits = Limits(max_open_positions=1, max_notional_per_symbol=D(1), max_risk_per_position_pct=D("0.01"))
    assert check_entry(limits, BOOK, D(100), entry()).name == "max_open_positions"
    assert check_entry(limits, BOOK, D(100), entry("BTCUSDT", LONG)).name == "max_notional_per_symbol"
    no_notional = Limits(max_risk_per_position_pct=D("0.01"), max_notional_per_symbol=D(10**6))
    assert check_entry(no_notional, BOOK, D(100), entry("BTCUSDT", LONG)).name == "max_risk_per_position_pct"


def test_an_entry_that_adds_nothing_passes_even_over_a_limit() -> None:
    limits = Limits(max_notional_per_symbol=D(1), max_risk_per_position_pct=D("0.001"))
    assert check_entry(limits, BOOK, D(100), entry("BTCUSDT", LONG, notional="0", loss="0")) is None


@pytest.mark.parametrize(
    ("side", "entry_price", "sl", "loss"),
    [(LONG, "100", "97", "6"), (SHORT, "100", "103", "6"), (LONG, "100", "101", "0"), (SHORT, "100", "99", "0")],
)
def test_loss_at_sl_is_the_distance_to_the_stop_and_never_negative(side, entry_price, sl, loss) -> None:
    assert loss_at_sl(side, D(entry_price), D(sl), D(2)) == D(loss)


def test_exposure_sums_the_tranches_at_their_entries() -> None:
    assert exposure_of(LONG, [(D(1), D(100), D(90)), (D(2), D(80), D(78))]) == Exposure(D(260), D(14))


def test_a_per_symbol_override_of_max_notional_applies_to_that_symbol_only(tmp_path) -> None:
    make_settings(tmp_path, max_notional_per_symbol=5000)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text() + "\n[risk.symbols.BTCUSDT]\nmax_notional_per_symbol = 100\n")
    guard = RiskGuard(load_settings(path, env={}), None, reply_timeout=1.0)  # type: ignore[arg-type]  # no balance
    assert guard.limits("BTCUSDT").max_notional_per_symbol == D(100)
    assert guard.limits("ETHUSDT").max_notional_per_symbol == D(5000)
    assert guard.check(entry("BTCUSDT", notional="101"), None) == Breach("max_notional_per_symbol", D(100), D(101))
    assert guard.check(entry("ETHUSDT", notional="101"), None) is None
