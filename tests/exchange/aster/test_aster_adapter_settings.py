"""``[aster]`` settings: defaults, environment overrides, and errors that name the key, the value (secrets as
'***') and what is allowed; secrets never show in repr/str."""

from __future__ import annotations

from typing import Any

import pytest

from posmon.config import ConfigError
from posmon.exchange.aster.settings import AsterSettings
from tests.exchange.aster.test_aster_adapter_fakes import API_KEY, API_SECRET, PRIVATE_KEY, SIGNER, USER

V1 = {"api_key": API_KEY, "api_secret": API_SECRET}
V3 = {"signer_private_key": PRIVATE_KEY, "user": USER}


def error_of(table: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        AsterSettings.from_config(table, env or {})
    return str(info.value)


def test_v1_defaults() -> None:
    s = AsterSettings.from_config(V1, {})
    assert (
        s.auth,
        s.rest_url,
        s.ws_url,
        s.chain_id,
        s.recv_window_ms,
        s.symbols,
        s.mark_stream,
        s.listen_key_keepalive_seconds,
        s.request_timeout_seconds,
    ) == ("v1", "https://fapi.asterdex.com", "wss://fstream.asterdex.com", 1666, 5000, (), "all", 1800.0, 10.0)


def test_auth_defaults_to_v3_when_a_signer_key_is_set_and_the_signer_is_derived() -> None:
    s = AsterSettings.from_config(V3, {})
    assert (s.auth, s.signer, s.user) == ("v3", SIGNER, USER)


def test_testnet_table_with_every_key() -> None:
    s = AsterSettings.from_config(
        {
            **V3,
            "signer": SIGNER.lower(),
            "auth": "v3",
            "chain_id": 714,
            "rest_url": "https://fapi.asterdex-testnet.com",
            "ws_url": "wss://fstream.asterdex-testnet.com",
            "recv_window_ms": 60000,
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "mark_stream": "symbols",
            "listen_key_keepalive_seconds": 900,
            "request_timeout_seconds": 2.5,
        },
        {},
    )
    assert (s.chain_id, s.symbols, s.mark_stream, s.listen_key_keepalive_seconds) == (
        714,
        ("BTCUSDT", "ETHUSDT"),
        "symbols",
        900.0,
    )


def test_empty_urls_select_the_embedded_simulator() -> None:
    s = AsterSettings.from_config({**V1, "rest_url": "", "ws_url": ""}, {})
    assert s.embedded and (s.rest_url, s.ws_url) == ("", "")
    assert not AsterSettings.from_config(V1, {}).embedded


def test_only_one_empty_url_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"aster\.ws_url: invalid value ''; leave both"):
        AsterSettings.from_config({**V1, "ws_url": ""}, {})


def test_environment_overrides_the_table() -> None:
    s = AsterSettings.from_config(
        {**V1, "recv_window_ms": 5000},
        {
            "POSMON_ASTER_RECV_WINDOW_MS": "10000",
            "POSMON_ASTER_SYMBOLS": "BTCUSDT, ETHUSDT",
            "POSMON_ASTER_REQUEST_TIMEOUT_SECONDS": "3",
            "POSMON_OTHER": "ignored",
            "HOME": "/root",
        },
    )
    assert (s.recv_window_ms, s.symbols, s.request_timeout_seconds) == (10000, ("BTCUSDT", "ETHUSDT"), 3.0)


def test_credentials_can_come_from_the_environment_only() -> None:
    s = AsterSettings.from_config({}, {"POSMON_ASTER_API_KEY": API_KEY, "POSMON_ASTER_API_SECRET": API_SECRET})
    assert s.auth == "v1" and s.api_key == API_KEY


