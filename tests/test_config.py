"""Configuration loading: defaults, overrides, and errors that tell an operator exactly what to fix."""

from __future__ import annotations

import dataclasses
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from posmon.config import ConfigError, DaemonSettings, RiskSettings, Settings, SimSettings, load_settings
from posmon.exchange.aster.settings import AsterSettings
from posmon.plan_fields import PLAN_FIELD_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO_CONFIG = REPO_ROOT / "config.toml"
PACKAGED_CONFIG = REPO_ROOT / "posmon" / "default_config.toml"

EXPECTED_DAEMON = DaemonSettings(
    venue="aster",
    store="var/posmon.sqlite",
    hedge_mode=True,
    client_id_prefix="pm",
    log_level="INFO",
    log_format="text",
    stale_stream_seconds=3.0,
    reconcile_interval_seconds=60.0,
    startup_timeout_seconds=60.0,
    request_timeout_seconds=10.0,
    restart_budget=5,
    restart_window_seconds=60.0,
    restart_backoff_seconds=0.5,
    protection_failure_action="alert",
)
EXPECTED_RISK = RiskSettings(
    tp_pct=Decimal("1.0"),
    sl_pct=Decimal("10.0"),
    tranche_pnl_increment_pct=Decimal("5.0"),
    max_tranches_per_symbol_side=5,
    instant_tp_enabled=True,
    working_type="MARK_PRICE",
    max_hold_seconds=0,
)
EXPECTED_SIM = SimSettings(
    symbols=("BTCUSDT", "ETHUSDT", "XRPUSDT"),
    tick_seconds=0.5,
    trader_enabled=True,
    trader_interval_seconds=5.0,
    seed=7,
    recording="XRP_USDT_USDT-5m-futures.json",
)


