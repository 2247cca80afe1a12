"""Configuration: a TOML file plus ``POSMON_*`` environment overrides, validated into frozen settings.

The daemon guards real positions, so a typo must stop it at start-up instead of silently running with a
default: every value is type- and range-checked, and unknown sections, keys and ``POSMON_`` variables are
errors. Each field is declared once in a table (name, kind, default, allowed values) that drives parsing of
both TOML values and environment strings, so the two paths cannot drift apart.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from posmon.domain.exitplan import MAX_LEVELS, NO_PLAN, ExitPlan, PlanError
from posmon.domain.instruments import NO_OVERRIDES, InstrumentError, InstrumentOverrides, parse_overrides
from posmon.logs import LOG_FORMATS, LogFormat
from posmon.plan_fields import LEVELS_EXAMPLE, PLAN_FIELDS, Levels, PlanField, fields_of, levels_ok, plan_of
from posmon.settings_fields import (
    ConfigError,
    KeySpec,
    Kind,
    convert,
    numeric,
    parse_table,
    shown,
    shown_unknown,
)

__all__ = [
    "CONFIG_ENV",
    "ConfigError",
    "DaemonSettings",
    "RiskSettings",
    "Settings",
    "SimSettings",
    "load_settings",
]

CONFIG_ENV = "POSMON_CONFIG"
ENV_PREFIX = "POSMON_"
DEFAULT_CONFIG_FILE = "config.toml"
PACKAGED_CONFIG = "default_config.toml"
# These sections are validated by the module that owns them (the venue adapters, the HTTP API, the
# notifiers), each naming its own keys; their POSMON_ variables are not ours to reject.
_FOREIGN_ENV_PREFIXES = ("POSMON_ASTER_", "POSMON_LIGHTER_", "POSMON_API_", "POSMON_NOTIFY_", "POSMON_ACCOUNTS_")
# [cluster] and [accounts.<name>] are validated by posmon.cluster (issue 17).
_FREE_FORM_SECTIONS = ("aster", "lighter", "api", "notify", "cluster", "accounts")

Venue = Literal["sim", "aster", "lighter"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
WorkingType = Literal["MARK_PRICE", "CONTRACT_PRICE"]
ProtectionFailureAction = Literal["alert", "close"]


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """``[daemon]``: which venue to watch and how the process itself behaves.

    ``venues``: ``[daemon] venues`` as configured (empty when only ``venue`` is); ``venue`` is its first, so what
    speaks of "the" venue keeps working; ``venue_names`` every venue account the daemon runs.
    """

    venue: Venue
    store: str
    hedge_mode: bool
    client_id_prefix: str
    log_level: LogLevel
    log_format: LogFormat
    stale_stream_seconds: float
    reconcile_interval_seconds: float
    startup_timeout_seconds: float
    request_timeout_seconds: float
    restart_budget: int
    restart_window_seconds: float
    restart_backoff_seconds: float
    protection_failure_action: ProtectionFailureAction
    venues: tuple[Venue, ...] = ()

    @property
    def venue_names(self) -> tuple[str, ...]:
        """Every venue account the daemon runs: ``venues``, else just ``venue``."""
        return self.venues or (self.venue,)


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """``[risk]`` (or a merged ``[risk.symbols.<SYMBOL>]``): how each tranche is protected."""

    tp_pct: Decimal
    sl_pct: Decimal
    tranche_pnl_increment_pct: Decimal
    max_tranches_per_symbol_side: int
    instant_tp_enabled: bool
    working_type: WorkingType
    max_hold_seconds: int
    # Exit plan (issue 15, ``posmon.plan_fields``): None = not set; ``plan`` is what they make, built at load.
    tp_levels: Levels | None = None
    trailing_activation_pct: Decimal | None = None
    trailing_callback_pct: Decimal | None = None
    trailing_min_step_pct: Decimal | None = None
    breakeven_after_tp: int | None = None
    breakeven_offset_pct: Decimal | None = None
    breakeven_trigger_pct: Decimal | None = None
    plan: ExitPlan = NO_PLAN
    # Risk limits (0: no limit; see posmon.domain.limits). max_open_positions is account-wide: [risk] only.
    max_open_positions: int = 0
    max_notional_per_symbol: Decimal = Decimal(0)
    max_risk_per_position_pct: Decimal = Decimal(0)
    close_breaching_fills: bool = False


@dataclass(frozen=True, slots=True)
class SimSettings:
    """``[sim]``: the built-in simulated exchange, so the daemon runs with no keys."""

    symbols: tuple[str, ...]
    tick_seconds: float
    trader_enabled: bool
    trader_interval_seconds: float
    seed: int
    recording: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon is configured with; ``source`` says where it was read from (for the start-up log)."""

    daemon: DaemonSettings
    risk: RiskSettings
    risk_symbols: Mapping[str, RiskSettings]
    sim: SimSettings
    aster: dict[str, Any]
    lighter: dict[str, Any]
    source: str
    api: dict[str, Any] = field(default_factory=dict)
    notify: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)  # [cluster]: posmon.cluster.settings validates it
    accounts: dict[str, Any] = field(default_factory=dict)  # [accounts.<name>]: posmon.cluster.accounts validates
    instruments: InstrumentOverrides = NO_OVERRIDES  # [instruments]: unified-name overrides (domain.instruments)

    def risk_for(self, symbol: str) -> RiskSettings:
        """The risk settings for ``symbol``: its override section merged over ``[risk]``, else ``[risk]``."""
        return self.risk_symbols.get(symbol, self.risk)


