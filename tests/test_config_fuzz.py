"""Fuzzing the configuration (issue 11): generated TOML values and ``POSMON_*`` overrides either load into settings
whose every number lies in its range, or raise ``ConfigError`` whose one line starts with the key (or variable)
at fault and never holds a secret value. Nothing else may come out: no OverflowError, no ValueError from the TOML
reader, no traceback at start-up.

Two properties, ``EXAMPLES`` = 300 examples each (derandomized, so every run tries the same ones; about 2 s
together on an idle machine). Each example overlays one to four generated keys (or variables) on the repository's
config.toml, numbers drawn mostly at and around their range's ends and at absurd magnitudes, and loads it the way
``posmon run`` does, then validates the venue, API and notify sections as the daemon does.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import eth_account  # noqa: F401  (imported here: its import raises the recursion limit, which hypothesis warns of)
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from posmon.api.settings import _KEYS as API_KEYS
from posmon.api.settings import ApiSettings
from posmon.config import _DAEMON_FIELDS, _RISK_FIELDS, _SIM_FIELDS, ConfigError, Settings, load_settings
from posmon.exchange.aster.settings import _KEYS as ASTER_KEYS
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.lighter.settings import _KEYS as LIGHTER_KEYS
from posmon.exchange.lighter.settings import LighterSettings
from posmon.notify.settings import _KEYS as NOTIFY_KEYS
from posmon.notify.settings import NotifySettings
from posmon.settings_fields import KeySpec, looks_secret, one_line

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
BASE: dict[str, Any] = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
EXAMPLES = 300
MARK = "Zq7s3cr3t"  # every generated value of a secret-looking key carries it; no message may
SECTIONS: dict[str, tuple[KeySpec, ...]] = {
    "daemon": _DAEMON_FIELDS,
    "risk": _RISK_FIELDS,
    "sim": _SIM_FIELDS,
    "aster": ASTER_KEYS,
    "lighter": LIGHTER_KEYS,
    "api": API_KEYS,
    "notify": NOTIFY_KEYS,
}
KEYS = {section: {key.name: key for key in keys} for section, keys in SECTIONS.items()}
# Where a key may be written: every section, a per-symbol risk table, and a misspelt section.
TABLES = [*SECTIONS, "risk.symbols.XRPUSDT", "deamon"]
SECRET_LOOKING = [
    "api_secret",
    "apisecret",
    "token",
    "password",
    "passphrase",
    "private_key",
    "seed_phrase",
    "mnemonic",
    "signature",
    "auth_header",
    "credentials",
    "API_KEY",
]
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

FIXED_LITERALS = [
    "0",
    "-1",
    "1" + "0" * 400,
    "-" + "9" * 400,
    "9" * 5000,
    str(2**256),
    str(2**63),
    "0x7fffffffffffffff",
    "1_000",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e308",
    "1e-320",
    "-0.0",
    "true",
    '"1e999999999"',
    '"-1e999999999"',
    '"NaN"',
    '"sNaN"',
    '"Infinity"',
    '"1e-999999999"',
    '" 5 "',
    '"0x10"',
    '"\\u0663"',
    '"\\u00b2"',
    '""',
    "[]",
    "{}",
    '["BTCUSDT", "BTCUSDT"]',
    '{ token = "x" }',
    "1979-05-27",
    "[[1, 2], [3]]",
]
FIXED_TEXTS = [
    "1e999999999",
    "-1e999999999",
    "NaN",
    "sNaN",
    "inf",
    "-Infinity",
    "1e-999999999",
    " 5 ",
    "0x10",
    "\u0663",
    "\u00b2",
    "",
    "1" + "0" * 400,
    "9" * 5000,
    str(2**256),
    "true",
    "off",
    "maybe",
    "1_000",
    "BTCUSDT,,ETHUSDT",
    '{"Authorization": 1}',
    "[1]",
    "0.5",
    "60",
    "86400",
    "86401",
    "99.99",
]


def escaped(text: str) -> str:
    """A TOML basic string holding ``text`` exactly (every character TOML would refuse raw is escaped)."""
    out = []
    for c in text:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.literal
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key_text(k)} = {render(v)}" for k, v in value.items()) + " }"
    raise AssertionError(value)


def key_text(name: str) -> str:
    return name if BARE_KEY.fullmatch(name) else escaped(name)


@dataclass(frozen=True)
class Raw:
    """A value already written as TOML text."""

    literal: str


@dataclass(frozen=True)
class Entry:
    table: str
    name: str
    literal: str


def secret_location(table: str, name: str) -> bool:
    """Whether an error about this key must mask its value (the test's view: the shared rule, or a secret key)."""
    key = KEYS.get(section_of(table), {}).get(name)
    return key.masked if key is not None else looks_secret(name)


def finite_float() -> st.SearchStrategy[str]:
    return st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf") if math.isinf(f) else repr(f)
    )


