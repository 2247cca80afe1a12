"""Hostile and careless configuration (issue 11 points 5 and 8, issue 10's new key): every error is one line that
names the key, never echoes a secret, and every number is held to a range stated in the message."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from posmon import cli
from posmon.api.settings import _KEYS as API_KEYS
from posmon.api.settings import ApiSettings
from posmon.config import _DAEMON_FIELDS, _RISK_FIELDS, _SIM_FIELDS, ConfigError, load_settings
from posmon.exchange.aster.settings import _KEYS as ASTER_KEYS
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.lighter.settings import _KEYS as LIGHTER_KEYS
from posmon.exchange.lighter.settings import LighterSettings
from posmon.notify.settings import _KEYS as NOTIFY_KEYS
from posmon.notify.settings import NotifySettings
from posmon.settings_fields import KeySpec, display, looks_secret, parse_env, parse_table

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO_CONFIG = REPO_ROOT / "config.toml"
SECRET = "s3cr3t-Zq7"
V1 = {"api_key": "k" * 16, "api_secret": "s" * 16}  # a valid Aster v1 table
SECTIONS: dict[str, tuple[KeySpec, ...]] = {
    "daemon": _DAEMON_FIELDS,
    "risk": _RISK_FIELDS,
    "sim": _SIM_FIELDS,
    "aster": ASTER_KEYS,
    "lighter": LIGHTER_KEYS,
    "api": API_KEYS,
    "notify": NOTIFY_KEYS,
}
# Each venue/API/notify section's own validation, from a table that is otherwise valid.
LOADERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, str]], object]] = {
    "aster": lambda table, env: AsterSettings.from_config({**V1, **table}, env),
    "lighter": lambda table, env: LighterSettings.from_config({"rest_url": "", "ws_url": "", **table}, env),
    "api": ApiSettings.from_config,
    "notify": NotifySettings.from_config,
}
NUMERIC = [
    (section, key) for section, keys in SECTIONS.items() for key in keys if key.kind in ("int", "float", "decimal")
]


def load_text(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> object:
    path = tmp_path / "posmon.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={} if env is None else env)


def config_error(load: Callable[[], object]) -> str:
    """The message of the ConfigError ``load`` raises; it must be a single line."""
    with pytest.raises(ConfigError) as info:
        load()
    msg = str(info.value)
    assert "\n" not in msg and msg.isprintable(), msg
    return msg


def section_error(
    tmp_path: Path, section: str, table: Mapping[str, Any] | str, env: Mapping[str, str] | None = None
) -> str:
    """The error of ``[section]`` holding ``table`` (TOML text for the daemon's own sections)."""
    env = {} if env is None else env
    if section in LOADERS:
        assert isinstance(table, Mapping)
        return config_error(lambda: LOADERS[section](table, env))
    assert isinstance(table, str)
    return config_error(lambda: load_text(tmp_path, f"[{section}]\n{table}\n", env))


# --- 11.5: secrets are never echoed, known key or not ----------------------------------------------------------

SECRET_NAMES = [
    "api_secret",
    "Secret",
    "bot_token",
    "apikey",
    "password",
    "passphrase",
    "private",
    "seed_phrase",
    "mnemonic",
    "signature",
    "authorization",
    "credentials",
    "pk",
    "bearer",
    "session_cookie",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_the_shared_rule_finds_secret_looking_names_in_any_case(name: str) -> None:
    assert looks_secret(name) and looks_secret(name.upper()) and looks_secret(f"POSMON_X_{name.upper()}")


@pytest.mark.parametrize(
    "var",
    [
        "POSMON_ASTERAPI_SECRET",
        "POSMON_APITOKEN",
        "POSMON_DAEMON_PASSWORD",
        "POSMON_RISK_SEED_PHRASE",
        "POSMON_MNEMONIC",
        "POSMON_SIGNATURE",
        "POSMON_AUTHORIZATION",
        "POSMON_CREDENTIALS",
        "POSMON_PRIVATE_KEY",
        "POSMON_LIGHTERAPI_PRIVATE_KEY",
        "POSMON_NOTIFYWEBHOOK_SECRET",
    ],
)
def test_an_unknown_posmon_variable_named_like_a_secret_is_masked(var: str) -> None:
    # Was: "POSMON_ASTERAPI_SECRET: unknown environment override (value 's3cr3t'); ..."
    msg = config_error(lambda: load_settings(REPO_CONFIG, env={var: SECRET}))
    assert msg.startswith(f"{var}: unknown environment override (value '***')"), msg
    assert SECRET not in msg


def test_a_misspelt_venue_variable_is_suggested_by_name_only() -> None:
    msg = config_error(lambda: load_settings(REPO_CONFIG, env={"POSMON_ASTERAPI_SECRET": SECRET}))
    assert "did you mean POSMON_ASTER_API_SECRET?" in msg and SECRET not in msg
    assert "[daemon], [risk], [sim], [aster], [lighter], [api], [notify]" in msg


@pytest.mark.parametrize("section", ["daemon", "risk", "sim", "risk.symbols.XRPUSDT"])
@pytest.mark.parametrize("name", SECRET_NAMES)
def test_an_unknown_key_named_like_a_secret_is_masked_in_the_daemons_sections(
    tmp_path: Path,
    section: str,
    name: str,
) -> None:
    msg = config_error(lambda: load_text(tmp_path, f'[{section}]\n{name} = "{SECRET}"\n'))
    assert f"{section}.{name}: unknown key (value '***')" in msg and SECRET not in msg


@pytest.mark.parametrize("section", list(LOADERS))
@pytest.mark.parametrize("name", SECRET_NAMES)
def test_an_unknown_key_or_variable_named_like_a_secret_is_masked_in_every_other_section(
    section: str,
    name: str,
) -> None:
    if name in {key.name for key in SECTIONS[section]}:
        name = f"{name}2"  # aster.api_secret is a known key: its misspelling is not
    msg = config_error(lambda: LOADERS[section]({name: SECRET}, {}))
    assert f"{section}.{name}: unknown key (value '***')" in msg and SECRET not in msg
    var = f"POSMON_{section.upper()}_{name.upper()}"
    msg = config_error(lambda: LOADERS[section]({}, {var: SECRET}))
    assert f"{var}: unknown environment override (value '***')" in msg and SECRET not in msg


def test_secrets_nested_in_an_unknown_table_are_masked(tmp_path: Path) -> None:
    msg = config_error(lambda: load_text(tmp_path, f'[daemon.extra]\ntoken = "{SECRET}"\nname = "visible"\n'))
    assert "daemon.extra: unknown key" in msg and "'token': '***'" in msg and "'visible'" in msg
    assert SECRET not in msg
    msg = config_error(lambda: load_text(tmp_path, f'[risk.symbols.DOGEUSDT]\napi_key = "{SECRET}"\n'))
    assert "risk.symbols.DOGEUSDT: unknown symbol section" in msg and SECRET not in msg


def test_a_miscased_variable_of_a_secret_key_is_masked() -> None:
    msg = config_error(lambda: AsterSettings.from_config(V1, {"POSMON_ASTER_Api_Secret": SECRET}))
    assert "POSMON_ASTER_Api_Secret: unknown environment override (value '***')" in msg and SECRET not in msg


def test_known_keys_named_like_secrets_are_masked_unless_declared_public() -> None:
    """A key whose name looks secret shows its value only when declared public; this list changes on purpose."""
    shown = {
        f"{section}.{key.name}"
        for section, keys in SECTIONS.items()
        for key in keys
        if looks_secret(key.name) and not key.masked
    }
    assert shown == {
        "sim.seed",
        "aster.auth",
        "aster.signer",
        "aster.listen_key_keepalive_seconds",
        "lighter.api_key_index",
        "lighter.auth_token_seconds",
    }
    masked = {f"{section}.{key.name}" for section, keys in SECTIONS.items() for key in keys if key.masked}
    assert masked == {
        "aster.api_key",
        "aster.api_secret",
        "aster.signer_private_key",
        "lighter.api_private_key",
        "api.token",
        "notify.telegram_bot_token",
        "notify.webhook_url",
        "notify.webhook_headers",
    }


def test_a_bad_value_of_a_known_secret_key_is_masked_from_file_and_environment() -> None:
    msg = config_error(lambda: LighterSettings.from_config({"api_private_key": SECRET}, {}))
    assert "lighter.api_private_key: invalid value '***'" in msg and SECRET not in msg
    msg = config_error(lambda: ApiSettings.from_config({}, {"POSMON_API_TOKEN": SECRET}))
    assert "POSMON_API_TOKEN: invalid value '***'" in msg and SECRET not in msg


# --- 11.8: every number has a range ----------------------------------------------------------------------------


def test_every_numeric_key_of_every_section_has_both_bounds_in_its_message() -> None:
    assert len(NUMERIC) >= 30
    for section, key in NUMERIC:
        assert key.bounds is not None, f"{section}.{key.name} has no range"
        assert math.isfinite(key.bounds.low) and math.isfinite(key.bounds.high)
        assert key.bounds.text(key.kind == "int") in key.allowed


def _beyond(key: KeySpec) -> list[Any]:
    """Values just outside ``key``'s range, as TOML would give them."""
    b = key.bounds
    assert b is not None
    if key.kind == "int":
        return [b.low - 1, b.high + 1]
    step = Decimal("0.001")
    low = Decimal(b.low) if b.low_open else b.low - step
    high = Decimal(b.high) if b.high_open else b.high + step
    return [str(low), str(high)] if key.kind == "decimal" else [float(low), float(high)]


@pytest.mark.parametrize(("section", "key"), NUMERIC, ids=[f"{s}.{k.name}" for s, k in NUMERIC])
def test_each_number_is_refused_just_outside_its_range_and_accepted_at_its_closed_ends(
    section: str,
    key: KeySpec,
) -> None:
    b = key.bounds
    assert b is not None
    for value in _beyond(key):
        with pytest.raises(ConfigError) as info:
            parse_table({key.name: value}, SECTIONS[section], section)
        assert str(info.value) == f"{section}.{key.name}: invalid value {display(value)}; {key.allowed}"
    for end, open_ in ((b.low, b.low_open), (b.high, b.high_open)):
        if not open_:
            given = str(end) if key.kind == "decimal" else end
            assert parse_table({key.name: given}, SECTIONS[section], section) == {key.name: end}


@pytest.mark.parametrize(("section", "key"), NUMERIC, ids=[f"{s}.{k.name}" for s, k in NUMERIC])
def test_nan_and_infinity_are_refused_for_every_number_from_file_and_environment(section: str, key: KeySpec) -> None:
    for value in (math.nan, math.inf, -math.inf, "NaN", "sNaN", "Infinity", "-inf", 10**400, -(10**400)):
        with pytest.raises(ConfigError, match=re.escape(f"{section}.{key.name}: invalid value")):
            parse_table({key.name: value}, SECTIONS[section], section)
    for text in ("nan", "inf", "-Infinity", "1e999999999", "1" + "0" * 400):
        var = f"POSMON_{section.upper()}_{key.name.upper()}"
        with pytest.raises(ConfigError, match=re.escape(f"{var}: invalid value")):
            parse_env({var: text}, SECTIONS[section], f"POSMON_{section.upper()}_")


@pytest.mark.parametrize(
    ("section", "table", "fragments"),
    [
        # Was accepted: every actor then raised on each fill (no TP/SL placed, a restart loop).
        (
            "risk",
            "max_hold_seconds = 1" + "0" * 400,
            ["risk.max_hold_seconds: invalid value <an integer of 401 digits>", "from 0 to 31536000"],
        ),
        ("risk", 'tp_pct = "1e999999999"', ["risk.tp_pct: invalid value '1e999999999'", "> 0 and < 100"]),
        ("risk", 'tranche_pnl_increment_pct = "1e999999999"', ["risk.tranche_pnl_increment_pct", "> 0 and <= 100"]),
        # Issue 11 point 3, the config side: a SHORT's TP 150 % below its entry is below zero.
        ("risk", "tp_pct = 150", ["risk.tp_pct: invalid value 150", "a SHORT's TP must stay above 0"]),
        ("risk", "tp_pct = 100", ["risk.tp_pct: invalid value 100", "< 100"]),
        # A huge TOML integer for a float key: OverflowError in float().
        ("daemon", "stale_stream_seconds = 1" + "0" * 400, ["daemon.stale_stream_seconds", "> 0 and <= 3600"]),
        ("sim", "tick_seconds = 1" + "0" * 400, ["sim.tick_seconds", "> 0 and <= 3600"]),
        (
            "aster",
            {"chain_id": 2**256},
            ["aster.chain_id: invalid value <an integer of 78 digits>", "from 1 to 2**256-1"],
        ),
        ("aster", {"request_timeout_seconds": 10**400}, ["aster.request_timeout_seconds", "> 0 and <= 600"]),
        (
            "lighter",
            {"account_index": 10**40},
            ["lighter.account_index: invalid value <an integer of 41 digits>", "from 0 to 2**63-1"],
        ),
        ("lighter", {"chain_id": 2**31}, ["lighter.chain_id: invalid value 2147483648", "from 1 to 2**31-1"]),
        ("api", {"health_timeout_seconds": 10**400}, ["api.health_timeout_seconds", "> 0 and <= 600"]),
        ("notify", {"timeout_seconds": 10**400}, ["notify.timeout_seconds", "> 0 and <= 600"]),
        ("notify", {"stream_down_seconds": 1e300}, ["notify.stream_down_seconds: invalid value 1e+300", "<= 86400"]),
    ],
)
def test_absurd_magnitudes_stop_start_up_naming_key_value_and_range(
    tmp_path: Path,
    section: str,
    table: Mapping[str, Any] | str,
    fragments: list[str],
) -> None:
    msg = section_error(tmp_path, section, table)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


@pytest.mark.parametrize(
    ("var", "value", "fragments"),
    [
        ("POSMON_RISK_TRANCHE_PNL_INCREMENT_PCT", "1e999999999", ["'1e999999999'", "> 0 and <= 100"]),
        ("POSMON_RISK_MAX_HOLD_SECONDS", "1" + "0" * 400, ["'1000000000", "characters)", "from 0 to 31536000"]),
        ("POSMON_RISK_TP_PCT", "1e999999999", ["'1e999999999'", "> 0 and < 100"]),
    ],
)
def test_absurd_magnitudes_from_the_environment_are_refused(var: str, value: str, fragments: list[str]) -> None:
    msg = config_error(lambda: load_settings(REPO_CONFIG, env={var: value}))
    assert msg.startswith(f"{var}: invalid value "), msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert len(msg) < 300


def test_aster_chain_id_from_the_environment_is_bounded_by_the_signing_width() -> None:
    msg = config_error(lambda: AsterSettings.from_config(V1, {"POSMON_ASTER_CHAIN_ID": str(2**256)}))
    assert msg.startswith("POSMON_ASTER_CHAIN_ID: invalid value '1157920892") and "2**256-1" in msg
    assert AsterSettings.from_config(V1, {"POSMON_ASTER_CHAIN_ID": str(2**256 - 1)}).chain_id == 2**256 - 1


def test_an_integer_too_long_for_the_toml_reader_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    # tomllib raises ValueError (not TOMLDecodeError) past 4,300 digits: it reached the terminal as a traceback.
    msg = config_error(
        lambda: load_text(tmp_path, "[daemon]\nvenue = 'sim'\n\n[risk]\nmax_hold_seconds = " + "9" * 5000 + "\n")
    )
    assert "risk.max_hold_seconds (line 5): invalid value <an integer of more than 4300 digits>" in msg


def test_a_key_with_a_newline_still_gives_a_one_line_error(tmp_path: Path) -> None:
    msg = config_error(lambda: load_text(tmp_path, '[daemon]\n"hedge\\nmode" = "x\\ny"\n'))
    assert msg.startswith("daemon.hedge\\nmode: unknown key (value 'x\\ny')"), msg


def test_a_long_value_is_abbreviated_in_the_message(tmp_path: Path) -> None:
    msg = config_error(lambda: load_text(tmp_path, f'[daemon]\nvenue = "{"x" * 10_000}"\n'))
    assert len(msg) < 300 and "(10002 characters)" in msg


# --- issue 10: the periodic reconcile and the stale-stream default ----------------------------------------------


def test_reconcile_interval_defaults_to_a_minute_and_zero_turns_it_off(tmp_path: Path) -> None:
    default = load_settings(REPO_CONFIG, env={})
    assert default.daemon.reconcile_interval_seconds == 60.0
    assert isinstance(default.daemon.reconcile_interval_seconds, float)
    assert load_text(tmp_path, "").daemon.reconcile_interval_seconds == 60.0  # not in the file: the same default
    off = load_text(tmp_path, "[daemon]\nreconcile_interval_seconds = 0\n")
    assert off.daemon.reconcile_interval_seconds == 0.0
    day = load_settings(REPO_CONFIG, env={"POSMON_DAEMON_RECONCILE_INTERVAL_SECONDS": "86400"})
    assert day.daemon.reconcile_interval_seconds == 86400.0


@pytest.mark.parametrize("value", ["-1", "86401", "nan", "inf", "soon"])
def test_reconcile_interval_out_of_range_is_refused(value: str) -> None:
    msg = config_error(lambda: load_settings(REPO_CONFIG, env={"POSMON_DAEMON_RECONCILE_INTERVAL_SECONDS": value}))
    assert msg == (
        f"POSMON_DAEMON_RECONCILE_INTERVAL_SECONDS: invalid value {value!r}; expected a number >= 0 and "
        f"<= 86400 (0: no periodic reconcile)"
    )


def test_stale_stream_default_is_three_missed_one_second_mark_frames(tmp_path: Path) -> None:
    assert load_settings(REPO_CONFIG, env={}).daemon.stale_stream_seconds == 3.0
    assert load_text(tmp_path, "").daemon.stale_stream_seconds == 3.0
    assert load_text(tmp_path, "[daemon]\nstale_stream_seconds = 10\n").daemon.stale_stream_seconds == 10.0
    text = REPO_CONFIG.read_text(encoding="utf-8")
    assert "the mark stream\n# ticks every second" in text and "reconcile_interval_seconds = 60.0" in text


def test_readme_configuration_table_documents_the_reconcile_and_stale_stream_keys() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") :]
    table = table[: table.index("\n## ")]
    assert "| `daemon.reconcile_interval_seconds` | `60` |" in table
    assert "| `daemon.stale_stream_seconds` | `3` |" in table


# --- what the CLI prints --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "[daemon]\nvenue = 'sim'\n",
            {"POSMON_ASTERAPI_SECRET": SECRET},
            "POSMON_ASTERAPI_SECRET: unknown environment override (value '***')",
        ),
        ("[risk]\nmax_hold_seconds = 1" + "0" * 400 + "\n", {}, "risk.max_hold_seconds: invalid value"),
        ("[risk]\nmax_hold_seconds = " + "9" * 5000 + "\n", {}, "risk.max_hold_seconds (line 2): invalid value"),
        ('[daemon]\n"a\\nb" = 1\n', {}, "daemon.a\\nb: unknown key"),
    ],
)
def test_the_cli_prints_one_line_and_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    env: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # were the configuration accepted, the daemon's store would land here
    path = tmp_path / "posmon.toml"
    path.write_text(text, encoding="utf-8")
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert cli.main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("posmon: configuration error: "), err
    assert expected in err and SECRET not in err