# ---------------------------------------------------------------------------------------------------------------
# Field tables


def _field(name: str, kind: Kind, default: Any, allowed: str, ok: Callable[[Any], bool]) -> KeySpec:
    """One key: how to parse it, its default, and the check plus the words that explain it to a user."""
    return KeySpec(name, kind, allowed, ok, default=default)


# Ranges a trader would set; beyond them a value is a typo (or an attack) that would fail later, inside an actor.
HOUR = 3600
DAY = 24 * HOUR
YEAR = 365 * DAY
INT64_MAX = 2**63 - 1


def _any(_value: Any) -> bool:
    return True


def _one_of(name: str, default: str, *choices: str) -> KeySpec:
    listed = ", ".join(repr(c) for c in choices)
    return _field(name, "str", default, f"expected one of {listed}", lambda v: v in choices)


def _boolean(name: str, default: bool) -> KeySpec:
    return _field(name, "bool", default, "expected a boolean (true or false)", _any)


def _text(name: str, default: str) -> KeySpec:
    return _field(name, "str", default, "expected a non-empty string", lambda v: v != "")


_SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9._-]*")
_PREFIX_RE = re.compile(r"[A-Za-z0-9]{1,8}")


def _symbols_ok(v: tuple[str, ...]) -> bool:
    return bool(v) and len(set(v)) == len(v) and all(_SYMBOL_RE.fullmatch(s) for s in v)


