"""``[notify]`` settings: the TOML table plus ``POSMON_NOTIFY_<KEY>`` overrides, validated into one frozen object.

A notification that silently never leaves is worse than none, so a typo stops the daemon at start-up with a
message naming the key (or variable), the value and what is allowed. The bot token, the webhook URL (chat
webhooks embed their secret in it) and the webhook headers (``Authorization``) are secrets: errors show them
as ``'***'`` and they are left out of ``repr``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from posmon.config import ConfigError

__all__ = ["DEFAULT_KINDS", "ENV_PREFIX", "KINDS", "TELEGRAM_API_URL", "NotifySettings"]

SECTION = "notify"
ENV_PREFIX = "POSMON_NOTIFY_"
TELEGRAM_API_URL = "https://api.telegram.org"
# Every notice kind posmon raises; position actors raise the first five, the notify package the rest.
KINDS = ("tranche_opened", "tranche_extended", "exit", "protection_failed", "close_failed", "stream_down",
         "stream_restored", "restart_budget_exhausted")
DEFAULT_KINDS = ("exit", "protection_failed", "close_failed", "stream_down", "stream_restored",
                 "restart_budget_exhausted")

_Kind = Literal["str", "bool", "int", "float", "kinds", "headers"]
_ENV_BOOLS: Mapping[str, bool] = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    kind: _Kind
    allowed: str
    ok: Callable[[Any], bool]
    secret: bool = False


def _http_url(v: str, *, empty_ok: bool) -> bool:
    return (empty_ok and v == "") or (v.startswith(("http://", "https://")) and len(v) > v.index("://") + 3
                                      and " " not in v)


_KEYS: tuple[_Key, ...] = (
    _Key("telegram_bot_token", "str", "expected '' (Telegram off) or a bot token such as '123456:ABC-DEF...'",
         lambda v: v == "" or (":" in v and " " not in v and v.isascii() and v.isprintable()), secret=True),
    _Key("telegram_chat_id", "str", "expected '' (Telegram off), a numeric chat id or an '@channelname'",
         lambda v: v == "" or v.lstrip("-").isdigit() or (v.startswith("@") and len(v) > 1 and " " not in v)),
    _Key("telegram_api_url", "str", "expected an http:// or https:// base URL without a trailing slash",
         lambda v: _http_url(v, empty_ok=False) and not v.endswith("/")),
    _Key("webhook_url", "str", "expected '' (webhook off) or an http:// or https:// URL",
         lambda v: _http_url(v, empty_ok=True), secret=True),
    _Key("webhook_headers", "headers", "expected a table of header names to string values (environment: a JSON "
         "object)", lambda v: all(k and k.isascii() and ":" not in k and " " not in k for k in v), secret=True),
    _Key("kinds", "kinds", "expected a list of notice kinds from " + ", ".join(repr(k) for k in KINDS)
         + " (environment: comma-separated)", lambda v: len(set(v)) == len(v) and all(k in KINDS for k in v)),
    _Key("min_interval_seconds", "float", "expected a number >= 0 (seconds between two messages of a channel)",
         lambda v: v >= 0),
    _Key("max_retries", "int", "expected an integer from 0 to 100", lambda v: 0 <= v <= 100),
    _Key("retry_backoff_seconds", "float", "expected a number > 0 (first retry delay; doubles each retry)",
         lambda v: v > 0),
    _Key("retry_backoff_max_seconds", "float", "expected a number > 0 (longest retry delay)", lambda v: v > 0),
    _Key("queue_size", "int", "expected an integer from 1 to 100000", lambda v: 1 <= v <= 100_000),
    _Key("timeout_seconds", "float", "expected a number > 0 (per request)", lambda v: v > 0),
    _Key("stream_down_seconds", "float", "expected a number > 0 (price-stream silence that raises a notice)",
         lambda v: v > 0),
    _Key("final_flush_seconds", "float", "expected a number >= 0 (how long a stopping daemon waits for its "
         "last notice to go out)", lambda v: v >= 0),
    _Key("json_logs", "bool", "expected a boolean (true or false)", lambda v: True),
)
_BY_NAME: Mapping[str, _Key] = {k.name: k for k in _KEYS}


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
        if not isinstance(section, Mapping):
            raise ConfigError(f"{SECTION}: invalid value {section!r}; expected a table ([{SECTION}])")
        values: dict[str, Any] = {}
        where: dict[str, str] = {}
        for name, raw in section.items():
            key = _BY_NAME.get(name)
            if key is None:
                raise ConfigError(f"{SECTION}.{name}: unknown key (value {_shown(name, raw)!r}); allowed keys: "
                                  + ", ".join(repr(k.name) for k in _KEYS))
            where[name] = f"{SECTION}.{name}"
            values[name] = _convert(key, raw, where[name], from_env=False)
        for var in sorted(env):
            if not var.startswith(ENV_PREFIX):
                continue
            key = _BY_NAME.get(var[len(ENV_PREFIX):].lower())
            if key is None or var != var.upper():
                known = ", ".join(f"{ENV_PREFIX}{k.name.upper()}" for k in _KEYS)
                raise ConfigError(f"{var}: unknown environment override (value {_shown(var, env[var])!r}); "
                                  f"expected one of {known}")
            where[key.name] = var
            values[key.name] = _convert(key, env[var], var, from_env=True)
        settings = cls(**values)
        if bool(settings.telegram_bot_token) != bool(settings.telegram_chat_id):
            missing = "telegram_chat_id" if settings.telegram_bot_token else "telegram_bot_token"
            shown = "" if missing == "telegram_bot_token" else settings.telegram_chat_id
            raise ConfigError(f"{where.get(missing, SECTION + '.' + missing)}: missing (value {shown!r}); Telegram "
                              f"needs both {SECTION}.telegram_bot_token and {SECTION}.telegram_chat_id (or "
                              f"{ENV_PREFIX}TELEGRAM_BOT_TOKEN / {ENV_PREFIX}TELEGRAM_CHAT_ID); leave both empty "
                              f"to turn it off")
        if settings.retry_backoff_max_seconds < settings.retry_backoff_seconds:
            raise ConfigError(f"{where.get('retry_backoff_max_seconds', SECTION + '.retry_backoff_max_seconds')}: "
                              f"invalid value {settings.retry_backoff_max_seconds!r}; expected a number >= "
                              f"retry_backoff_seconds ({settings.retry_backoff_seconds!r})")
        return settings


def _shown(name: str, raw: Any) -> Any:
    """An unknown key may be a misspelt secret: never echo a value whose name smells like one."""
    lowered = name.lower()
    hidden = any(p in lowered for p in ("tok", "sec", "key", "pass", "auth", "url", "head", "hook"))
    return "***" if hidden else raw if not isinstance(raw, dict) else "{...}"


def _convert(key: _Key, raw: Any, where: str, *, from_env: bool) -> Any:
    try:
        value = _from_env(key.kind, raw) if from_env else _from_toml(key.kind, raw)
        good = key.ok(value)
    except ValueError:
        good = False
    if not good:
        shown = "***" if key.secret else raw
        allowed = "expected a boolean (true/false, 1/0 or yes/no)" if from_env and key.kind == "bool" else key.allowed
        raise ConfigError(f"{where}: invalid value {shown!r}; {allowed}")
    return value


def _from_toml(kind: _Kind, v: Any) -> Any:
    if kind == "str" and isinstance(v, str):
        return v
    if kind == "str" and isinstance(v, int) and not isinstance(v, bool):  # a numeric chat id written bare
        return str(v)
    if kind == "bool" and isinstance(v, bool):
        return v
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
        return v
    if kind == "float" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    if kind == "kinds" and isinstance(v, list) and all(isinstance(k, str) for k in v):
        return tuple(v)
    if kind == "headers" and isinstance(v, Mapping) and all(isinstance(x, str) for x in (*v.keys(), *v.values())):
        return dict(v)
    raise ValueError(f"wrong type for {kind}")


def _from_env(kind: _Kind, s: str) -> Any:
    match kind:
        case "str":
            return s
        case "bool":
            try:
                return _ENV_BOOLS[s.strip().lower()]
            except KeyError:
                raise ValueError("not a boolean") from None
        case "int":
            return int(s)
        case "float":
            f = float(s)
            if not math.isfinite(f):
                raise ValueError("not finite")
            return f
        case "kinds":
            return tuple(k.strip() for k in s.split(",") if k.strip())
        case "headers":
            try:
                return _from_toml("headers", json.loads(s))
            except json.JSONDecodeError:
                raise ValueError("not JSON") from None
    raise AssertionError(kind)
