"""[notify] settings, how notices read, and JSON-lines logs."""

from __future__ import annotations

import json

import pytest

from posmon.actors.messages import Notice
from posmon.config import ConfigError
from posmon.notify import DEFAULT_KINDS, NotifySettings
from posmon.notify.format import batch_text, notice_json
from posmon.notify.redact import origin, redact

TOKEN = "123456789:AAE-secret-bot-token"


def test_defaults_send_nothing_and_cover_exits_failures_streams_and_restarts() -> None:
    s = NotifySettings.from_config({}, {})
    assert not s.telegram and not s.webhook
    assert s.kinds == DEFAULT_KINDS
    assert {"exit", "protection_failed", "close_failed", "stream_down", "restart_budget_exhausted"} <= set(s.kinds)
    assert s.telegram_api_url == "https://api.telegram.org" and s.stream_down_seconds == 30


def test_environment_overrides_the_file() -> None:
    s = NotifySettings.from_config(
        {"telegram_chat_id": 42, "kinds": ["exit"], "min_interval_seconds": 2},
        {
            "POSMON_NOTIFY_TELEGRAM_BOT_TOKEN": TOKEN,
            "POSMON_NOTIFY_KINDS": "exit, stream_down",
            "POSMON_NOTIFY_WEBHOOK_HEADERS": '{"Authorization": "Bearer x"}',
            "POSMON_NOTIFY_JSON_LOGS": "yes",
            "POSMON_NOTIFY_MAX_RETRIES": "3",
            "POSMON_ASTER_AUTH": "v3",
        },
    )
    assert s.telegram and s.telegram_chat_id == "42" and s.telegram_bot_token == TOKEN
    assert s.kinds == ("exit", "stream_down") and s.webhook_headers == {"Authorization": "Bearer x"}
    assert s.json_logs is True and s.max_retries == 3 and s.min_interval_seconds == 2.0
    assert TOKEN not in repr(s) and "Bearer" not in repr(s)


@pytest.mark.parametrize(
    ("section", "env", "message"),
    [
        (
            {"kinds": ["exit", "exits"]},
            {},
            r"notify\.kinds: invalid value \['exit', 'exits'\]; expected a list of "
            r"notice kinds from 'tranche_opened'",
        ),
        ({"min_interval_seconds": -1}, {}, r"notify\.min_interval_seconds: invalid value -1; expected a number >= 0"),
        ({}, {"POSMON_NOTIFY_QUEUE_SIZE": "0"}, r"POSMON_NOTIFY_QUEUE_SIZE: invalid value '0'; expected an integer"),
        ({"telegram_api_url": "api.telegram.org"}, {}, r"notify\.telegram_api_url: invalid value 'api\.telegram\.org'"),
        ({"timeout": 5}, {}, r"notify\.timeout: unknown key \(value 5\); allowed keys: 'telegram_bot_token'"),
        ({}, {"POSMON_NOTIFY_TOKEN": TOKEN}, r"POSMON_NOTIFY_TOKEN: unknown environment override \(value '\*\*\*'\)"),
        ({"telegram_chat_id": "42"}, {}, r"notify\.telegram_bot_token: missing .* needs both"),
        ({"telegram_bot_token": "no colon"}, {}, r"notify\.telegram_bot_token: invalid value '\*\*\*'"),
        ({"webhook_url": "ftp://x/secret"}, {}, r"notify\.webhook_url: invalid value '\*\*\*'"),
        ({"retry_backoff_seconds": 10, "retry_backoff_max_seconds": 5}, {}, r"retry_backoff_max_seconds: invalid"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(section: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        NotifySettings.from_config(section, env)
    assert TOKEN not in str(err.value) and "secret" not in str(err.value)


def test_an_exit_reads_with_its_pnl_and_goes_to_json_with_plain_values() -> None:
    from decimal import Decimal

    n = Notice(
        "exit",
        "aster",
        "BTCUSDT",
        "LONG",
        "tranche 2 closed by SL, realized PnL -4.1000",
        False,
        {"pnl": Decimal("-4.1"), "reason": "SL"},
    )
    assert batch_text([n]) == "[exit] aster BTCUSDT LONG: tranche 2 closed by SL, realized PnL -4.1000"
    assert json.loads(json.dumps(notice_json(n)))["data"] == {"pnl": "-4.1", "reason": "SL"}


def test_a_long_batch_is_cut_to_the_limit_and_says_how_many_were_left_out() -> None:
    notices = [Notice("exit", "aster", "BTCUSDT", "LONG", "x" * 300) for _ in range(30)]
    text = batch_text(notices, limit=4096)
    assert len(text) <= 4096 and text.endswith(f"... and {30 - text.count('[exit]')} more")
    assert len(batch_text([Notice("exit", "v", "", "", "y" * 9000)], limit=4096)) <= 4096


def test_redaction_masks_secrets_and_origin_drops_the_path() -> None:
    assert (
        redact(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage", [TOKEN])
        == "POST https://api.telegram.org/bot***/sendMessage"
    )
    assert origin("https://hooks.example.com:8443/services/T0/B0/secret?x=1") == "https://hooks.example.com:8443"