_DAEMON_FIELDS: tuple[KeySpec, ...] = (
    _one_of("venue", "sim", "sim", "aster", "lighter"),
    # Several venue accounts in one daemon; instead of ``venue``, never with it (resolved by _venues).
    _field(
        "venues",
        "symbols",
        (),
        "expected a non-empty list of distinct venues from 'sim', 'aster', 'lighter', e.g. [\"aster\", \"lighter\"]",
        lambda v: bool(v) and len(set(v)) == len(v) and all(x in get_args(Venue) for x in v),
    ),
    _text("store", "var/posmon.sqlite"),
    _boolean("hedge_mode", True),
    _field(
        "client_id_prefix",
        "str",
        "pm",
        "expected 1 to 8 ASCII letters or digits",
        lambda v: _PREFIX_RE.fullmatch(v) is not None,
    ),
    _one_of("log_level", "INFO", "DEBUG", "INFO", "WARNING", "ERROR"),
    _one_of("log_format", "text", *LOG_FORMATS),
    # Three missed frames of the mark stream, which ticks every second (was 10: an instant close came 8.6 s late).
    numeric("stale_stream_seconds", "float", gt=0, le=HOUR, default=3.0),
    numeric("reconcile_interval_seconds", "float", ge=0, le=DAY, default=60.0, note=" (0: no periodic reconcile)"),
    numeric("startup_timeout_seconds", "float", ge=0, le=DAY, default=60.0),
    numeric("request_timeout_seconds", "float", gt=0, le=600, default=10.0),
    numeric("restart_budget", "int", ge=1, le=1000, default=5),
    numeric("restart_window_seconds", "float", gt=0, le=DAY, default=60.0),
    numeric("restart_backoff_seconds", "float", ge=0, le=HOUR, default=0.5),
    _one_of("protection_failure_action", "alert", "alert", "close"),
)


def _plan_key(f: PlanField) -> KeySpec:
    """An exit-plan key: unset by default (no plan); alone, only its type and range are checked here, the whole
    plan by ``_with_plan`` once the section is merged."""
    if f.bounds is None:
        allowed = (
            "expected a list of [pct, share] pairs (pct > 0 and < 100, share > 0 and <= 100, at most "
            f"{MAX_LEVELS} levels; [] for none), e.g. {LEVELS_EXAMPLE}"
        )
        return KeySpec(f.name, "pairs", allowed, levels_ok)
    b = f.bounds
    assert f.kind != "pairs"
    return numeric(
        f.name,
        f.kind,
        gt=b.low if b.low_open else None,
        ge=None if b.low_open else b.low,
        lt=b.high if b.high_open else None,
        le=None if b.high_open else b.high,
        note=f" ({f.off})" if f.off else "",
    )


_RISK_FIELDS: tuple[KeySpec, ...] = (
    # A SHORT's TP lies tp_pct below its entry: it must stay above zero, so tp_pct < 100 for both sides.
    numeric("tp_pct", "decimal", gt=0, lt=100, default=Decimal("1.0"), note=" (a SHORT's TP must stay above 0)"),
    numeric("sl_pct", "decimal", gt=0, lt=100, default=Decimal("10.0")),
    # A LONG's PnL cannot fall below -100 %: a larger increment would never open a tranche.
    numeric("tranche_pnl_increment_pct", "decimal", gt=0, le=100, default=Decimal("5.0")),
    numeric("max_tranches_per_symbol_side", "int", ge=1, le=1000, default=5),
    _boolean("instant_tp_enabled", True),
    _one_of("working_type", "MARK_PRICE", "MARK_PRICE", "CONTRACT_PRICE"),
    numeric("max_hold_seconds", "int", ge=0, le=YEAR, default=0, note=" (0: no limit; at most 365 days)"),
    *(_plan_key(f) for f in PLAN_FIELDS),
    # Risk limits: an operator entry that would break one is refused, a fill from elsewhere that breaks one is
    # noticed (and closed with close_breaching_fills). 0 turns each off.
    numeric("max_open_positions", "int", ge=0, le=100_000, default=0, note=" (0: no limit)"),
    numeric("max_notional_per_symbol", "decimal", ge=0, le=10**12, default=Decimal(0), note=" (USD; 0: no limit)"),
    numeric("max_risk_per_position_pct", "decimal", ge=0, le=100, default=Decimal(0), note=" (0: no limit)"),
    _boolean("close_breaching_fills", False),
)
# Keys that hold for the whole account: a [risk.symbols.<SYMBOL>] table may not set them.
_ACCOUNT_WIDE_RISK_KEYS = ("max_open_positions",)

