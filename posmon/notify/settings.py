"""``[notify]`` settings: the TOML table plus ``POSMON_NOTIFY_<KEY>`` overrides, validated into one frozen object.

A notification that silently never leaves is worse than none, so a typo stops the daemon at start-up with a
message naming the key (or variable), the value and what is allowed. The bot token, the webhook URL (chat
webhooks embed their secret in it) and the webhook headers (``Authorization``) are secrets: errors show them
as ``'***'`` and they are left out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from posmon.notify.kinds import NoticeKind
from posmon.settings_fields import ConfigError, KeySpec, Style, numeric, parse_section

__all__ = ["DEFAULT_KINDS", "ENV_PREFIX", "KINDS", "TELEGRAM_API_URL", "NotifySettings"]

SECTION = "notify"
ENV_PREFIX = "POSMON_NOTIFY_"
TELEGRAM_API_URL = "https://api.telegram.org"
# Every notice kind posmon raises may be chosen; these are sent when [notify] kinds is not set.
KINDS = tuple(NoticeKind)
DEFAULT_KINDS = (
    NoticeKind.EXIT,
    NoticeKind.PROTECTION_FAILED,
    NoticeKind.CLOSE_FAILED,
    NoticeKind.RISK_LIMIT,
    NoticeKind.STREAM_DOWN,
    NoticeKind.STREAM_RESTORED,
    NoticeKind.RESTART_BUDGET_EXHAUSTED,
    NoticeKind.TAKEOVER,
    NoticeKind.LEASE_LOST,
    # A hedge pair's notices: a leg exit, the other leg's close or stop, a pair TP/SL, a failed entry, legs out of
    # balance, a leg that could not be told: each says a hedge changed shape, and each is rare (once per pair event).
    NoticeKind.PAIR_LEG_EXIT,
    NoticeKind.PAIR_EXIT,
    NoticeKind.PAIR_CLOSED,
    NoticeKind.PAIR_IMBALANCE,
    NoticeKind.PAIR_ENTRY_FAILED,
    NoticeKind.PAIR_LEG_UNREACHABLE,
)

_Key = KeySpec
# An unknown key or variable may be a misspelt secret: never echo a value whose name smells like one. A bare TOML
# integer is read as a string (a numeric chat id written without quotes).
_STYLE = Style(secret_hints=("tok", "sec", "url", "head", "hook"), elide_tables=True, toml_int_as_str=True)


def _http_url(v: str, *, empty_ok: bool) -> bool:
    return (empty_ok and v == "") or (
        v.startswith(("http://", "https://")) and len(v) > v.index("://") + 3 and " " not in v
    )


_KEYS: tuple[_Key, ...] = (
    _Key(
        "telegram_bot_token",
        "str",
        "expected '' (Telegram off) or a bot token such as '123456:ABC-DEF...'",
        lambda v: v == "" or (":" in v and " " not in v and v.isascii() and v.isprintable()),
        secret=True,
    ),
    _Key(
        "telegram_chat_id",
        "str",
        "expected '' (Telegram off), a numeric chat id or an '@channelname'",
        lambda v: v == "" or v.lstrip("-").isdigit() or (v.startswith("@") and len(v) > 1 and " " not in v),
    ),
    _Key(
        "telegram_api_url",
        "str",
        "expected an http:// or https:// base URL without a trailing slash",
        lambda v: _http_url(v, empty_ok=False) and not v.endswith("/"),
    ),
    _Key(
        "webhook_url",
        "str",
        "expected '' (webhook off) or an http:// or https:// URL",
        lambda v: _http_url(v, empty_ok=True),
        secret=True,
    ),
    _Key(
        "webhook_headers",
        "headers",
        "expected a table of header names to string values (environment: a JSON object)",
        lambda v: all(k and k.isascii() and ":" not in k and " " not in k for k in v),
        secret=True,
    ),
    _Key(
        "kinds",
        "names",
        "expected a list of notice kinds from "
        + ", ".join(repr(k.value) for k in KINDS)
        + " (environment: comma-separated)",
        lambda v: len(set(v)) == len(v) and all(k in KINDS for k in v),
    ),
    numeric("min_interval_seconds", "float", ge=0, le=3600, note=" (seconds between two messages of a channel)"),
    numeric("max_retries", "int", ge=0, le=100),
    numeric("retry_backoff_seconds", "float", gt=0, le=3600, note=" (first retry delay; doubles each retry)"),
    numeric("retry_backoff_max_seconds", "float", gt=0, le=86400, note=" (longest retry delay)"),
    numeric("queue_size", "int", ge=1, le=100_000),
    numeric("timeout_seconds", "float", gt=0, le=600, note=" (per request)"),
    numeric("stream_down_seconds", "float", gt=0, le=86400, note=" (price-stream silence that raises a notice)"),
    numeric(
        "final_flush_seconds",
        "float",
        ge=0,
        le=600,
        note=" (how long a stopping daemon waits for its last notice to go out)",
    ),
    _Key("json_logs", "bool", "expected a boolean (true or false)", lambda v: True),
)


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Where notices go (Telegram, a JSON webhook, both or neither) and how hard posmon tries to deliver them."""

    telegram_bot_token: str = field(default="", repr=False)
    telegram_chat_id: str = ""
    telegram_api_url: str = TELEGRAM_API_URL
    webhook_url: str = field(default="", repr=False)
    webhook_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    kinds: tuple[str, ...] = DEFAULT_KINDS
    min_interval_seconds: float = 1.0
    max_retries: int = 5
    retry_backoff_seconds: float = 1.0
    retry_backoff_max_seconds: float = 60.0
    queue_size: int = 100
    timeout_seconds: float = 10.0
    stream_down_seconds: float = 30.0
    final_flush_seconds: float = 10.0
    json_logs: bool = False

    @property
    def telegram(self) -> bool:
        return bool(self.telegram_bot_token and self.telegram_chat_id)

    @property
    def webhook(self) -> bool:
        return bool(self.webhook_url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a log line."""
        return tuple(s for s in (self.telegram_bot_token, self.webhook_url, *self.webhook_headers.values()) if s)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], env: Mapping[str, str]) -> NotifySettings:
        """Validate ``[notify]`` and the ``POSMON_NOTIFY_*`` variables; raises ``ConfigError`` on the first problem."""
        values, where = parse_section(section, env, _KEYS, SECTION, ENV_PREFIX, style=_STYLE)
        settings = cls(**values)
        if bool(settings.telegram_bot_token) != bool(settings.telegram_chat_id):
            missing = "telegram_chat_id" if settings.telegram_bot_token else "telegram_bot_token"
            shown = "" if missing == "telegram_bot_token" else settings.telegram_chat_id
            raise ConfigError(
                f"{where.get(missing, SECTION + '.' + missing)}: missing (value {shown!r}); Telegram "
                f"needs both {SECTION}.telegram_bot_token and {SECTION}.telegram_chat_id (or "
                f"{ENV_PREFIX}TELEGRAM_BOT_TOKEN / {ENV_PREFIX}TELEGRAM_CHAT_ID); leave both empty "
                f"to turn it off"
            )
        if settings.retry_backoff_max_seconds < settings.retry_backoff_seconds:
            raise ConfigError(
                f"{where.get('retry_backoff_max_seconds', SECTION + '.retry_backoff_max_seconds')}: "
                f"invalid value {settings.retry_backoff_max_seconds!r}; expected a number >= "
                f"retry_backoff_seconds ({settings.retry_backoff_seconds!r})"
            )
        return settings