@pytest.mark.parametrize(
    ("table", "parts"),
    [
        ({**V1, "rest_url": "fapi.asterdex.com"}, ["aster.rest_url", "'fapi.asterdex.com'", "http://"]),
        ({**V1, "rest_url": "https://fapi.asterdex.com/"}, ["aster.rest_url", "trailing slash"]),
        ({**V1, "ws_url": "https://x"}, ["aster.ws_url", "'https://x'", "wss://"]),
        ({**V1, "auth": "v2"}, ["aster.auth", "'v2'", "'v1', 'v3'"]),
        ({**V1, "chain_id": "1666"}, ["aster.chain_id", "'1666'", "integer from 1 to 2**256-1"]),
        ({**V1, "chain_id": True}, ["aster.chain_id", "True", "integer"]),
        ({**V1, "recv_window_ms": 60001}, ["aster.recv_window_ms", "60001", "from 1 to 60000"]),
        ({**V1, "recv_window_ms": 0}, ["aster.recv_window_ms", "0", "from 1 to 60000"]),
        ({**V1, "symbols": ["btcusdt"]}, ["aster.symbols", "['btcusdt']", "upper-case"]),
        ({**V1, "symbols": "BTCUSDT"}, ["aster.symbols", "'BTCUSDT'", "list"]),
        ({**V1, "symbols": ["BTCUSDT", "BTCUSDT"]}, ["aster.symbols", "unique"]),
        ({**V1, "mark_stream": "some"}, ["aster.mark_stream", "'some'", "'all', 'symbols'"]),
        ({**V1, "listen_key_keepalive_seconds": 3600}, ["aster.listen_key_keepalive_seconds", "3600", "< 3600"]),
        ({**V1, "listen_key_keepalive_seconds": 0}, ["aster.listen_key_keepalive_seconds", "> 0"]),
        ({**V1, "request_timeout_seconds": -1}, ["aster.request_timeout_seconds", "-1", "> 0"]),
        ({**V1, "signer": "0x123"}, ["aster.signer", "'0x123'", "40 hex digits"]),
        ({**V1, "user": 42}, ["aster.user", "42", "40 hex digits"]),
        ({**V1, "wsurl": "wss://x"}, ["aster.wsurl", "unknown key", "'wss://x'", "'ws_url'"]),
        ({**V1, "extra": {"x": 1}}, ["aster.extra", "unknown key"]),
    ],
)
def test_each_bad_value_names_the_key_the_value_and_what_is_allowed(table: dict[str, Any], parts: list[str]) -> None:
    msg = error_of(table)
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize(
    ("env", "parts"),
    [
        ({"POSMON_ASTER_RECV_WINDOW_MS": "lots"}, ["POSMON_ASTER_RECV_WINDOW_MS", "'lots'", "integer"]),
        ({"POSMON_ASTER_SYMBOLS": "BTCUSDT,eth"}, ["POSMON_ASTER_SYMBOLS", "comma-separated"]),
        (
            {"POSMON_ASTER_MARKSTREAM": "all"},
            ["POSMON_ASTER_MARKSTREAM", "unknown environment override", "POSMON_ASTER_MARK_STREAM"],
        ),
        ({"POSMON_ASTER_listen_key_keepalive_seconds": "60"}, ["POSMON_ASTER_listen_key_keepalive_seconds", "unknown"]),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], parts: list[str]) -> None:
    msg = error_of(V1, env)
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize(
    ("table", "env", "parts"),
    [
        ({"api_key": API_KEY}, {}, ["aster.api_secret", "missing", "auth 'v1'"]),
        ({}, {}, ["aster.api_key", "missing", "signer_private_key"]),
        ({"auth": "v3", **V1}, {}, ["aster.signer_private_key", "missing", "auth 'v3'"]),
        ({"signer_private_key": PRIVATE_KEY}, {}, ["aster.user", "missing", "main wallet"]),
    ],
)
def test_missing_credentials_for_the_chosen_auth(table: dict[str, Any], env: dict[str, str], parts: list[str]) -> None:
    msg = error_of(table, env)
    for part in parts:
        assert part in msg, (part, msg)


def test_signer_that_does_not_match_the_key_is_refused() -> None:
    msg = error_of({**V3, "signer": USER})
    assert "aster.signer" in msg and USER in msg and SIGNER in msg


@pytest.mark.parametrize(
    ("table", "env"),
    [
        ({**V1, "api_secret": ""}, {}),
        ({**V3, "signer_private_key": PRIVATE_KEY[:-1] + "z"}, {}),
        ({**V3, "signer_private_key": "0x" + "0" * 64}, {}),
        (V1, {"POSMON_ASTER_API_SECRET": ""}),
        ({**V1, "api_secert": "hunter2-secret-value"}, {}),
        (V1, {"POSMON_ASTER_PRIVATE_KEY": "hunter2-secret-value"}),
    ],
)
def test_secrets_are_never_echoed_in_errors(table: dict[str, Any], env: dict[str, str]) -> None:
    msg = error_of(table, env)
    assert "'***'" in msg
    for secret in (PRIVATE_KEY[2:10], "hunter2", API_SECRET):
        assert secret not in msg


def test_secrets_are_not_in_repr_or_str() -> None:
    for s in (AsterSettings.from_config(V1, {}), AsterSettings.from_config(V3, {})):
        text = repr(s) + str(s)
        assert API_KEY not in text and API_SECRET not in text and PRIVATE_KEY[2:] not in text
        assert "rest_url" in text
