"""``[lighter]`` settings: defaults, environment overrides, and errors that name the key, value and what is allowed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from posmon.config import ConfigError
from posmon.exchange.lighter.settings import LighterSettings

KEY = "0x" + "ab" * 40
LIVE = {
    "rest_url": "https://mainnet.zklighter.elliot.ai",
    "ws_url": "wss://mainnet.zklighter.elliot.ai",
    "account_index": 281474,
    "api_private_key": KEY,
}


def test_empty_urls_mean_the_embedded_simulator_with_defaults() -> None:
    s = LighterSettings.from_config({"rest_url": "", "ws_url": ""}, {})
    assert s.embedded and s.chain_id == 304 and s.tier == "standard" and not s.native_conditional_orders
    assert (s.close_slippage_pct, s.close_slippage_step_pct, s.close_slippage_max_pct) == (
        Decimal("1.0"),
        Decimal("1.0"),
        Decimal("5.0"),
    )


def test_live_settings_and_environment_overrides() -> None:
    s = LighterSettings.from_config(
        {**LIVE, "symbols": ["BTC", "ETH"], "close_slippage_pct": 0.5},
        {
            "POSMON_LIGHTER_TIER": "premium",
            "POSMON_LIGHTER_NATIVE_CONDITIONAL_ORDERS": "true",
            "POSMON_LIGHTER_SYMBOLS": "DOGE,BTC",
            "POSMON_LIGHTER_CLOSE_SLIPPAGE_MAX_PCT": "3",
        },
    )
    assert (s.tier, s.native_conditional_orders, s.symbols) == ("premium", True, ("DOGE", "BTC"))
    assert s.close_slippage_pct == Decimal("0.5") and s.close_slippage_max_pct == Decimal(3)
    assert s.stream_url == "wss://mainnet.zklighter.elliot.ai/stream"


@pytest.mark.parametrize(
    ("table", "env", "words"),
    [
        ({"tier": "gold"}, {}, ["lighter.tier", "'gold'", "'standard', 'premium'"]),
        ({"close_slippage_pct": 0}, {}, ["lighter.close_slippage_pct", "0", "> 0"]),
        ({}, {"POSMON_LIGHTER_API_KEY_INDEX": "300"}, ["POSMON_LIGHTER_API_KEY_INDEX", "'300'", "0 to 254"]),
        ({"rest_url": "ftp://x"}, {}, ["lighter.rest_url", "ftp://x", "http://"]),
        ({"ws_pingseconds": 3}, {}, ["lighter.ws_pingseconds", "unknown key"]),
        ({}, {"POSMON_LIGHTER_NATIVE_CONDITIONAL_ORDERS": "maybe"}, ["NATIVE_CONDITIONAL_ORDERS", "true or false"]),
        ({"close_slippage_pct": 2, "close_slippage_max_pct": 1}, {}, ["lighter.close_slippage_max_pct", ">="]),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(table: dict, env: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        LighterSettings.from_config({**LIVE, **table}, env)
    for word in words:
        assert word in str(err.value)


def test_live_account_needs_its_credentials() -> None:
    with pytest.raises(ConfigError, match=r"lighter\.account_index: missing"):
        LighterSettings.from_config({k: v for k, v in LIVE.items() if k != "account_index"}, {})
    with pytest.raises(ConfigError, match=r"lighter\.api_private_key: missing"):
        LighterSettings.from_config({k: v for k, v in LIVE.items() if k != "api_private_key"}, {})
    with pytest.raises(ConfigError, match="leave both"):
        LighterSettings.from_config({**LIVE, "ws_url": ""}, {})


def test_the_private_key_is_never_shown() -> None:
    s = LighterSettings.from_config(LIVE, {})
    assert KEY not in repr(s) and "ab" * 40 not in str(s)
    with pytest.raises(ConfigError) as err:
        LighterSettings.from_config(LIVE, {"POSMON_LIGHTER_API_PRIVATE_KEY": "0xnothex-secret"})
    assert "nothex-secret" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(ConfigError) as err:
        LighterSettings.from_config({**LIVE, "api_privat_key": "hunter2"}, {})
    assert "hunter2" not in str(err.value)
