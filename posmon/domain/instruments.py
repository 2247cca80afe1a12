"""Instruments: one contract named the same way on every venue, ccxt's unified ``BASE/QUOTE:SETTLE``.

Aster lists ``BTCUSDT``, Lighter ``BTC``; a hedge holds the same base quantity on both, so posmon must know that
the two are the same asset. Each venue's own market list says what a symbol is (``SymbolRules``' assets: Aster's
exchangeInfo publishes baseAsset, quoteAsset and marginAsset; a Lighter perpetual is named by its base and priced
and settled in USDC, so Lighter's ``BTC`` is ``BTC/USDC:USDC`` as ccxt names it). A symbol listed without its
assets is split on a known quote suffix (``XRPUSDT`` -> ``XRP/USDT:USDT``, settled in its quote); one that does not
split has no unified name and is asked for by its own symbol.

``[instruments]`` overrides correct or align what the lists say: a bare key renames a base on every venue
(``"kPEPE" = "1000PEPE"``), a ``[instruments.<venue>]`` table names one symbol (``"1000PEPEUSDT" =
"1000PEPE/USDT:USDT"``, or just its base: ``"1000PEPEUSDT" = "1000PEPE"``). A rename says the two symbols trade
the **same unit** of the asset: pairs are sized in the same base quantity and no contract multiplier is applied,
so ``1000PEPE`` must never be renamed ``PEPE``.

Across venues instruments pair by base (``counterpart``): the symbol on the other venue with the same unified
name, else the only one with the same base (Aster ``BTCUSDT`` <-> Lighter ``BTC``). Names compare without case
(the API upper-cases what it is sent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from posmon.domain.orders import SymbolRules

__all__ = [
    "NO_OVERRIDES",
    "QUOTE_SUFFIXES",
    "Instrument",
    "InstrumentError",
    "InstrumentOverrides",
    "InstrumentTable",
    "Listing",
    "is_unified",
    "listed_instrument",
    "parse_overrides",
    "split_symbol",
]

# Quote assets a symbol published without its assets may end in, longest first (FDUSD before USD).
QUOTE_SUFFIXES = ("FDUSD", "USDT", "USDC", "BUSD", "USD")
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}"
_PART_RE = re.compile(_PART)
_NAME_RE = re.compile(rf"({_PART})/({_PART}):({_PART})")
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
EXAMPLE = "'BTC/USDT:USDT'"


class InstrumentError(ValueError):
    """An unknown or ambiguous name, or a bad ``[instruments]`` entry; the message is one line that names it."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """A perpetual contract: the base asset traded, the asset it is quoted in and the one it settles in."""

    base: str
    quote: str
    settle: str

    @property
    def name(self) -> str:
        """The unified name, e.g. ``BTC/USDT:USDT``."""
        return f"{self.base}/{self.quote}:{self.settle}"

    @property
    def key(self) -> str:
        """The name as compared (case-insensitively)."""
        return self.name.upper()

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> Instrument:
        """``BASE/QUOTE:SETTLE``; a spot-style ``BTC/USDT`` (no settle asset) is refused: posmon trades perpetuals."""
        match = _NAME_RE.fullmatch(text)
        if match is None:
            raise InstrumentError(
                f"{text!r} is not a unified instrument name; expected BASE/QUOTE:SETTLE such as {EXAMPLE}"
            )
        return cls(*match.groups())


def is_unified(text: str) -> bool:
    """Whether ``text`` is meant as a unified name (no venue symbol holds a ``/``)."""
    return "/" in text


def split_symbol(symbol: str) -> tuple[str, str] | None:
    """(base, quote) of a base+quote symbol such as ``BTCUSDT``, by its quote suffix; None when none fits."""
    upper = symbol.upper()
    for quote in QUOTE_SUFFIXES:
        base = symbol[: -len(quote)]
        if upper.endswith(quote) and base and _PART_RE.fullmatch(base):
            return base, symbol[-len(quote) :]
    return None


def listed_instrument(rules: SymbolRules) -> Instrument | None:
    """What the venue's market list says ``rules.symbol`` is: its published assets, else its split symbol."""
    base, quote = rules.base_asset, rules.quote_asset
    if not (base and quote):
        split = split_symbol(rules.symbol)
        if split is None:
            return None
        base, quote = split
    return Instrument(base, quote, rules.settle_asset or quote)