_SIM_FIELDS: tuple[KeySpec, ...] = (
    _field(
        "symbols",
        "symbols",
        ("BTCUSDT", "ETHUSDT", "XRPUSDT"),
        "expected a non-empty list of unique upper-case symbols such as 'BTCUSDT'",
        _symbols_ok,
    ),
    numeric("tick_seconds", "float", gt=0, le=HOUR, default=0.5),
    _boolean("trader_enabled", True),
    numeric("trader_interval_seconds", "float", gt=0, le=DAY, default=5.0),
    # The simulated trader's random seed: named like a secret, but never one.
    numeric("seed", "int", ge=-INT64_MAX - 1, le=INT64_MAX, default=7, public=True),
    _text("recording", "XRP_USDT_USDT-5m-futures.json"),
)

# Section name -> fields; these are the sections whose keys are typed and can be overridden from the environment.
_TYPED_SECTIONS: Mapping[str, tuple[KeySpec, ...]] = MappingProxyType(
    {"daemon": _DAEMON_FIELDS, "risk": _RISK_FIELDS, "sim": _SIM_FIELDS}
)
_INSTRUMENTS_SECTION = "instruments"  # validated by posmon.domain.instruments; no environment overrides
_ALL_SECTIONS = (*_TYPED_SECTIONS, *_FREE_FORM_SECTIONS, _INSTRUMENTS_SECTION)
_RISK_SYMBOLS_KEY = "symbols"


# ---------------------------------------------------------------------------------------------------------------
# Sections


def _quoted(names: Any) -> str:
    return ", ".join(repr(n) for n in names)


