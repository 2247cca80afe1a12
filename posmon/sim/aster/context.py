"""What every REST handler receives, and the parameter helpers they share.

Handlers are plain functions of a ``Ctx``; the pipeline in ``app`` has already counted,
rate-limited, delayed and authenticated the request by the time one runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from posmon.sim.aster import errors as e
from posmon.sim.aster import params as p
from posmon.sim.aster.auth import Principal
from posmon.sim.aster.errors import ApiError, invalid
from posmon.sim.aster.sim import AsterSim


@dataclass(frozen=True, slots=True)
class Ctx:
    """One authenticated request as a handler sees it."""

    sim: AsterSim
    values: Mapping[str, str]  # business parameters (authentication ones removed)
    principal: Principal


def require_symbol(sim: AsterSim, values: Mapping[str, str]) -> str:
    symbol = p.required(values, "symbol")
    if symbol not in sim.filters:
        raise ApiError(e.BAD_SYMBOL)
    return symbol


def optional_symbol(sim: AsterSim, values: Mapping[str, str]) -> str | None:
    return require_symbol(sim, values) if p.text(values, "symbol") is not None else None


def json_list(raw: str, name: str) -> list[Any]:
    """A JSON array parameter; the venue's own Python example sends single-quoted pseudo-JSON, so accept that too."""
    for text in (raw, raw.replace("'", '"')):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, list):
            return value
        break
    raise invalid(name)
