"""The machinery every config section shares: a table of keys, TOML and ``POSMON_<SECTION>_<KEY>`` parsing, errors.

Each section (``posmon.config``'s typed sections, ``[aster]``, ``[lighter]``, ``[api]``, ``[notify]``) declares its
keys once as ``KeySpec`` rows; this module turns TOML values and environment strings into checked values and
raises ``ConfigError`` naming the key (or variable), the value and what is allowed, on one line. Every number has
a range (``Bounds``) that its message states, so an absurd magnitude stops start-up instead of an actor later.
One rule (``looks_secret``) decides, for every section, which values are never echoed: a key declared secret, or
any key or variable, known or not, whose name looks like a secret's; those show as ``'***'``. The sections differ
in a few details that users already see (extra secret hints, which strings are booleans...); a ``Style`` carries
those per section.
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
    "SECRET_WORDS",
    "Bounds",
    "ConfigError",
    "KeySpec",
    "Kind",
    "Style",
    "convert",
    "display",
    "env_value",
    "looks_secret",
    "numeric",
    "one_line",
    "pairs_from_text",
    "parse_env",
    "parse_section",
    "parse_table",
    "shown",
    "shown_unknown",
    "toml_value",
]


def one_line(text: str) -> str:
    """``text`` with every unprintable character (newline, tab, NUL, U+2028...) written as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(Exception):
    """Any invalid configuration; the one-line message names the key, the offending value and what is allowed.

    The message is made printable here (a TOML key or a variable may hold a newline), so that whoever prints
    it, anywhere, prints one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(str(message)))


# Any key or variable whose lower-cased name contains one of these has its value masked in every error, whether
# the key is known or not (an unknown key may be a misspelt secret: ``POSMON_ASTERAPI_SECRET``).
SECRET_WORDS: tuple[str, ...] = (
    "secret",
    "token",
    "key",
    "pass",
    "pwd",
    "priv",
    "pk",
    "seed",
    "mnemonic",
    "sig",
    "auth",
    "cred",
    "bearer",
    "cookie",
    "session",
    "jwt",
    "hmac",
)
MASK = "***"
MASK_TEXT = repr(MASK)


def looks_secret(name: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether a key or variable named ``name`` may hold a secret (the shared rule, plus a section's ``extra``)."""
    lowered = name.lower()
    return any(word in lowered for word in (*SECRET_WORDS, *extra))


_MAX_SHOWN = 80  # characters of a value's repr in a message
_MAX_INT_BITS = 128  # a longer integer (39 digits and more) is shown by its length