def _apply_env(values: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    """Override file values with ``POSMON_<SECTION>_<KEY>``; an unrecognised ``POSMON_`` name is an error."""
    known = {
        f"{ENV_PREFIX}{section}_{field.name}".upper(): (section, field)
        for section, spec in _TYPED_SECTIONS.items()
        for field in spec
    }
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or name.startswith(_FOREIGN_ENV_PREFIXES):
            continue
        hit = known.get(name)
        if hit is None:
            close = difflib.get_close_matches(name, [*known, *_foreign_variables()], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"{name}: unknown environment override (value {shown_unknown(name, env[name])}); {hint}"
                f"expected POSMON_<SECTION>_<KEY> naming a key of {_quoted_sections()}, or {CONFIG_ENV}"
            )
        section, field = hit
        values[section][field.name] = convert(field, env[name], name, from_env=True)


def _quoted_sections() -> str:
    return ", ".join(f"[{name}]" for name in (*_TYPED_SECTIONS, *_FREE_FORM_SECTIONS))


def _foreign_variables() -> list[str]:
    """The ``[aster]``, ``[lighter]``, ``[api]`` and ``[notify]`` variables, to suggest for a misspelt one (only
    on that error: importing the venue adapters costs start-up time)."""
    from posmon.api.settings import _KEYS as api_keys
    from posmon.exchange.aster.settings import _KEYS as aster_keys
    from posmon.exchange.lighter.settings import _KEYS as lighter_keys
    from posmon.notify.settings import _KEYS as notify_keys

    sections = {"ASTER": aster_keys, "LIGHTER": lighter_keys, "API": api_keys, "NOTIFY": notify_keys}
    return [f"{ENV_PREFIX}{section}_{key.name.upper()}" for section, keys in sections.items() for key in keys]


def _venues(daemon: DaemonSettings, table: Mapping[str, Any], env: Mapping[str, str]) -> DaemonSettings:
    """``venues`` or ``venue``, never both (one clear error); ``venue`` becomes the first of ``venues``."""

    def given(key: str) -> bool:
        return key in table or f"{ENV_PREFIX}DAEMON_{key.upper()}" in env

    if given("venues") and given("venue"):
        raise ConfigError(
            f"daemon.venues: invalid value {list(daemon.venues)!r} together with daemon.venue = {daemon.venue!r}; "
            "expected one of the two (venues for several venue accounts, venue for one)"
        )
    return replace(daemon, venue=daemon.venues[0]) if daemon.venues else daemon


def _venue_symbols(
    daemon: DaemonSettings, sim: SimSettings, tables: Mapping[str, dict[str, Any]]
) -> tuple[str, tuple[str, ...] | None]:
    """Where the active venues list their symbols, and the list (all of them); None when one of them does not
    list them (yet)."""
    wheres: list[str] = []
    symbols: list[str] = []
    for venue in daemon.venue_names:
        where, listed = _one_venue_symbols(venue, sim, tables)
        if listed is None:
            return where, None
        wheres.append(where)
        symbols += [s for s in listed if s not in symbols]
    return " / ".join(dict.fromkeys(wheres)), tuple(symbols)


def _one_venue_symbols(
    venue: str, sim: SimSettings, tables: Mapping[str, dict[str, Any]]
) -> tuple[str, tuple[str, ...] | None]:
    if venue == "sim":
        return "sim.symbols", sim.symbols
    table = tables[venue]
    listed = table.get("symbols")
    if isinstance(listed, list) and listed and all(isinstance(s, str) for s in listed):
        return f"{venue}.symbols", tuple(listed)
    if table.get("rest_url") == "" and table.get("ws_url") == "":
        return "sim.symbols", sim.symbols  # the embedded simulator lists the [sim] symbols
    # An empty list means "every symbol the venue lists", which only the venue knows: nothing to check here.
    return f"{venue}.symbols", None


def _risk_symbols(
    raw: Any,
    base: RiskSettings,
    where_listed: str,
    listed: tuple[str, ...] | None,
) -> Mapping[str, RiskSettings]:
    """``[risk.symbols.<SYMBOL>]`` tables merged over ``base``; only symbols the active venue trades are allowed."""
    where = f"risk.{_RISK_SYMBOLS_KEY}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: invalid value {shown(where, raw)}; expected a table of [{where}.<SYMBOL>] tables")
    merged: dict[str, RiskSettings] = {}
    for symbol, table in raw.items():
        at = f"{where}.{symbol}"
        if listed is not None and symbol not in listed:
            raise ConfigError(
                f"{at}: unknown symbol section (value {shown(at, table)}); "
                f"expected a symbol listed in {where_listed}: {_quoted(listed)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{at}: invalid value {shown(at, table)}; expected a table of risk keys")
        for key in _ACCOUNT_WIDE_RISK_KEYS:
            if key in table:
                raise ConfigError(
                    f"{at}.{key}: invalid value {shown(key, table[key])}; it limits the whole account, "
                    f"so set it in [risk], not per symbol"
                )
        merged[symbol] = _with_plan(replace(base, **parse_table(table, _RISK_FIELDS, at)), at)
    return MappingProxyType(merged)


def _with_plan(risk: RiskSettings, section: str) -> RiskSettings:
    """``risk`` with the exit plan its keys make; a plan that cannot be followed is a ConfigError naming the key."""
    try:
        return replace(risk, plan=plan_of(fields_of(risk)))
    except PlanError as exc:
        detail = str(exc).removeprefix(exc.field).removeprefix(":").strip()
        raise ConfigError(f"{section}.{exc.field}: {detail}") from None


