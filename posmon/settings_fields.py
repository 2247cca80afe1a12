"""The machinery every config section shares: a table of keys, TOML and ``POSMON_<SECTION>_<KEY>`` parsing, errors.

Each section (``posmon.config``'s typed sections, ``[aster]``, ``[lighter]``, ``[api]``, ``[notify]``) declares its
keys once as ``KeySpec`` rows; this module turns TOML values and environment strings into checked values and
raises ``ConfigError`` naming the key (or variable), the value (``'***'`` for secrets) and what is allowed. The
sections differ in a few details that users already see (which names look secret, which strings are booleans...);
a ``Style`` carries those per section so that no message or accepted value changes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "ENV_BOOLS",
    "ENV_BOOL_ALLOWED",
    "ConfigError",
    "KeySpec",
    "Kind",
    "Style",
    "convert",
    "env_value",
    "parse_env",
    "parse_section",
    "parse_table",
    "shown_unknown",
    "toml_value",
]


class ConfigError(Exception):
    """Any invalid configuration; the message names the key, the offending value and what is allowed."""


# str/bool/int/float/decimal: scalars; symbols: a list (environment: comma-separated, blank means none);
# names: a list (environment: comma-separated, blank items dropped); headers: a table of strings (environment: JSON).
Kind = Literal["str", "bool", "int", "float", "decimal", "symbols", "names", "headers"]


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key: how to parse it, the check plus the words that explain it, whether it is secret, its default."""

    name: str
    kind: Kind
    allowed: str
    ok: Callable[[Any], bool]
    secret: bool = False
    default: Any = None