# ---- overrides ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstrumentOverrides:
    """``[instruments]``: base renames on every venue, and per venue a symbol's unified name (or just its base)."""

    bases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    symbols: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))

    def apply(self, venue: str, symbol: str, listed: Instrument | None) -> Instrument | None:
        """``symbol``'s instrument once the overrides are applied (None: it has no unified name)."""
        named = self.symbols.get(venue, {}).get(symbol)
        if named is not None:
            if is_unified(named):
                return Instrument.parse(named)
            return replace(listed, base=named) if listed is not None else None
        if listed is not None and listed.base in self.bases:
            return replace(listed, base=self.bases[listed.base])
        return listed


NO_OVERRIDES = InstrumentOverrides()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_overrides(raw: Any, venues: Sequence[str], where: str = "instruments") -> InstrumentOverrides:
    """The ``[instruments]`` table, validated; raises ``InstrumentError`` naming the first bad entry."""
    if not isinstance(raw, dict):
        raise InstrumentError(f"{where}: invalid value {_shown(raw)}; expected a table ([{where}])")
    bases: dict[str, str] = {}
    symbols: dict[str, Mapping[str, str]] = {}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if isinstance(value, dict):
            if key not in venues:
                listed = ", ".join(repr(v) for v in venues)
                raise InstrumentError(f"{at}: unknown venue table; expected [{where}.<venue>] with a venue of {listed}")
            symbols[key] = MappingProxyType({s: _venue_entry(f"{at}.{s}", s, n) for s, n in value.items()})
        elif isinstance(value, str):
            if not _PART_RE.fullmatch(key) or not _PART_RE.fullmatch(value):
                raise InstrumentError(
                    f"{at}: invalid value {_shown(value)}; a base rename maps one base to another, such as "
                    f"\"kPEPE\" = \"1000PEPE\" (letters, digits, '.', '_' or '-'; names go in [{where}.<venue>])"
                )
            bases[key] = value
        else:
            raise InstrumentError(
                f'{at}: invalid value {_shown(value)}; expected a base rename ("kPEPE" = "1000PEPE") or a '
                f"[{at}] table of symbol = unified name"
            )
    return InstrumentOverrides(MappingProxyType(bases), MappingProxyType(symbols))


def _venue_entry(at: str, symbol: str, named: Any) -> str:
    if not _SYMBOL_RE.fullmatch(symbol):
        raise InstrumentError(f"{at}: {symbol!r} is not a venue symbol (letters, digits, '.', '_' or '-')")
    if not isinstance(named, str) or not (_NAME_RE.fullmatch(named) or _PART_RE.fullmatch(named)):
        raise InstrumentError(
            f"{at}: invalid value {_shown(named)}; expected a unified name BASE/QUOTE:SETTLE such as {EXAMPLE}, "
            "or a base such as 'BTC'"
        )
    return named


# ---- the table ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One venue symbol and the instrument it is."""

    venue: str
    symbol: str
    instrument: Instrument