def _build(raw: Mapping[str, Any], env: Mapping[str, str], source: str) -> Settings:
    for name, table in raw.items():
        if name not in _ALL_SECTIONS:
            raise ConfigError(f"{name}: unknown section; allowed sections: {_quoted(_ALL_SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: invalid value {shown(name, table)}; expected a table ([{name}])")
    values = {section: {f.name: f.default for f in spec} for section, spec in _TYPED_SECTIONS.items()}
    for section, spec in _TYPED_SECTIONS.items():
        skip = _RISK_SYMBOLS_KEY if section == "risk" else ""
        values[section].update(parse_table(raw.get(section, {}), spec, section, skip=skip))
    _apply_env(values, env)
    daemon = _venues(DaemonSettings(**values["daemon"]), raw.get("daemon", {}), env)
    risk = _with_plan(RiskSettings(**values["risk"]), "risk")
    sim = SimSettings(**values["sim"])
    free = {name: dict(raw.get(name, {})) for name in _FREE_FORM_SECTIONS}
    where_listed, listed = _venue_symbols(daemon, sim, free)
    risk_symbols = _risk_symbols(raw.get("risk", {}).get(_RISK_SYMBOLS_KEY, {}), risk, where_listed, listed)
    return Settings(
        daemon=daemon,
        risk=risk,
        risk_symbols=risk_symbols,
        sim=sim,
        aster=free["aster"],
        lighter=free["lighter"],
        api=free["api"],
        notify=free["notify"],
        cluster=free["cluster"],
        accounts=free["accounts"],
        source=source,
        instruments=_instruments(raw.get(_INSTRUMENTS_SECTION, {})),
    )


def _instruments(raw: Any) -> InstrumentOverrides:
    try:
        return parse_overrides(raw, get_args(Venue), _INSTRUMENTS_SECTION)
    except InstrumentError as exc:
        raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _read_file(path: Path, named_by: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{named_by}: config file {str(path)!r} not found; expected an existing TOML file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{named_by}: cannot read config file {str(path)!r}: {exc}") from exc


def _read_config(path: str | Path | None, env: Mapping[str, str]) -> tuple[str, str]:
    """(text, source): the explicit path, else $POSMON_CONFIG, else ./config.toml, else the packaged defaults."""
    if path is not None:
        return _read_file(Path(path), "config path"), str(path)
    if CONFIG_ENV in env:
        named = env[CONFIG_ENV]
        if not named:
            raise ConfigError(f"{CONFIG_ENV}: invalid value {named!r}; expected a path to a TOML file")
        return _read_file(Path(named), CONFIG_ENV), named
    local = Path(DEFAULT_CONFIG_FILE)
    if local.is_file():
        return _read_file(local, "config path"), str(local)
    packaged = resources.files("posmon").joinpath(PACKAGED_CONFIG)
    return packaged.read_text(encoding="utf-8"), f"<packaged {PACKAGED_CONFIG}>"


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the settings; raises ConfigError on the first problem found.

    ``env`` defaults to ``os.environ``; pass a mapping in tests so nothing global is touched. Environment
    overrides beat the file's ``[daemon]``/``[risk]``/``[sim]`` values; a ``[risk.symbols.<SYMBOL>]`` value
    still beats an overridden ``[risk]`` default because it is the more specific setting.
    """
    env = os.environ if env is None else env
    text, source = _read_config(path, env)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML syntax error: {exc}") from exc
    except ValueError as exc:  # tomllib's int() of an integer longer than Python converts (4,300 digits)
        raise ConfigError(f"{source}: {_long_integer_at(text)}; expected a number within its key's range") from exc
    except RecursionError as exc:
        raise ConfigError(f"{source}: TOML nested too deeply; expected a flat table of keys") from exc
    return _build(raw, env, source)


_LONG_INTEGER_RE = re.compile(r"^[ \t]*([^\s=#\[]+)[ \t]*=[ \t]*[-+]?\d[\d_]{4299,}", re.MULTILINE)
_TABLE_HEADER_RE = re.compile(r"^[ \t]*\[+[ \t]*([^\]\s]+)[ \t]*\]", re.MULTILINE)


def _long_integer_at(text: str) -> str:
    """The key of the integer too long to read and its line, as far as a look at the text can tell."""
    match = _LONG_INTEGER_RE.search(text)
    if match is None:
        return "an integer too long to read (more than 4300 digits)"
    headers = list(_TABLE_HEADER_RE.finditer(text, 0, match.start()))
    key = f"{headers[-1].group(1)}.{match.group(1)}" if headers else match.group(1)
    line = text.count("\n", 0, match.start(1)) + 1
    return f"{key} (line {line}): invalid value <an integer of more than 4300 digits>"