any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
plain_literal = st.one_of(
    st.sampled_from(FIXED_LITERALS),
    st.integers(-(10**6), 10**6).map(str),
    st.integers(-(10**90), 10**90).map(str),
    finite_float(),
    st.booleans().map(lambda b: "true" if b else "false"),
    any_text.map(escaped),
    st.lists(any_text, max_size=3).map(render),
)


HUGE_INTEGERS = [
    "1" + "0" * 400,
    "-" + "9" * 400,
    "9" * 5000,
    str(2**256),
    str(2**64),
    str(2**63),
    str(-(2**63) - 1),
    str(2**31),
    str(10**40),
]
NUMBER_TEXTS = [*HUGE_INTEGERS, "nan", "-nan", "inf", "-inf", "1e308", "-1e308", "1e-320", "-0.0", "0", "-1"]


@functools.cache
def near_bounds(key: KeySpec) -> st.SearchStrategy[str]:
    """Numbers at and around a key's range ends, as TOML (or environment) text."""
    b = key.bounds
    assert b is not None
    ends = [b.low, b.high]
    if key.kind == "int":
        values: list[Any] = [n + d for n in ends for d in (-1, 0, 1)]
    else:
        values = [float(n) + d for n in ends for d in (-0.5, -1e-9, 0.0, 1e-9, 0.5)]
    return st.sampled_from([repr(v) if isinstance(v, float) else str(v) for v in values])


@functools.cache
def numeric_text(key: KeySpec | None) -> st.SearchStrategy[str]:
    """Mostly magnitudes and ends that break a number's range; text that is a valid TOML number literal too."""
    magnitude = st.builds(
        lambda sign, lead, zeros: f"{sign}{lead}{'0' * zeros}",
        st.sampled_from(["", "-"]),
        st.integers(1, 9),
        st.integers(0, 450),
    )  # cheaper to draw than st.integers(-10**450, ...)
    choices = [st.sampled_from(NUMBER_TEXTS), magnitude, st.integers(-(10**6), 10**6).map(str), finite_float()]
    if key is not None and key.bounds is not None:
        choices += [near_bounds(key), near_bounds(key)]
    return st.one_of(*choices)


def section_of(table: str) -> str:
    return table.split(".")[0]


@functools.cache
def key_names(table: str) -> st.SearchStrategy[str]:
    """The table's own keys, secret-looking names, identifiers and any text (a quoted TOML key)."""
    known = sorted(KEYS.get(section_of(table), {}))
    return st.one_of(
        st.sampled_from(known or SECRET_LOOKING),
        st.sampled_from(SECRET_LOOKING),
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        any_text.filter(bool),
    )


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    table = draw(st.sampled_from(TABLES))
    name = draw(key_names(table))
    key = KEYS.get(section_of(table), {}).get(name)
    if secret_location(table, name):
        literal = escaped(MARK + draw(any_text))
    elif key is not None and key.bounds is not None:
        literal = draw(st.one_of(numeric_text(key), numeric_text(key), numeric_text(key).map(escaped), plain_literal))
    else:
        literal = draw(plain_literal)
    return Entry(table, name, literal)