def write(tmp_path: Path, text: str, name: str = "posmon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text), env={} if env is None else env)


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    return str(info.value)


def assert_defaults(s: Settings) -> None:
    assert s.daemon == EXPECTED_DAEMON
    assert s.risk == EXPECTED_RISK
    assert s.sim == EXPECTED_SIM
    assert s.aster["rest_url"] == "" and s.aster["ws_url"] == "" and s.aster["auth"] == "v3"
    assert s.lighter["rest_url"] == "" and s.lighter["ws_url"] == "" and s.lighter["tier"] == "standard"
    assert dict(s.risk_symbols) == {"XRPUSDT": dataclasses.replace(EXPECTED_RISK, tp_pct=Decimal("1.5"))}


# --- defaults -------------------------------------------------------------------------------------------------


def test_repo_config_loads_documented_defaults() -> None:
    assert_defaults(load_settings(REPO_CONFIG, env={}))


def test_repo_config_lists_every_key() -> None:
    raw = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
    assert set(raw) == {"daemon", "risk", "sim", "api", "notify", "aster", "lighter", "instruments"}
    # ``venues`` (several venue accounts) is unset by default: documented as a commented-out example.
    assert "\n# venues = " in REPO_CONFIG.read_text(encoding="utf-8")
    assert set(raw["daemon"]) | {"venues"} == {f.name for f in dataclasses.fields(DaemonSettings)}
    assert set(raw["aster"]) <= {f.name for f in dataclasses.fields(AsterSettings)}
    # The exit-plan keys are unset by default (no plan): documented as commented-out examples; ``plan`` is theirs.
    text = REPO_CONFIG.read_text(encoding="utf-8")
    assert all(f"\n# {name} = " in text for name in PLAN_FIELD_NAMES)
    assert set(raw["risk"]) | set(PLAN_FIELD_NAMES) | {"plan"} == {f.name for f in dataclasses.fields(RiskSettings)} | {
        "symbols"
    }
    assert set(raw["sim"]) == {f.name for f in dataclasses.fields(SimSettings)}


def test_empty_file_gets_the_same_defaults_as_repo_config_but_the_network_free_venue(tmp_path: Path) -> None:
    s = load_text(tmp_path, "")
    # Without an [aster] table there is nothing to trade over the network: the in-process simulator.
    assert (s.daemon, s.risk, s.sim) == (dataclasses.replace(EXPECTED_DAEMON, venue="sim"), EXPECTED_RISK, EXPECTED_SIM)
    assert dict(s.risk_symbols) == {}


def test_packaged_default_is_identical_to_repo_config() -> None:
    assert PACKAGED_CONFIG.read_bytes() == REPO_CONFIG.read_bytes()


def test_packaged_defaults_used_when_no_config_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert "default_config.toml" in s.source
    assert_defaults(s)


def test_config_toml_in_cwd_is_used_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[daemon]\nstore = "cwd.sqlite"\n', name="config.toml")
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.daemon.store == "cwd.sqlite"
    assert s.source == "config.toml"


def test_settings_are_immutable() -> None:
    s = load_settings(REPO_CONFIG, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.risk.tp_pct = Decimal(2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.risk_symbols["BTCUSDT"] = s.risk  # type: ignore[index]


# --- per-symbol overrides --------------------------------------------------------------------------------------


def test_symbol_override_merges_over_risk_defaults(tmp_path: Path) -> None:
    s = load_text(
        tmp_path,
        """
[risk]
tp_pct = 2
sl_pct = 20
[risk.symbols.ETHUSDT]
sl_pct = 5
max_hold_seconds = 3600
""",
    )
    eth = s.risk_for("ETHUSDT")
    assert eth == dataclasses.replace(s.risk, sl_pct=Decimal(5), max_hold_seconds=3600)
    assert eth.tp_pct == Decimal(2)
    assert s.risk_for("BTCUSDT") is s.risk
    assert s.risk_for("NOTLISTED") is s.risk


def test_symbol_override_beats_env_default_but_inherits_other_env_values() -> None:
    s = load_settings(REPO_CONFIG, env={"POSMON_RISK_TP_PCT": "2.5", "POSMON_RISK_SL_PCT": "3"})
    assert s.risk.tp_pct == Decimal("2.5")
    assert s.risk_for("XRPUSDT").tp_pct == Decimal("1.5")
    assert s.risk_for("XRPUSDT").sl_pct == Decimal(3)


def test_decimals_are_exact_and_never_floats(tmp_path: Path) -> None:
    s = load_text(tmp_path, '[risk]\ntp_pct = 0.1\nsl_pct = "0.3"\ntranche_pnl_increment_pct = 7\n')
    assert [type(v) for v in (s.risk.tp_pct, s.risk.sl_pct, s.risk.tranche_pnl_increment_pct)] == [Decimal] * 3
    assert s.risk.tp_pct == Decimal("0.1")
    assert s.risk.sl_pct == Decimal("0.3")
    assert s.risk.tranche_pnl_increment_pct == Decimal(7)


def test_int_accepted_for_float_fields(tmp_path: Path) -> None:
    s = load_text(tmp_path, "[daemon]\nstale_stream_seconds = 3\n")
    assert s.daemon.stale_stream_seconds == 3.0 and isinstance(s.daemon.stale_stream_seconds, float)


def test_venue_sections_are_kept_as_dicts(tmp_path: Path) -> None:
    s = load_text(tmp_path, '[aster]\napi_key = "k"\n[aster.extra]\nx = 1\n[lighter]\nurl = "u"\n')
    assert s.aster == {"api_key": "k", "extra": {"x": 1}}
    assert s.lighter == {"url": "u"}


def test_symbol_sections_checked_against_active_venue_symbols(tmp_path: Path) -> None:
    text = '[daemon]\nvenue = "aster"\n[aster]\nsymbols = ["BTCUSDT"]\n[risk.symbols.ETHUSDT]\ntp_pct = 2\n'
    msg = error_of(tmp_path, text)
    assert "risk.symbols.ETHUSDT" in msg and "unknown symbol section" in msg
    assert "aster.symbols" in msg and "'BTCUSDT'" in msg
    # The simulator's list does not count when another venue is active.
    s = load_text(tmp_path, text.replace("ETHUSDT", "BTCUSDT"))
    assert s.risk_for("BTCUSDT").tp_pct == Decimal(2)


# --- environment overrides -------------------------------------------------------------------------------------


def test_env_overrides_decimal() -> None:
    s = load_settings(REPO_CONFIG, env={"POSMON_RISK_TP_PCT": "2.5"})
    assert s.risk.tp_pct == Decimal("2.5") and isinstance(s.risk.tp_pct, Decimal)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
    ],
)
def test_env_overrides_bool(text: str, expected: bool) -> None:
    s = load_settings(REPO_CONFIG, env={"POSMON_DAEMON_HEDGE_MODE": text, "POSMON_SIM_TRADER_ENABLED": text})
    assert s.daemon.hedge_mode is expected
    assert s.sim.trader_enabled is expected


def test_env_overrides_int_and_float() -> None:
    s = load_settings(REPO_CONFIG, env={"POSMON_DAEMON_RESTART_BUDGET": "9", "POSMON_SIM_TICK_SECONDS": "0.25"})
    assert s.daemon.restart_budget == 9
    assert s.sim.tick_seconds == 0.25


def test_env_overrides_list() -> None:
    s = load_settings(REPO_CONFIG, env={"POSMON_SIM_SYMBOLS": "BTCUSDT, XRPUSDT"})
    assert s.sim.symbols == ("BTCUSDT", "XRPUSDT")


def test_env_overrides_str_and_enum() -> None:
    env = {"POSMON_DAEMON_STORE": "/tmp/x.sqlite", "POSMON_RISK_WORKING_TYPE": "CONTRACT_PRICE"}
    s = load_settings(REPO_CONFIG, env=env)
    assert s.daemon.store == "/tmp/x.sqlite"
    assert s.risk.working_type == "CONTRACT_PRICE"


def test_every_documented_key_can_be_overridden_from_env() -> None:
    raw = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for section in ("daemon", "risk", "sim"):
        for key, value in raw[section].items():
            if key == "symbols" and section == "risk":
                continue
            text = (
                ",".join(value)
                if isinstance(value, list)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            env[f"POSMON_{section}_{key}".upper()] = text
    assert len(env) == 31  # 27 + the four risk-limit keys
    assert_defaults(load_settings(REPO_CONFIG, env=env))


def test_env_ignores_config_venue_prefixes_and_foreign_vars() -> None:
    env = {"POSMON_ASTER_API_KEY": "k", "POSMON_LIGHTER_WHATEVER": "x", "PATH": "/bin", "posmon_risk_tp_pct": "x"}
    assert_defaults(load_settings(REPO_CONFIG, env=env))


def test_posmon_config_env_selects_another_file(tmp_path: Path) -> None:
    other = write(tmp_path, '[daemon]\nstore = "other.sqlite"\n')
    s = load_settings(env={"POSMON_CONFIG": str(other)})
    assert s.daemon.store == "other.sqlite"
    assert s.source == str(other)


def test_explicit_path_beats_posmon_config(tmp_path: Path) -> None:
    other = write(tmp_path, '[daemon]\nstore = "other.sqlite"\n')
    s = load_settings(REPO_CONFIG, env={"POSMON_CONFIG": str(other)})
    assert s.daemon.store == "var/posmon.sqlite"


# --- errors: each names the key, the value and what is allowed -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        # wrong type
        ("[risk]\ntp_pct = true", ["risk.tp_pct", "True", "expected a number > 0"]),
        ('[risk]\ntp_pct = "abc"', ["risk.tp_pct", "'abc'", "expected a number > 0"]),
        ("[risk]\ntp_pct = nan", ["risk.tp_pct", "nan", "expected a number > 0"]),
        ("[daemon]\nhedge_mode = 1", ["daemon.hedge_mode", "1", "expected a boolean (true or false)"]),
        ('[daemon]\nhedge_mode = "yes"', ["daemon.hedge_mode", "'yes'", "expected a boolean (true or false)"]),
        ("[daemon]\nrestart_budget = true", ["daemon.restart_budget", "True", "expected an integer from 1 to 1000"]),
        ("[daemon]\nrestart_budget = 2.5", ["daemon.restart_budget", "2.5", "expected an integer from 1 to 1000"]),
        ('[daemon]\nstale_stream_seconds = "5"', ["daemon.stale_stream_seconds", "'5'", "expected a number > 0"]),
        ("[daemon]\nstore = 5", ["daemon.store", "5", "expected a non-empty string"]),
        ('[sim]\nseed = "7"', ["sim.seed", "'7'", "expected an integer"]),
        ('[sim]\nsymbols = "BTCUSDT"', ["sim.symbols", "'BTCUSDT'", "expected a non-empty list"]),
        # out of range
        ("[risk]\ntp_pct = 0", ["risk.tp_pct", "0", "expected a number > 0"]),
        ("[risk]\nsl_pct = 100", ["risk.sl_pct", "100", "expected a number > 0 and < 100"]),
        ("[risk]\nsl_pct = -1.5", ["risk.sl_pct", "-1.5", "expected a number > 0 and < 100"]),
        ("[risk]\nmax_tranches_per_symbol_side = 0", ["risk.max_tranches_per_symbol_side", "0", "from 1 to 1000"]),
        ("[risk]\nmax_hold_seconds = -1", ["risk.max_hold_seconds", "-1", "expected an integer from 0 to 31536000"]),
        ("[daemon]\nrestart_backoff_seconds = -0.1", ["daemon.restart_backoff_seconds", "-0.1", "number >= 0"]),
        ("[daemon]\nrequest_timeout_seconds = 0", ["daemon.request_timeout_seconds", "0", "expected a number > 0"]),
        ("[sim]\ntick_seconds = -1", ["sim.tick_seconds", "-1", "expected a number > 0"]),
        (
            '[daemon]\nclient_id_prefix = "pm-1"',
            ["daemon.client_id_prefix", "'pm-1'", "1 to 8 ASCII letters or digits"],
        ),
        ('[daemon]\nclient_id_prefix = "abcdefghi"', ["daemon.client_id_prefix", "'abcdefghi'", "1 to 8"]),
        ('[sim]\nsymbols = ["btcusdt"]', ["sim.symbols", "['btcusdt']", "upper-case symbols"]),
        ("[sim]\nsymbols = []", ["sim.symbols", "[]", "expected a non-empty list"]),
        ('[sim]\nsymbols = ["BTCUSDT", "BTCUSDT"]', ["sim.symbols", "'BTCUSDT'", "unique"]),
        # bad enum
        ('[risk]\nworking_type = "LAST"', ["risk.working_type", "'LAST'", "one of 'MARK_PRICE', 'CONTRACT_PRICE'"]),
        ('[daemon]\nvenue = "binance"', ["daemon.venue", "'binance'", "expected one of 'sim', 'aster', 'lighter'"]),
        ('[daemon]\nlog_level = "debug"', ["daemon.log_level", "'debug'", "'DEBUG', 'INFO', 'WARNING', 'ERROR'"]),
        ('[daemon]\nprotection_failure_action = "panic"', ["protection_failure_action", "'panic'", "'alert', 'close'"]),
        # unknown keys and sections
        ("[daemon]\nhedgemode = true", ["daemon.hedgemode", "unknown key", "True", "'hedge_mode'"]),
        ("[risk.symbols.XRPUSDT]\ntp = 1", ["risk.symbols.XRPUSDT.tp", "unknown key", "1", "'tp_pct'"]),
        ("[deamon]\nvenue = 'sim'", ["deamon", "unknown section", "'daemon', 'risk', 'sim', 'aster', 'lighter'"]),
        ("daemon = 1", ["daemon", "1", "expected a table"]),
        ('aster = "x"', ["aster", "'x'", "expected a table"]),
        ("[risk]\nsymbols = 5", ["risk.symbols", "5", "expected a table"]),
        ("[risk.symbols]\nXRPUSDT = 5", ["risk.symbols.XRPUSDT", "5", "expected a table of risk keys"]),
        # unknown symbol section
        (
            "[risk.symbols.DOGEUSDT]\ntp_pct = 2",
            [
                "risk.symbols.DOGEUSDT",
                "unknown symbol section",
                "{'tp_pct': 2}",
                "sim.symbols",
                "'BTCUSDT', 'ETHUSDT'",
            ],
        ),
        # a bad value inside a symbol section
        ("[risk.symbols.XRPUSDT]\nsl_pct = 150", ["risk.symbols.XRPUSDT.sl_pct", "150", "< 100"]),
    ],
)
def test_bad_file_value_is_rejected_with_key_value_and_allowed(tmp_path: Path, text: str, fragments: list[str]) -> None:
    msg = error_of(tmp_path, text)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("POSMON_RISK_TP_PCT", "abc", "expected a number > 0"),
        ("POSMON_RISK_TP_PCT", "-1", "expected a number > 0"),
        ("POSMON_RISK_TP_PCT", "Infinity", "expected a number > 0"),
        ("POSMON_DAEMON_HEDGE_MODE", "maybe", "expected a boolean (true/false, 1/0 or yes/no)"),
        ("POSMON_DAEMON_RESTART_BUDGET", "2.5", "expected an integer from 1 to 1000"),
        ("POSMON_DAEMON_RESTART_BUDGET", "0", "expected an integer from 1 to 1000"),
        ("POSMON_DAEMON_STALE_STREAM_SECONDS", "soon", "expected a number > 0"),
        ("POSMON_SIM_SYMBOLS", "BTCUSDT,,ETHUSDT", "comma-separated list of unique upper-case symbols"),
        ("POSMON_RISK_WORKING_TYPE", "mark_price", "expected one of 'MARK_PRICE', 'CONTRACT_PRICE'"),
        ("POSMON_DAEMON_STORE", "", "expected a non-empty string"),
    ],
)
def test_bad_env_value_is_rejected_with_var_value_and_allowed(name: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(REPO_CONFIG, env={name: value})
    msg = str(info.value)
    assert name in msg and repr(value) in msg and allowed in msg, msg


def test_unknown_posmon_env_var_is_rejected_with_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(REPO_CONFIG, env={"POSMON_RISK_TP_PTC": "2"})
    msg = str(info.value)
    assert "POSMON_RISK_TP_PTC" in msg and "'2'" in msg and "unknown environment override" in msg
    assert "did you mean POSMON_RISK_TP_PCT?" in msg
    assert "POSMON_<SECTION>_<KEY>" in msg


def test_per_symbol_tables_are_not_env_overridable() -> None:
    with pytest.raises(ConfigError, match="POSMON_RISK_SYMBOLS: unknown environment override"):
        load_settings(REPO_CONFIG, env={"POSMON_RISK_SYMBOLS": "x"})


def test_env_symbol_list_makes_file_symbol_section_unknown() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(REPO_CONFIG, env={"POSMON_SIM_SYMBOLS": "BTCUSDT"})
    msg = str(info.value)
    assert "risk.symbols.XRPUSDT" in msg and "unknown symbol section" in msg and "'BTCUSDT'" in msg


def test_missing_explicit_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, env={})
    msg = str(info.value)
    assert str(missing) in msg and "not found" in msg and "expected an existing TOML file" in msg


def test_missing_posmon_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(env={"POSMON_CONFIG": str(missing)})
    msg = str(info.value)
    assert "POSMON_CONFIG" in msg and str(missing) in msg and "not found" in msg


def test_empty_posmon_config_is_an_error() -> None:
    with pytest.raises(ConfigError, match="POSMON_CONFIG: invalid value ''; expected a path to a TOML file"):
        load_settings(env={"POSMON_CONFIG": ""})


def test_toml_syntax_error_reports_parser_message(tmp_path: Path) -> None:
    text = "[daemon\nvenue = 'sim'\n"
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    msg = str(info.value)
    assert str(path) in msg and "TOML syntax error" in msg and str(parser.value) in msg
