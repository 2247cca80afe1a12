"""Rounding prices to a tick and quantities to a step, in the direction the rule asks.

Exchanges reject prices off the tick and quantities off the step; which way to
round is a risk decision, so callers always say it explicitly.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext


def round_down(value: Decimal, increment: Decimal) -> Decimal:
    """The largest multiple of ``increment`` that is <= ``value``."""
    with localcontext() as ctx:
        ctx.prec = 80  # the quotient must be exact before it is floored
        return ((value / increment).to_integral_value(rounding=ROUND_FLOOR) * increment).quantize(increment)


def round_up(value: Decimal, increment: Decimal) -> Decimal:
    """The smallest multiple of ``increment`` that is >= ``value``."""
    with localcontext() as ctx:
        ctx.prec = 80
        return ((value / increment).to_integral_value(rounding=ROUND_CEILING) * increment).quantize(increment)


def round_toward(value: Decimal, increment: Decimal, target: Decimal) -> Decimal:
    """Round onto the grid in the direction of ``target`` (never past a grid line away from it).

    Used for exits: a TP or SL rounded toward the entry is never further away than
    the configured percentage, so a stop never risks more than it says.
    """
    return round_down(value, increment) if target < value else round_up(value, increment)


def quantize_qty(qty: Decimal, step: Decimal) -> Decimal:
    """Quantities always round down: never close or protect more than is held."""
    return round_down(qty, step)