def write_config(path: Path, overlay: list[Entry]) -> None:
    tables: dict[str, dict[str, Any]] = {name: dict(table) for name, table in BASE.items()}
    for entry in overlay:
        parts = entry.table.split(".")
        target = tables.setdefault(parts[0], {})
        for part in parts[1:]:
            target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) else {}
        target[entry.name] = Raw(entry.literal)
    lines = []
    for name, table in tables.items():
        lines.append(f"[{key_text(name)}]")
        lines += [f"{key_text(k)} = {render(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_everything(path: Path, env: Mapping[str, str]) -> tuple[Settings, dict[str, object]]:
    """What ``posmon run`` validates before trading: the file and every section, each with the environment."""
    loaded = load_settings(path, env=env)
    return loaded, {
        "aster": AsterSettings.from_config(loaded.aster, env),
        "lighter": LighterSettings.from_config(loaded.lighter, env),
        "api": ApiSettings.from_config(loaded.api, env),
        "notify": NotifySettings.from_config(loaded.notify, env),
    }


def assert_in_range(loaded: Settings, sections: dict[str, object]) -> None:
    objects: dict[str, list[object]] = {
        "daemon": [loaded.daemon],
        "risk": [loaded.risk, *loaded.risk_symbols.values()],
        "sim": [loaded.sim],
        **{name: [obj] for name, obj in sections.items()},
    }
    for section, objs in objects.items():
        for obj in objs:
            for key in SECTIONS[section]:
                value = getattr(obj, key.name)
                if key.bounds is not None and value is not None:
                    assert value in key.bounds, (section, key.name, value)


def check(path: Path, env: Mapping[str, str], locations: set[str]) -> None:
    """The property: valid settings, or one ConfigError line that starts with a location and shows no secret."""
    try:
        loaded, sections = load_everything(path, env)
    except ConfigError as exc:
        msg = str(exc)
        assert msg.isprintable() and "\n" not in msg, msg
        assert MARK not in msg, msg
        starts = {one_line(loc) for loc in locations}
        assert any(msg.startswith((f"{loc}:", f"{loc} (line")) for loc in starts), msg
    else:
        assert_in_range(loaded, sections)


def known_locations() -> set[str]:
    """Every key and section, and the per-symbol tables (an environment symbol list can orphan one)."""
    keys = {f"{section}.{key.name}" for section, keys in SECTIONS.items() for key in keys}
    per_symbol = {f"risk.symbols.XRPUSDT.{key.name}" for key in _RISK_FIELDS}
    return keys | per_symbol | set(SECTIONS) | {"risk.symbols", "risk.symbols.XRPUSDT"}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "posmon.toml"


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(overlay=st.lists(entries(), min_size=1, max_size=4))
def test_generated_toml_values_load_or_fail_naming_the_key(config_path: Path, overlay: list[Entry]) -> None:
    write_config(config_path, overlay)
    note(config_path.read_text(encoding="utf-8"))
    locations = known_locations() | {str(config_path)} | {f"{e.table}.{e.name}" for e in overlay}
    locations |= {e.table for e in overlay} | {f"{e.table}.{e.name}.symbols" for e in overlay}
    check(config_path, {}, locations)


UNKNOWN_VARS = st.from_regex(r"POSMON_[A-Z_]{1,20}", fullmatch=True).filter(lambda v: v != "POSMON_CONFIG")
ENV_TEXT = st.text(st.characters(exclude_characters="\0"), max_size=20)  # no environment holds a NUL


@functools.cache
def var_names(section: str) -> st.SearchStrategy[str]:
    """A section's variables, mis-cased ones, ``POSMON_ASTERAPI_SECRET``-like misspellings, and any other name."""
    known = [f"POSMON_{section.upper()}_{name.upper()}" for name in KEYS[section]]
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known).map(lambda v: v[:-1] + v[-1].lower()),
        st.sampled_from([f"POSMON_{section.upper()}{n.upper()}" for n in SECRET_LOOKING]),
        UNKNOWN_VARS,
    )


@st.composite
def variables(draw: st.DrawFn) -> tuple[str, str]:
    section = draw(st.sampled_from(list(SECTIONS)))
    var = draw(var_names(section))
    key = KEYS[section].get(var.removeprefix(f"POSMON_{section.upper()}_").lower())
    exact = key is not None and var == var.upper()
    if key.masked if exact else looks_secret(var) or (key is not None and key.masked):  # type: ignore[union-attr]
        return var, MARK + draw(ENV_TEXT)
    return var, draw(st.one_of(st.sampled_from(FIXED_TEXTS), ENV_TEXT, numeric_text(key), numeric_text(key)))


@FUZZ
@given(pairs=st.lists(variables(), min_size=1, max_size=4))
def test_generated_environment_overrides_load_or_fail_naming_the_variable(pairs: list[tuple[str, str]]) -> None:
    env = dict(pairs)
    check(REPO_CONFIG, env, set(env) | known_locations())