def display(value: Any) -> str:
    """``repr(value)`` fit for a one-line message: an integer too long to print and long texts are abbreviated."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        if value.bit_length() > 14_000:  # str() of an integer over 4,300 digits raises ValueError
            return f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
        return f"<an integer of {len(str(abs(value)))} digits>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<a {type(value).__name__} too large to show>"
    if len(text) > _MAX_SHOWN:
        text = f"{text[: _MAX_SHOWN - 20]}... ({len(text)} characters)"
    return one_line(text)


def _masked(value: Any, extra: tuple[str, ...]) -> Any:
    """A table with every entry under a secret-looking name masked, at any depth."""
    if isinstance(value, Mapping):
        return {k: MASK if looks_secret(str(k), extra) else _masked(v, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, extra) for v in value]
    return value


def shown(
    name: str,
    raw: Any,
    *,
    secret: bool = False,
    extra: tuple[str, ...] = (),
    elide_tables: bool = False,
) -> str:
    """How an error shows the value of ``name``: ``'***'`` when secret or secret-looking, else ``display``."""
    if secret or looks_secret(name, extra):
        return MASK_TEXT
    if isinstance(raw, Mapping) and elide_tables:
        return "{...}"
    return display(_masked(raw, extra))


# str/bool/int/float/decimal: scalars; symbols: a list (environment: comma-separated, blank means none);
# names: a list (environment: comma-separated, blank items dropped); headers: a table of strings (environment: JSON);
# pairs: a list of [number, number] pairs as Decimals (environment: ``A:B,C:D``), e.g. a take-profit ladder.
Kind = Literal["str", "bool", "int", "float", "decimal", "symbols", "names", "headers", "pairs"]


Number = int | float | Decimal


def _bound_text(n: Number) -> str:
    if isinstance(n, int) and n > 2**30 and (n + 1).bit_count() == 1:
        return f"2**{n.bit_length()}-1"  # a venue's integer width reads better than its 20 to 78 digits
    if isinstance(n, int) and n < -(2**30) and (-n).bit_count() == 1:
        return f"-2**{(-n).bit_length() - 1}"
    return str(n)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The range a number must lie in: ``low < v`` (or ``<=``) and ``v < high`` (or ``<=``); NaN never does."""

    low: Number
    high: Number
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v: Any) -> bool:
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return bool(above and below)

    def text(self, integers: bool = False) -> str:
        """``'from 0 to 254'`` (integers), ``'> 0 and < 100'``, ``'>= 0 and <= 86400'``: the range in words."""
        if integers and not (self.low_open or self.high_open):
            return f"from {_bound_text(self.low)} to {_bound_text(self.high)}"
        return (
            f"{'>' if self.low_open else '>='} {_bound_text(self.low)} and "
            f"{'<' if self.high_open else '<='} {_bound_text(self.high)}"
        )


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key: how to parse it, the check plus the words that explain it, whether it is secret, its default.

    ``public``: the value is never a secret though the name looks like one (``api_key_index``, ``sim.seed``), so
    an error may show it. ``bounds``: a number's range (already part of ``ok`` and ``allowed``).
    """

    name: str
    kind: Kind
    allowed: str
    ok: Callable[[Any], bool]
    secret: bool = False
    default: Any = None
    public: bool = False
    bounds: Bounds | None = None

    @property
    def masked(self) -> bool:
        """Whether errors hide this key's value: declared secret, or named like one and not declared public."""
        return self.secret or (not self.public and looks_secret(self.name))


def numeric(
    name: str,
    kind: Literal["int", "float", "decimal"],
    *,
    gt: Number | None = None,
    ge: Number | None = None,
    lt: Number | None = None,
    le: Number | None = None,
    note: str = "",
    default: Any = None,
    public: bool = False,
    noun: str = "",
) -> KeySpec:
    """A number with both ends of its range stated: ``expected a number > 0 and <= 600`` plus ``note``."""
    if (gt is None) == (ge is None) or (lt is None) == (le is None):
        raise AssertionError(f"{name}: a number needs exactly one lower and one upper bound")
    low, high = ge if gt is None else gt, le if lt is None else lt
    assert low is not None and high is not None  # exactly one of each pair, checked above
    bounds = Bounds(low, high, low_open=gt is not None, high_open=lt is not None)
    what = noun or ("an integer" if kind == "int" else "a number")
    allowed = f"expected {what} {bounds.text(kind == 'int')}{note}"
    return KeySpec(name, kind, allowed, bounds.__contains__, default=default, public=public, bounds=bounds)