ENV_BOOLS: Mapping[str, bool] = MappingProxyType(
    {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
)
ENV_BOOL_ALLOWED = "expected a boolean (true/false, 1/0 or yes/no)"


@dataclass(frozen=True, slots=True)
class Style:
    """What differs between sections, kept as it was so that every message and accepted value stays the same."""

    # An unknown key or variable whose (lower-cased) name contains one of these has its value shown as '***'.
    secret_hints: tuple[str, ...] = ()
    # An unknown key whose value is a table shows it as '{...}'.
    elide_tables: bool = False
    # A mis-cased variable naming a known key is masked by that key's secret flag (else by ``secret_hints``).
    env_secret_by_key: bool = False
    # The environment strings read as booleans, and the "allowed" text for a bad one (None: the key's own text).
    env_bools: Mapping[str, bool] = field(default_factory=lambda: ENV_BOOLS)
    env_bool_allowed: str | None = ENV_BOOL_ALLOWED
    # A bare TOML integer given for a string key is taken as its decimal text (a numeric chat id).
    toml_int_as_str: bool = False
    # What a failed parse or check may raise (beyond these, the exception propagates).
    errors: tuple[type[Exception], ...] = (ValueError,)


DEFAULT_STYLE = Style()


def _decimal(v: Any) -> Decimal:
    try:
        d = Decimal(str(v).strip())  # str(float) is the shortest text that reads back as that float: 1.0 -> "1.0"
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not d.is_finite():
        raise ValueError("not finite")
    return d


def toml_value(kind: Kind, v: Any, *, int_as_str: bool = False) -> Any:
    """A TOML value of the right type, normalised (floats never survive into Decimal keys); else ValueError."""
    if kind == "str" and isinstance(v, str):
        return v
    if kind == "str" and int_as_str and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if kind == "bool" and isinstance(v, bool):
        return v
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
        return v
    if kind == "float" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    if kind == "decimal" and isinstance(v, int | float | str) and not isinstance(v, bool):
        return _decimal(v)
    if kind in ("symbols", "names") and isinstance(v, list) and all(isinstance(s, str) for s in v):
        return tuple(v)
    if kind == "headers" and isinstance(v, Mapping) and all(isinstance(x, str) for x in (*v.keys(), *v.values())):
        return dict(v)
    raise ValueError(f"wrong type for {kind}")


def env_value(kind: Kind, s: str, *, bools: Mapping[str, bool] = ENV_BOOLS) -> Any:
    """An environment string parsed per the key's kind; else ValueError."""
    match kind:
        case "str":
            return s
        case "bool":
            try:
                return bools[s.strip().lower()]
            except KeyError:
                raise ValueError("not a boolean") from None
        case "int":
            return int(s)
        case "float":
            f = float(s)
            if not math.isfinite(f):
                raise ValueError("not finite")
            return f
        case "decimal":
            return _decimal(s)
        case "symbols":
            return tuple(part.strip() for part in s.split(",")) if s.strip() else ()
        case "names":
            return tuple(part.strip() for part in s.split(",") if part.strip())
        case "headers":
            try:
                return toml_value("headers", json.loads(s))
            except json.JSONDecodeError:
                raise ValueError("not JSON") from None
    raise AssertionError(kind)


def _allowed(key: KeySpec, from_env: bool, style: Style) -> str:
    if from_env and key.kind == "bool" and style.env_bool_allowed is not None:
        return style.env_bool_allowed
    if from_env and key.kind == "symbols":
        return key.allowed.replace(" list", " comma-separated list", 1)
    return key.allowed


def convert(key: KeySpec, raw: Any, where: str, *, from_env: bool = False, style: Style = DEFAULT_STYLE) -> Any:
    """Parse and check one value; the error names ``where``, the value (``'***'`` for secrets) and what is allowed."""
    try:
        if from_env:
            value = env_value(key.kind, raw, bools=style.env_bools)
        else:
            value = toml_value(key.kind, raw, int_as_str=style.toml_int_as_str)
        good = key.ok(value)
    except style.errors:
        good = False
    if not good:
        shown = "***" if key.secret else raw
        raise ConfigError(f"{where}: invalid value {shown!r}; {_allowed(key, from_env, style)}")
    return value


def shown_unknown(name: str, raw: Any, style: Style = DEFAULT_STYLE) -> Any:
    """An unknown key may be a misspelt secret: never echo a value whose name smells like one."""
    if any(hint in name.lower() for hint in style.secret_hints):
        return "***"
    return "{...}" if style.elide_tables and isinstance(raw, dict) else raw


def parse_table(
    table: Mapping[str, Any], keys: tuple[KeySpec, ...], section: str, *, skip: str = "", style: Style = DEFAULT_STYLE,
) -> dict[str, Any]:
    """Checked values of the keys present in ``table`` (but ``skip``); any key not in ``keys`` is an error."""
    by_name = {k.name: k for k in keys}
    out: dict[str, Any] = {}
    for name, raw in table.items():
        if name == skip:
            continue
        key = by_name.get(name)
        if key is None:
            allowed = ", ".join(repr(n) for n in [*by_name, *([skip] if skip else [])])
            raise ConfigError(f"{section}.{name}: unknown key (value {shown_unknown(name, raw, style)!r}); "
                              f"allowed keys: {allowed}")
        out[name] = convert(key, raw, f"{section}.{name}", style=style)
    return out


def parse_env(
    env: Mapping[str, str], keys: tuple[KeySpec, ...], env_prefix: str, *, style: Style = DEFAULT_STYLE,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Checked values of the ``<env_prefix><KEY>`` variables, and the variable each came from; others are errors."""
    by_name = {k.name: k for k in keys}
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith(env_prefix):
            continue
        key = by_name.get(var[len(env_prefix):].lower())
        if key is None or var != var.upper():
            if style.env_secret_by_key and key is not None:
                shown = "***" if key.secret else env[var]
            else:
                shown = shown_unknown(var, env[var], style)
            known = ", ".join(f"{env_prefix}{k.name.upper()}" for k in keys)
            raise ConfigError(f"{var}: unknown environment override (value {shown!r}); expected one of {known}")
        values[key.name] = convert(key, env[var], var, from_env=True, style=style)
        where[key.name] = var
    return values, where


def parse_section(
    table: Any, env: Mapping[str, str], keys: tuple[KeySpec, ...], section: str, env_prefix: str, *,
    style: Style = DEFAULT_STYLE,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``[section]`` then its variables (which win): the values set, and where each was set (key or variable)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{section}: invalid value {table!r}; expected a table ([{section}])")
    values = parse_table(table, keys, section, style=style)
    where = {name: f"{section}.{name}" for name in values}
    env_values, env_where = parse_env(env, keys, env_prefix, style=style)
    values.update(env_values)
    where.update(env_where)
    return values, where
