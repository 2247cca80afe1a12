"""The exit-plan fields (issue 15) as an operator sets them: ``[risk]``, ``[risk.symbols.X]``, an API entry, a CLI flag.

One table (``PLAN_FIELDS``) names them with their kind, range and words, for the config keys, the API's body
fields and schema, and the CLI's flags; ``plan_of`` turns the ones given into a validated ``ExitPlan``
(``domain.exitplan.make_plan``, whose ``PlanError`` names the field at fault). None of them set: no plan, one TP
at ``tp_pct`` and one SL, exactly as before.

A more specific source overrides a less specific one key by key (``merged``): ``[risk.symbols.X]`` over
``[risk]``, an operator entry's fields over its symbol's, so an entry that gives only a trailing callback keeps
the symbol's ladder. The value that switches a part off again: ``tp_levels = []`` (no ladder: the one TP),
``trailing_callback_pct = 0`` (no trailing stop; its activation and step go with it), ``breakeven_after_tp = 0``
(not after fills) and ``breakeven_trigger_pct = 0`` (not on the mark; with both off, no break-even and its offset
goes with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from posmon.domain.exitplan import CALLBACK_MAX_PCT, CALLBACK_MIN_PCT, MAX_LEVELS, NO_PLAN, ExitPlan, make_plan
from posmon.settings_fields import Bounds

__all__ = ["PLAN_FIELDS", "PLAN_FIELD_NAMES", "Levels", "PlanField", "fields_of", "levels_ok", "merged", "plan_of"]

Levels = tuple[tuple[Decimal, Decimal], ...]  # (pct from the entry, share of the tranche in %) per ladder level
LEVELS_EXAMPLE = "[[1.0, 30], [2.0, 30], [3.0, 40]]"
LEVELS_TEXT_EXAMPLE = "1:30,2:30,3:40"


@dataclass(frozen=True, slots=True)
class PlanField:
    """One field: ``kind`` as the config machinery parses it, its range (None: a ladder, see ``levels_ok``), what
    it does, and what its off value means (empty: it has none)."""

    name: str
    kind: Literal["pairs", "decimal", "int"]
    bounds: Bounds | None
    text: str
    off: str = ""
    least: Decimal | None = None  # the smallest value other than the off value 0 (make_plan refuses below it)


PLAN_FIELDS: tuple[PlanField, ...] = (
    PlanField(
        "tp_levels",
        "pairs",
        None,
        "take-profit ladder: [pct from the entry, share of the tranche in %] per level, pcts rising, shares summing "
        f"to 100, at most {MAX_LEVELS} levels; replaces the single TP (tp_pct, or an entry's rr_ratio)",
        off="[]: no ladder",
    ),
    PlanField(
        "trailing_activation_pct",
        "decimal",
        Bounds(0, 100, high_open=True),
        "profit in % from the entry at which the stop starts to trail (needs trailing_callback_pct)",
        off="0: at once",
    ),
    PlanField(
        "trailing_callback_pct",
        "decimal",
        Bounds(0, CALLBACK_MAX_PCT),
        f"trailing stop: its distance in % behind the best mark since activation ({CALLBACK_MIN_PCT} to "
        f"{CALLBACK_MAX_PCT})",
        off="0: no trailing stop",
        least=CALLBACK_MIN_PCT,
    ),
    PlanField(
        "trailing_min_step_pct",
        "decimal",
        Bounds(0, 100, high_open=True),
        "the trailing stop moves only when the new stop is at least this many % better than the held one "
        "(default 0.1; each move is a cancel-replace on a venue that holds the stop)",
    ),
    PlanField(
        "breakeven_after_tp",
        "int",
        Bounds(0, MAX_LEVELS - 1),
        "move the stop to break-even once this many ladder levels filled (fewer than the ladder's levels)",
        off="0: not after fills",
    ),
    PlanField(
        "breakeven_offset_pct",
        "decimal",
        Bounds(0, 10, high_open=True),
        "the break-even stop lies this many % beyond the entry in the tranche's favour, to cover fees "
        "(needs breakeven_after_tp or breakeven_trigger_pct)",
    ),
    PlanField(
        "breakeven_trigger_pct",
        "decimal",
        Bounds(0, 100, high_open=True),
        "move the stop to break-even once the mark gained this many % from the entry, with no fill needed "
        "(above breakeven_offset_pct)",
        off="0: not on the mark",
    ),
)
PLAN_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in PLAN_FIELDS)


def levels_ok(levels: Levels) -> bool:
    """What one ladder value may hold by itself (its order and sum are ``make_plan``'s, with the other fields)."""
    return len(levels) <= MAX_LEVELS and all(0 < pct < 100 and 0 < share <= 100 for pct, share in levels)


def fields_of(settings: object) -> dict[str, Any]:
    """The plan fields an object carries as attributes (``config.RiskSettings``), None for those not set."""
    return {name: getattr(settings, name) for name in PLAN_FIELD_NAMES}


def merged(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """The fields given anywhere, a later source's value winning key by key (None: not given there)."""
    out: dict[str, Any] = {}
    for source in sources:
        out.update((k, v) for k, v in source.items() if k in PLAN_FIELD_NAMES and v is not None)
    return out


def _is_zero(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return Decimal(str(value)) == 0
    except (InvalidOperation, ValueError):
        return False  # not a number: make_plan says so, naming the field


def plan_of(fields: Mapping[str, Any]) -> ExitPlan:
    """The validated plan of the fields given (None or absent: not given); raises ``PlanError`` naming the field.

    Off values (module docstring) are dropped first, with what only they used; the rest goes to ``make_plan``.
    """
    f = merged(fields)
    if "tp_levels" in f and not f["tp_levels"]:
        del f["tp_levels"]
    if _is_zero(f.get("trailing_callback_pct")):
        for name in ("trailing_callback_pct", "trailing_activation_pct", "trailing_min_step_pct"):
            f.pop(name, None)
    off = [name for name in ("breakeven_after_tp", "breakeven_trigger_pct") if _is_zero(f.get(name))]
    for name in off:
        del f[name]
    if off and "breakeven_after_tp" not in f and "breakeven_trigger_pct" not in f:
        f.pop("breakeven_offset_pct", None)
    plan = make_plan(**f)
    return plan if plan else NO_PLAN  # the one shared empty plan