ENV_BOOLS: Mapping[str, bool] = MappingProxyType(
    {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
)
ENV_BOOL_ALLOWED = "expected a boolean (true/false, 1/0 or yes/no)"


@dataclass(frozen=True, slots=True)
class Style:
    """What differs between sections, kept as it was so that every message and accepted value stays the same."""

    # Beyond ``SECRET_WORDS``: an unknown key or variable whose (lower-cased) name contains one of these has its
    # value shown as '***'.
    secret_hints: tuple[str, ...] = ()
    # An unknown key whose value is a table shows it as '{...}'.
    elide_tables: bool = False
    # The environment strings read as booleans, and the "allowed" text for a bad one (None: the key's own text).
    env_bools: Mapping[str, bool] = field(default_factory=lambda: ENV_BOOLS)
    env_bool_allowed: str | None = ENV_BOOL_ALLOWED
    # A bare TOML integer given for a string key is taken as its decimal text (a numeric chat id).
    toml_int_as_str: bool = False
    # What a failed parse or check may raise (beyond these, the exception propagates): a huge TOML integer for a
    # float key raises OverflowError, a Decimal out of the context's range an ArithmeticError.
    errors: tuple[type[Exception], ...] = (ValueError, ArithmeticError, TypeError)


DEFAULT_STYLE = Style()


def _decimal(v: Any) -> Decimal:
    try:
        d = Decimal(str(v).strip())  # str(float) is the shortest text that reads back as that float: 1.0 -> "1.0"
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not d.is_finite():
        raise ValueError("not finite")
    return d


def _decimal_pair(pair: Any) -> tuple[Decimal, Decimal]:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise ValueError("not a pair")
    if any(isinstance(x, bool) or not isinstance(x, int | float | str | Decimal) for x in pair):
        raise ValueError("not numbers")
    return _decimal(pair[0]), _decimal(pair[1])


def pairs_from_text(text: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """``'1:30,2:70'`` -> ((1, 30), (2, 70)): the text form of a list of number pairs (an environment variable, a
    CLI flag); blank is the empty list. Each number goes straight from its text to ``Decimal``."""
    if not text.strip():
        return ()
    out = []
    for part in text.split(","):
        first, sep, second = part.partition(":")
        if not sep:
            raise ValueError(f"{part.strip()!r} is not A:B")
        out.append(_decimal_pair([first, second]))
    return tuple(out)


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
    if kind == "pairs" and isinstance(v, list):
        return tuple(_decimal_pair(pair) for pair in v)  # a float via its str: 1.1 -> Decimal("1.1")
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
        case "pairs":
            return pairs_from_text(s)
    raise AssertionError(kind)


def _allowed(key: KeySpec, from_env: bool, style: Style) -> str:
    if from_env and key.kind == "bool" and style.env_bool_allowed is not None:
        return style.env_bool_allowed
    if from_env and key.kind == "symbols":
        return key.allowed.replace(" list", " comma-separated list", 1)
    if from_env and key.kind == "pairs":
        return f"{key.allowed.partition(', e.g.')[0]} written A:B,C:D, e.g. 1:30,2:70"
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
        value_text = MASK_TEXT if key.masked else display(raw)
        raise ConfigError(f"{where}: invalid value {value_text}; {_allowed(key, from_env, style)}")
    return value


def shown_unknown(name: str, raw: Any, style: Style = DEFAULT_STYLE) -> str:
    """An unknown key may be a misspelt secret: never echo a value whose name smells like one."""
    return shown(name, raw, extra=style.secret_hints, elide_tables=style.elide_tables)


def parse_table(
    table: Mapping[str, Any],
    keys: tuple[KeySpec, ...],
    section: str,
    *,
    skip: str = "",
    style: Style = DEFAULT_STYLE,
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
            raise ConfigError(
                f"{section}.{name}: unknown key (value {shown_unknown(name, raw, style)}); allowed keys: {allowed}"
            )
        out[name] = convert(key, raw, f"{section}.{name}", style=style)
    return out


def parse_env(
    env: Mapping[str, str],
    keys: tuple[KeySpec, ...],
    env_prefix: str,
    *,
    style: Style = DEFAULT_STYLE,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Checked values of the ``<env_prefix><KEY>`` variables, and the variable each came from; others are errors."""
    by_name = {k.name: k for k in keys}
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith(env_prefix):
            continue
        key = by_name.get(var[len(env_prefix) :].lower())
        if key is None or var != var.upper():
            value_text = MASK_TEXT if key is not None and key.masked else shown_unknown(var, env[var], style)
            known = ", ".join(f"{env_prefix}{k.name.upper()}" for k in keys)
            raise ConfigError(f"{var}: unknown environment override (value {value_text}); expected one of {known}")
        values[key.name] = convert(key, env[var], var, from_env=True, style=style)
        where[key.name] = var
    return values, where


def parse_section(
    table: Any,
    env: Mapping[str, str],
    keys: tuple[KeySpec, ...],
    section: str,
    env_prefix: str,
    *,
    style: Style = DEFAULT_STYLE,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``[section]`` then its variables (which win): the values set, and where each was set (key or variable)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{section}: invalid value {shown(section, table)}; expected a table ([{section}])")
    values = parse_table(table, keys, section, style=style)
    where = {name: f"{section}.{name}" for name in values}
    env_values, env_where = parse_env(env, keys, env_prefix, style=style)
    values.update(env_values)
    where.update(env_where)
    return values, where
