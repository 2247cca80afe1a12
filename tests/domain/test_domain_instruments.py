"""Unified instrument names: what a venue's list says a symbol is, the [instruments] overrides, the lookups and
their refusals (one line naming what was asked)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posmon.config import ConfigError, load_settings
from posmon.domain.instruments import (
    Instrument,
    InstrumentError,
    InstrumentTable,
    listed_instrument,
    parse_overrides,
    split_symbol,
)
from posmon.domain.orders import SymbolRules

VENUES = ("sim", "aster", "lighter")


def rules(symbol: str, base: str = "", quote: str = "", settle: str = "") -> SymbolRules:
    return SymbolRules(
        symbol, Decimal("0.1"), Decimal("0.001"), base_asset=base, quote_asset=quote, settle_asset=settle
    )


def table(overrides: dict | None = None, **venues: list[SymbolRules]) -> InstrumentTable:
    markets = {venue: {r.symbol: r for r in listed} for venue, listed in venues.items()}
    return InstrumentTable.build(markets, parse_overrides(overrides or {}, VENUES))


# ---- what a listing says --------------------------------------------------------------------------------------


def test_published_assets_name_the_symbol_not_its_spelling():
    # A symbol whose name does not split (a venue's own spelling) is named by what the list publishes.
    assert listed_instrument(rules("BTCPERP", "BTC", "USDT", "USDT")) == Instrument("BTC", "USDT", "USDT")
    assert listed_instrument(rules("BTC", "BTC", "USDC", "USDC")).name == "BTC/USDC:USDC"
    assert listed_instrument(rules("BTCUSDT", "BTC", "USDT", "")).name == "BTC/USDT:USDT"  # settles in its quote


def test_a_symbol_listed_without_assets_is_split_on_its_quote_suffix():
    assert listed_instrument(rules("XRPUSDT")).name == "XRP/USDT:USDT"
    assert split_symbol("ETHFDUSD") == ("ETH", "FDUSD")  # not ETHFD + USD
    assert split_symbol("1000PEPEUSDC") == ("1000PEPE", "USDC")
    assert split_symbol("BTC") is None and split_symbol("USDT") is None  # no base, or no quote: no name
    assert listed_instrument(rules("BTC")) is None


@given(
    st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True),
    st.sampled_from(["USDT", "USDC", "USD"]),
    st.sampled_from(["USDT", "USDC"]),
)
def test_a_unified_name_reads_back_as_the_same_instrument(base, quote, settle):
    instrument = Instrument(base, quote, settle)
    assert Instrument.parse(instrument.name) == instrument


@pytest.mark.parametrize("text", ["BTC/USDT", "BTCUSDT", "BTC/USDT:", "/USDT:USDT", "BTC/US DT:USDT", "A/B:C:D"])
def test_a_name_that_is_not_base_quote_settle_is_refused_showing_the_form(text):
    with pytest.raises(InstrumentError, match=r"expected BASE/QUOTE:SETTLE such as 'BTC/USDT:USDT'"):
        Instrument.parse(text)


# ---- lookups -----------------------------------------------------------------------------------------------------

ASTER = [rules("BTCUSDT", "BTC", "USDT", "USDT"), rules("ETHUSDT", "ETH", "USDT", "USDT"), rules("XRPUSDT")]
LIGHTER = [rules("BTC", "BTC", "USDC", "USDC"), rules("ETH", "ETH", "USDC", "USDC")]


def test_unified_name_and_venue_symbol_map_both_ways_and_case_does_not_matter():
    t = table(aster=ASTER, lighter=LIGHTER)
    assert t.symbol("aster", "BTC/USDT:USDT") == "BTCUSDT"
    assert t.symbol("aster", "xrp/usdt:usdt") == "XRPUSDT"
    assert t.symbol("lighter", "ETH/USDC:USDC") == "ETH"
    assert t.name("aster", "ETHUSDT") == "ETH/USDT:USDT" and t.name("lighter", "BTC") == "BTC/USDC:USDC"
    assert t.name("aster", "NOPEUSDT") is None
    assert t.problems == ()


def test_an_unknown_name_is_refused_naming_it_and_how_the_venue_lists_that_base():
    t = table(aster=ASTER, lighter=LIGHTER)
    with pytest.raises(InstrumentError) as refused:
        t.symbol("lighter", "BTC/USDT:USDT")
    assert str(refused.value) == "lighter lists no BTC/USDT:USDT; lighter lists BTC as BTC/USDC:USDC"
    with pytest.raises(InstrumentError, match=r"^aster lists no DOGE/USDT:USDT$"):
        t.symbol("aster", "DOGE/USDT:USDT")


def test_the_same_base_on_the_other_venue_is_the_hedge_counterpart():
    t = table(aster=ASTER, lighter=LIGHTER)
    assert t.counterpart("aster", "BTCUSDT", "lighter") == "BTC"
    assert t.counterpart("lighter", "ETH", "aster") == "ETHUSDT"
    with pytest.raises(InstrumentError, match=r"^lighter lists no XRP \(the base of aster XRPUSDT, XRP/USDT:USDT\)$"):
        t.counterpart("aster", "XRPUSDT", "lighter")
    with pytest.raises(InstrumentError, match="aster NOPE has no unified name"):
        t.counterpart("aster", "NOPE", "lighter")


def test_a_counterpart_prefers_the_same_name_and_refuses_to_guess_between_several():
    both = [*ASTER, rules("BTCUSDC", "BTC", "USDC", "USDC"), rules("ETHUSDC", "ETH", "USDC", "USDC")]
    t = table(aster=both, lighter=LIGHTER)
    assert t.counterpart("lighter", "BTC", "aster") == "BTCUSDC"  # BTC/USDC:USDC is listed on both
    assert t.counterpart("aster", "BTCUSDT", "lighter") == "BTC"
    usdt_only = table(aster=[*ASTER, rules("BTCUSD", "BTC", "USD", "USD")], lighter=LIGHTER)
    with pytest.raises(InstrumentError, match=r"aster lists BTC as several symbols \(BTCUSD, BTCUSDT\)"):
        usdt_only.counterpart("lighter", "BTC", "aster")


def test_two_symbols_with_one_name_are_reported_and_the_name_is_refused_not_guessed():
    t = table(aster=[rules("BTCUSDT", "BTC", "USDT", "USDT"), rules("BTCUSDT2", "BTC", "USDT", "USDT")])
    assert t.problems == (
        "aster: 2 symbols are BTC/USDT:USDT (BTCUSDT, BTCUSDT2); ask for them by their aster symbol, or rename one "
        "in [instruments.aster]",
    )
    with pytest.raises(InstrumentError, match=r"^BTC/USDT:USDT is ambiguous on aster: it names BTCUSDT, BTCUSDT2"):
        t.symbol("aster", "BTC/USDT:USDT")
    assert t.name("aster", "BTCUSDT2") == "BTC/USDT:USDT"  # each symbol still knows what it is


# ---- overrides ---------------------------------------------------------------------------------------------------


def test_a_base_rename_applies_on_every_venue_and_pairs_the_renamed_symbols():
    t = table(
        {"kPEPE": "1000PEPE"},
        aster=[rules("1000PEPEUSDT", "1000PEPE", "USDT", "USDT")],
        lighter=[rules("kPEPE", "kPEPE", "USDC", "USDC")],
    )
    assert t.name("lighter", "kPEPE") == "1000PEPE/USDC:USDC"
    assert t.counterpart("aster", "1000PEPEUSDT", "lighter") == "kPEPE"
    assert t.counterpart("lighter", "kPEPE", "aster") == "1000PEPEUSDT"


def test_a_venue_override_names_one_symbol_by_a_whole_name_or_just_its_base():
    t = table(
        {"aster": {"PEPE1000USDT": "1000PEPE/USDT:USDT", "WBTCUSDT": "BTC"}, "lighter": {"BTC": "XBT"}},
        aster=[rules("PEPE1000USDT"), rules("WBTCUSDT", "WBTC", "USDT", "USDT")],
        lighter=[rules("BTC", "BTC", "USDC", "USDC")],
    )
    assert t.symbol("aster", "1000PEPE/USDT:USDT") == "PEPE1000USDT"
    assert t.name("aster", "WBTCUSDT") == "BTC/USDT:USDT"  # the base replaced, quote and settle as listed
    assert t.name("lighter", "BTC") == "XBT/USDC:USDC"  # a venue override beats what the list says
    assert t.problems == ()


def test_an_override_that_cannot_apply_is_reported_naming_its_entry():
    t = table({"aster": {"GONEUSDT": "GONE/USDT:USDT"}, "lighter": {"ODD": "ODD"}}, aster=ASTER, lighter=[rules("ODD")])
    assert t.problems == (
        "instruments.aster.GONEUSDT: aster does not list GONEUSDT; the override is unused",
        "instruments.lighter.ODD: lighter publishes no quote asset for ODD; give the whole unified name "
        "(BASE/QUOTE:SETTLE such as 'BTC/USDT:USDT')",
    )
    assert t.name("lighter", "ODD") is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[instruments]\nkPEPE = 7\n", "instruments.kPEPE: invalid value 7; expected a base rename"),
        ('[instruments]\nkPEPE = "1000PEPE/USDT:USDT"\n', "instruments.kPEPE: invalid value '1000PEPE/USDT:USDT'"),
        ('[instruments.binance]\nBTCUSDT = "BTC"\n', "instruments.binance: unknown venue table"),
        ('[instruments.aster]\nBTCUSDT = "BTC/USDT"\n', "instruments.aster.BTCUSDT: invalid value 'BTC/USDT'"),
        ('[instruments.aster]\n"BTC USDT" = "BTC"\n', "instruments.aster.BTC USDT: 'BTC USDT' is not a venue symbol"),
        ('[instruments.lighter]\nBTC = ["BTC"]\n', "instruments.lighter.BTC: invalid value ['BTC']"),
        ("instruments = 3\n", "instruments: invalid value 3; expected a table"),
    ],
)
def test_a_bad_instruments_entry_stops_the_config_naming_it(tmp_path, toml, message):
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env={})
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_instruments_section_is_read_into_the_settings(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[instruments]\nkPEPE = "1000PEPE"\n\n[instruments.aster]\n"1000PEPEUSDT" = "1000PEPE"\n')
    settings = load_settings(path, env={})
    assert dict(settings.instruments.bases) == {"kPEPE": "1000PEPE"}
    assert dict(settings.instruments.symbols["aster"]) == {"1000PEPEUSDT": "1000PEPE"}
