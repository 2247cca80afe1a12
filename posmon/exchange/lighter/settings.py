"""``[lighter]`` settings: the TOML table plus ``POSMON_LIGHTER_<KEY>`` overrides, validated into one frozen object.

The adapter signs real orders with the API key, so a typo must stop the daemon at start-up with a message
naming the key (or the environment variable), the offending value and what is allowed. The API private key
is never echoed: errors show it as ``'***'`` and it is left out of ``repr``.

Both URLs empty means "embedded": posmon starts the Lighter-protocol simulator on loopback and fills in
its URLs (and, when not configured, its account) before the venue opens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from posmon.settings_fields import ENV_BOOLS, ConfigError, KeySpec, Style, numeric, parse_section

__all__ = ["ENV_PREFIX", "MAINNET_REST_URL", "MAINNET_WS_URL", "LighterSettings"]

ENV_PREFIX = "POSMON_LIGHTER_"
SECTION = "lighter"
MAINNET_REST_URL = "https://mainnet.zklighter.elliot.ai"
MAINNET_WS_URL = "wss://mainnet.zklighter.elliot.ai"
MAX_AUTH_TOKEN_SECONDS = 8 * 3600  # Lighter refuses auth tokens whose deadline is further away
WS_SILENCE_LIMIT_SECONDS = 120.0  # the server drops a connection that sent nothing for 2 minutes

Tier = Literal["standard", "premium"]

_HEX_KEY_RE = re.compile(r"(0x)?(?:[0-9a-fA-F]{2}){32,64}")
_SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9._-]*")


_Key = KeySpec
# An unknown key may be a misspelt secret: never echo a value whose name smells like one. Booleans also read
# on/off from the environment, and a bad one is explained by the key's own words.
_STYLE = Style(
    secret_hints=("sec",), elide_tables=True, env_bools={**ENV_BOOLS, "on": True, "off": False}, env_bool_allowed=None
)
# The signer takes the account index as a C long long and the chain id as a C int (posmon/exchange/lighter/signer.py).
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def _url(schemes: tuple[str, ...]) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        return v == "" or (
            isinstance(v, str)
            and v.startswith(schemes)
            and "://" in v
            and len(v) > v.index("://") + 3
            and not v.endswith("/")
        )

    return ok


def _symbols_ok(v: tuple[str, ...]) -> bool:
    return len(set(v)) == len(v) and all(_SYMBOL_RE.fullmatch(s) for s in v)


_KEYS: tuple[_Key, ...] = (
    _Key(
        "rest_url",
        "str",
        "expected an http:// or https:// base URL without a trailing slash (e.g. "
        f"{MAINNET_REST_URL!r}), or '' for the embedded simulator",
        _url(("http://", "https://")),
    ),
    _Key(
        "ws_url",
        "str",
        "expected a ws:// or wss:// base URL without a trailing slash (e.g. "
        f"{MAINNET_WS_URL!r}; '/stream' is added), or '' for the embedded simulator",
        _url(("ws://", "wss://")),
    ),
    numeric("account_index", "int", ge=0, le=INT64_MAX, noun="the account's index, an integer"),
    numeric("api_key_index", "int", ge=0, le=254, noun="an API key index, an integer", public=True),
    _Key(
        "api_private_key",
        "str",
        "expected the API key's private key: 64 to 128 hex digits, optionally 0x-prefixed",
        lambda v: _HEX_KEY_RE.fullmatch(v) is not None,
        secret=True,
    ),
    numeric("chain_id", "int", ge=1, le=INT32_MAX, note=" (304 mainnet, 300 testnet)"),
    _Key(
        "symbols",
        "symbols",
        "expected a list of unique Lighter market symbols such as 'BTC' (empty: every active market)",
        _symbols_ok,
    ),
    numeric(
        "close_slippage_pct",
        "decimal",
        gt=0,
        le=50,
        noun="a percentage",
        note=": the first bound of a close's worst price through the mark",
    ),
    numeric(
        "close_slippage_step_pct",
        "decimal",
        gt=0,
        le=50,
        noun="a percentage",
        note=": how much each retry of an unfilled close widens the bound",
    ),
    numeric(
        "close_slippage_max_pct",
        "decimal",
        gt=0,
        le=50,
        noun="a percentage",
        note=": the widest bound before the operator is alerted",
    ),
    _Key(
        "tier",
        "str",
        "expected one of 'standard', 'premium' (the account's Lighter tier: its rate limits)",
        lambda v: v in ("standard", "premium"),
    ),
    _Key(
        "native_conditional_orders",
        "bool",
        "expected true or false (Lighter's own stop/take-profit orders; off by default: posmon holds the exits itself)",
        lambda v: isinstance(v, bool),
    ),
    numeric("request_timeout_seconds", "float", gt=0, le=600),
    numeric(
        "auth_token_seconds",
        "float",
        ge=60,
        le=MAX_AUTH_TOKEN_SECONDS,
        public=True,
        note=" (lifetime of the auth tokens for private reads and the orders stream)",
    ),
    numeric(
        "ws_ping_seconds",
        "float",
        gt=0,
        lt=int(WS_SILENCE_LIMIT_SECONDS),
        note=" (the server closes a connection that sent nothing for 2 minutes)",
    ),
)


@dataclass(frozen=True, slots=True)
class LighterSettings:
    """How to reach and sign for a Lighter account; the private key is excluded from ``repr``/``str``."""

    rest_url: str = MAINNET_REST_URL
    ws_url: str = MAINNET_WS_URL
    account_index: int | None = None
    api_key_index: int = 3
    api_private_key: str = field(default="", repr=False)
    chain_id: int = 304
    symbols: tuple[str, ...] = ()
    close_slippage_pct: Decimal = Decimal("1.0")
    close_slippage_step_pct: Decimal = Decimal("1.0")
    close_slippage_max_pct: Decimal = Decimal("5.0")
    tier: Tier = "standard"
    native_conditional_orders: bool = False
    request_timeout_seconds: float = 10.0
    auth_token_seconds: float = 3600.0
    ws_ping_seconds: float = 60.0

    @property
    def embedded(self) -> bool:
        """No URLs: posmon starts the Lighter-protocol simulator on loopback and trades it."""
        return self.rest_url == "" and self.ws_url == ""

    @property
    def stream_url(self) -> str:
        """The websocket endpoint: ``<ws_url>/stream`` (a ``ws_url`` already ending in ``/stream`` is kept)."""
        return self.ws_url if self.ws_url.endswith("/stream") else f"{self.ws_url}/stream"

    @classmethod
    def from_config(cls, table: Mapping[str, Any], env: Mapping[str, str]) -> LighterSettings:
        """Validate ``[lighter]`` and ``POSMON_LIGHTER_*``; raises ``ConfigError`` on the first problem."""
        values, where = parse_section(table, env, _KEYS, SECTION, ENV_PREFIX, style=_STYLE)
        return _build(values, where)


def _where(name: str, where: Mapping[str, str]) -> str:
    return where.get(name, f"{SECTION}.{name}")


def _build(values: dict[str, Any], where: Mapping[str, str]) -> LighterSettings:
    """Cross-key checks: both URLs or neither, credentials for a live account, an ordered slippage ladder."""
    if (values.get("rest_url") == "") != (values.get("ws_url") == ""):
        name = "rest_url" if values.get("rest_url") == "" else "ws_url"
        raise ConfigError(
            f"{_where(name, where)}: invalid value ''; leave both {SECTION}.rest_url and "
            f"{SECTION}.ws_url empty for the embedded simulator, or set both"
        )
    settings = LighterSettings(**values)
    if not settings.embedded:
        if settings.account_index is None:
            raise ConfigError(
                f"{SECTION}.account_index: missing; a live Lighter account needs its index "
                f"({SECTION}.account_index or {ENV_PREFIX}ACCOUNT_INDEX)"
            )
        if not settings.api_private_key:
            raise ConfigError(
                f"{SECTION}.api_private_key: missing (value ''); a live Lighter account needs the "
                f"API key's private key (put it in {ENV_PREFIX}API_PRIVATE_KEY, not in the file)"
            )
    if settings.close_slippage_max_pct < settings.close_slippage_pct:
        raise ConfigError(
            f"{_where('close_slippage_max_pct', where)}: invalid value {settings.close_slippage_max_pct}; "
            f"expected a percentage >= {SECTION}.close_slippage_pct ({settings.close_slippage_pct})"
        )
    return settings