class InstrumentTable:
    """Every listed symbol's instrument on every venue, and the lookups between them.

    ``problems``: what building it found worth a log line (an override of a symbol not listed, one unified name
    given to two symbols of a venue); nothing there stops trading: an ambiguous name is refused when asked for.
    """

    def __init__(self, listings: Iterable[Listing], problems: Sequence[str] = ()) -> None:
        self._by_symbol: dict[tuple[str, str], Instrument] = {}
        self._by_name: dict[tuple[str, str], list[str]] = {}
        self._by_base: dict[tuple[str, str], list[Listing]] = {}
        for item in listings:
            self._by_symbol[item.venue, item.symbol] = item.instrument
            self._by_name.setdefault((item.venue, item.instrument.key), []).append(item.symbol)
            self._by_base.setdefault((item.venue, item.instrument.base.upper()), []).append(item)
        self.problems = (*problems, *self._ambiguities())

    @classmethod
    def build(
        cls, markets: Mapping[str, Mapping[str, SymbolRules]], overrides: InstrumentOverrides = NO_OVERRIDES
    ) -> InstrumentTable:
        """From each venue's rules (venue name -> symbol -> rules), with the configured overrides."""
        listings: list[Listing] = []
        problems: list[str] = []
        for venue, rules in markets.items():
            for symbol in sorted(set(overrides.symbols.get(venue, {})) - set(rules)):
                problems.append(f"instruments.{venue}.{symbol}: {venue} does not list {symbol}; the override is unused")
            for symbol in sorted(rules):
                listed = listed_instrument(rules[symbol])
                instrument = overrides.apply(venue, symbol, listed)
                if instrument is None:
                    if symbol in overrides.symbols.get(venue, {}):
                        problems.append(
                            f"instruments.{venue}.{symbol}: {venue} publishes no quote asset for {symbol}; give the "
                            f"whole unified name (BASE/QUOTE:SETTLE such as {EXAMPLE})"
                        )
                    continue
                listings.append(Listing(venue, symbol, instrument))
        return cls(listings, problems)

    def _ambiguities(self) -> list[str]:
        return [
            f"{venue}: {len(symbols)} symbols are {self._by_symbol[venue, symbols[0]].name} "
            f"({', '.join(symbols)}); ask for them by their {venue} symbol, or rename one in [instruments.{venue}]"
            for (venue, _), symbols in sorted(self._by_name.items())
            if len(symbols) > 1
        ]

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """What ``symbol`` on ``venue`` is; None when it is not listed or has no unified name."""
        return self._by_symbol.get((venue, symbol))

    def name(self, venue: str, symbol: str) -> str | None:
        """``symbol``'s unified name on ``venue`` (None: none)."""
        found = self._by_symbol.get((venue, symbol))
        return found.name if found is not None else None

    def symbol(self, venue: str, name: str) -> str:
        """``venue``'s symbol for the unified ``name``; ``InstrumentError`` when it lists none or several."""
        wanted = Instrument.parse(name)
        symbols = self._by_name.get((venue, wanted.key), [])
        if len(symbols) == 1:
            return symbols[0]
        if symbols:
            raise InstrumentError(
                f"{name} is ambiguous on {venue}: it names {', '.join(symbols)}; give the {venue} symbol"
            )
        same_base = sorted(item.instrument.name for item in self._by_base.get((venue, wanted.base.upper()), []))
        hint = f"; {venue} lists {wanted.base} as {', '.join(same_base)}" if same_base else ""
        raise InstrumentError(f"{venue} lists no {name}{hint}")

    def counterpart(self, venue: str, symbol: str, other: str) -> str:
        """The symbol on ``other`` of the asset ``symbol`` is on ``venue`` (a hedge's other leg): the same unified
        name if ``other`` lists it, else the only symbol with the same base; ``InstrumentError`` otherwise."""
        instrument = self._by_symbol.get((venue, symbol))
        if instrument is None:
            raise InstrumentError(f"{venue} {symbol} has no unified name (not listed, or its assets are unknown)")
        same = self._by_name.get((other, instrument.key), [])
        if len(same) == 1:
            return same[0]
        candidates = sorted({item.symbol for item in self._by_base.get((other, instrument.base.upper()), [])})
        if len(candidates) == 1 and not same:
            return candidates[0]
        if not candidates:
            raise InstrumentError(f"{other} lists no {instrument.base} (the base of {venue} {symbol}, {instrument})")
        raise InstrumentError(
            f"{other} lists {instrument.base} as several symbols ({', '.join(candidates)}); "
            f"name the {other} symbol for {venue} {symbol}"
        )
