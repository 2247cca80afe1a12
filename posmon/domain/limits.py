"""The risk limits: whether one more entry keeps the account inside them (a pure check, Decimal only).

Three limits, each off at 0: how many (symbol, side) positions may be open at once (account-wide), the notional
of one symbol's positions (both sides), and the loss at the stop-loss of one (symbol, side) position as a share
of the account's balance. The same check serves an operator's entry before it is sent (refused when it breaks a
limit) and a fill from another program after it happened (noticed, optionally closed): the caller describes
the account as it was before the entry and the entry itself.

Notional is quantity x entry price (what was put in, not what the mark says now): a limit that held at the
entry does not start "breaking" as prices move, which no entry could have prevented. Loss at the SL is what
the position loses from its entries to its stop-losses (never below 0: a stop moved past the entry risks
nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from posmon.domain.orders import Side

__all__ = [
    "Breach",
    "Entry",
    "Exposure",
    "Limits",
    "check_entry",
    "exposure_of",
    "loss_at_sl",
]

ZERO = Decimal(0)
HUNDRED = Decimal(100)

Key = tuple[str, Side]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits an entry into ``symbol`` is checked against (0: that limit is off).

    ``max_notional_per_symbol`` and ``max_risk_per_position_pct`` are the entry's symbol's (``[risk.symbols.X]``
    may override them); ``max_open_positions`` is the account's.
    """

    max_open_positions: int = 0
    max_notional_per_symbol: Decimal = ZERO
    max_risk_per_position_pct: Decimal = ZERO

    @property
    def any(self) -> bool:
        return bool(self.max_open_positions or self.max_notional_per_symbol or self.max_risk_per_position_pct)


@dataclass(frozen=True, slots=True)
class Exposure:
    """One open (symbol, side) position: its notional at entry and its loss if every stop-loss fills."""

    notional: Decimal
    loss_at_sl: Decimal


@dataclass(frozen=True, slots=True)
class Entry:
    """A proposed entry (or a fill that happened): its key, its notional, and the loss at the SL it adds."""

    symbol: str
    side: Side
    notional: Decimal
    loss_at_sl: Decimal


@dataclass(frozen=True, slots=True)
class Breach:
    """The first limit an entry breaks: the limit's key name, its value, and what the entry would make it."""

    name: str  # "max_open_positions", "max_notional_per_symbol", "max_risk_per_position_pct"
    limit: Decimal
    value: Decimal

    @property
    def text(self) -> str:
        """``max_notional_per_symbol is 5000 USD; this would make it 7250 USD``: for a person, one line."""
        unit = {"max_notional_per_symbol": " USD", "max_risk_per_position_pct": " %"}.get(self.name, "")
        if not self.value.is_finite():
            return f"{self.name} is {_plain(self.limit)}{unit}; the balance is 0: any loss at the SL breaks it"
        return f"{self.name} is {_plain(self.limit)}{unit}; this would make it {_plain(self.value)}{unit}"


def _plain(d: Decimal) -> str:
    """A figure for people: at most 4 decimals (a percent of a balance has many), no exponent."""
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        d = d.quantize(Decimal("0.0001"))
    return format(d.normalize(), "f")


def loss_at_sl(side: Side, entry: Decimal, sl: Decimal, qty: Decimal) -> Decimal:
    """What ``qty`` bought at ``entry`` loses when its stop fills at ``sl`` (0 when the stop is past the entry)."""
    loss = (entry - sl) * qty if side is Side.LONG else (sl - entry) * qty
    return max(loss, ZERO)


def exposure_of(side: Side, tranches: Iterable[tuple[Decimal, Decimal, Decimal]]) -> Exposure:
    """A position's exposure from its tranches' (qty, entry, sl)."""
    notional = loss = ZERO
    for qty, entry, sl in tranches:
        notional += qty * entry
        loss += loss_at_sl(side, entry, sl, qty)
    return Exposure(notional, loss)


def check_entry(
    limits: Limits, positions: Mapping[Key, Exposure], balance: Decimal | None, entry: Entry
) -> Breach | None:
    """The first limit ``entry`` breaks, given the account's open ``positions`` before it; None when it keeps
    inside all of them.

    Checked in this order: ``max_open_positions`` (only an entry that opens a new key can break it),
    ``max_notional_per_symbol``, ``max_risk_per_position_pct`` (judged only with a ``balance``: the caller
    decides what an unknown balance means; at or below zero any loss breaks it). A position already over a
    limit is no excuse: an entry that adds to it breaks the limit again; an entry that adds nothing passes.
    """
    key = (entry.symbol, entry.side)
    held = positions.get(key)
    if limits.max_open_positions:
        open_now = sum(1 for e in positions.values() if e.notional > 0)
        opens = held is None or held.notional <= 0
        if opens and open_now + 1 > limits.max_open_positions:
            return Breach("max_open_positions", Decimal(limits.max_open_positions), Decimal(open_now + 1))
    if limits.max_notional_per_symbol and entry.notional > 0:
        symbol_notional = sum((e.notional for (s, _), e in positions.items() if s == entry.symbol), ZERO)
        after = symbol_notional + entry.notional
        if after > limits.max_notional_per_symbol:
            return Breach("max_notional_per_symbol", limits.max_notional_per_symbol, after)
    if limits.max_risk_per_position_pct and entry.loss_at_sl > 0 and balance is not None:
        loss = (held.loss_at_sl if held is not None else ZERO) + entry.loss_at_sl
        pct = loss * HUNDRED / balance if balance > 0 else Decimal("Infinity")
        if pct > limits.max_risk_per_position_pct:
            return Breach("max_risk_per_position_pct", limits.max_risk_per_position_pct, pct)
    return None
