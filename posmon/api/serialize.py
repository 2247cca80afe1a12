"""Control results to JSON: Decimals as exact strings in plain notation, enums as their values.

Prices and quantities travel as strings so no client ever sees a float's rounding; the API and its CLI
parse them straight back into ``Decimal``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response


def to_jsonable(obj: Any) -> Any:
    """A tree of dicts, lists, strings, numbers, booleans and None equal in meaning to ``obj``."""
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, Decimal):
        return format(obj, "f") if obj.is_finite() else None
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    return str(obj)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(to_jsonable(payload)),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def error_response(
    message: str,
    field: str | None,
    status: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Every refusal has the same shape: ``{"error": ..., "field": ...}``."""
    return json_response({"error": message, "field": field}, status, headers)
