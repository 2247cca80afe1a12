"""``[aster]`` settings: the TOML table plus ``POSMON_ASTER_<KEY>`` overrides, validated into one frozen object.

The adapter signs real orders with these credentials, so a typo must stop the daemon at start-up with a
message naming the key (or the environment variable), the offending value and what is allowed. Secrets are
never echoed: errors show them as ``'***'`` and they are left out of ``repr``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from posmon.settings_fields import ConfigError, KeySpec, Style, numeric, parse_section

__all__ = ["ENV_PREFIX", "MAINNET_REST_URL", "MAINNET_WS_URL", "AsterSettings"]

ENV_PREFIX = "POSMON_ASTER_"
SECTION = "aster"
MAINNET_REST_URL = "https://fapi.asterdex.com"
MAINNET_WS_URL = "wss://fstream.asterdex.com"
# A listenKey lives 60 minutes after its last keepalive; the keepalive must come sooner.
LISTEN_KEY_LIFETIME_SECONDS = 3600

Auth = Literal["v1", "v3"]
MarkStream = Literal["all", "symbols"]

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_PRIVATE_KEY_RE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9._-]*")


_Key = KeySpec
# An unknown key may be a misspelt secret: never echo a value whose name smells like one.
_STYLE = Style(secret_hints=("sec",), elide_tables=True)
# The EIP-712 domain's chainId is a uint256 (the signer writes it as 32 bytes).
UINT256_MAX = 2**256 - 1


def _url(schemes: tuple[str, ...], *, empty_ok: bool = False) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        return (empty_ok and v == "") or (
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
        "expected an http:// or https:// base URL without a trailing slash, or '' for the embedded simulator",
        _url(("http://", "https://"), empty_ok=True),
    ),
    _Key(
        "ws_url",
        "str",
        "expected a ws:// or wss:// base URL without a trailing slash, or '' for the embedded simulator",
        _url(("ws://", "wss://"), empty_ok=True),
    ),
    _Key("api_key", "str", "expected a non-empty API key string", lambda v: v != "", secret=True),
    _Key("api_secret", "str", "expected a non-empty API secret string", lambda v: v != "", secret=True),
    _Key(
        "signer",
        "str",
        "expected an address: 0x followed by 40 hex digits",
        lambda v: _ADDRESS_RE.fullmatch(v) is not None,
        public=True,
    ),
    _Key(
        "signer_private_key",
        "str",
        "expected a private key: 64 hex digits, optionally 0x-prefixed",
        lambda v: _PRIVATE_KEY_RE.fullmatch(v) is not None,
        secret=True,
    ),
    _Key(
        "user",
        "str",
        "expected an address: 0x followed by 40 hex digits",
        lambda v: _ADDRESS_RE.fullmatch(v) is not None,
    ),
    _Key("auth", "str", "expected one of 'v1', 'v3'", lambda v: v in ("v1", "v3"), public=True),
    numeric("chain_id", "int", ge=1, le=UINT256_MAX, note=" (EIP-712 uint256; 1666 mainnet, 714 testnet)"),
    numeric("recv_window_ms", "int", ge=1, le=60_000),
    _Key(
        "symbols",
        "symbols",
        "expected a list of unique upper-case symbols such as 'BTCUSDT' (empty: every symbol the venue lists)",
        _symbols_ok,
    ),
    _Key("mark_stream", "str", "expected one of 'all', 'symbols'", lambda v: v in ("all", "symbols")),
    numeric(
        "listen_key_keepalive_seconds",
        "float",
        gt=0,
        lt=LISTEN_KEY_LIFETIME_SECONDS,
        public=True,
        note=f" (a listenKey expires {LISTEN_KEY_LIFETIME_SECONDS // 60} minutes after its last keepalive)",
    ),
    numeric("request_timeout_seconds", "float", gt=0, le=600),
)


@dataclass(frozen=True, slots=True)
class AsterSettings:
    """How to reach and authenticate with Aster; secrets are excluded from ``repr``/``str``."""

    rest_url: str = MAINNET_REST_URL
    ws_url: str = MAINNET_WS_URL
    auth: Auth = "v1"
    api_key: str = field(default="", repr=False)
    api_secret: str = field(default="", repr=False)
    signer: str = ""
    signer_private_key: str = field(default="", repr=False)
    user: str = ""
    chain_id: int = 1666
    recv_window_ms: int = 5000
    symbols: tuple[str, ...] = ()
    mark_stream: MarkStream = "all"
    listen_key_keepalive_seconds: float = 1800.0
    request_timeout_seconds: float = 10.0

    @property
    def embedded(self) -> bool:
        """No URLs: posmon starts the Aster-protocol simulator on loopback and trades it."""
        return self.rest_url == "" and self.ws_url == ""

    @classmethod
    def from_config(cls, table: Mapping[str, Any], env: Mapping[str, str]) -> AsterSettings:
        """Validate ``[aster]`` and the ``POSMON_ASTER_*`` variables; raises ``ConfigError`` on the first problem."""
        values, where = parse_section(table, env, _KEYS, SECTION, ENV_PREFIX, style=_STYLE)
        return _build(values, where)


def _where(name: str, where: Mapping[str, str]) -> str:
    return where.get(name, f"{SECTION}.{name}")


def _build(values: dict[str, Any], where: Mapping[str, str]) -> AsterSettings:
    """Apply the defaults that depend on other keys, then check the chosen auth has its credentials."""
    auth: Auth = values.get("auth") or ("v3" if values.get("signer_private_key") else "v1")
    values["auth"] = auth
    if auth == "v1":
        for name in ("api_key", "api_secret"):
            if not values.get(name):
                raise ConfigError(
                    f"{_where(name, where)}: missing (value ''); auth 'v1' needs {SECTION}.api_key and "
                    f"{SECTION}.api_secret (or {ENV_PREFIX}API_KEY / {ENV_PREFIX}API_SECRET); "
                    f"for wallet signing set {SECTION}.signer_private_key and {SECTION}.user instead"
                )
    else:
        for name in ("signer_private_key", "user"):
            if not values.get(name):
                raise ConfigError(
                    f"{_where(name, where)}: missing (value ''); auth 'v3' needs {SECTION}.signer_private_key "
                    f"(the API wallet's key) and {SECTION}.user (the main wallet address); {SECTION}.signer "
                    f"defaults to the key's address"
                )
        derived = _address_of(values["signer_private_key"])
        signer = values.get("signer") or derived
        if signer.lower() != derived.lower():
            raise ConfigError(
                f"{_where('signer', where)}: invalid value {signer!r}; expected the address of "
                f"{SECTION}.signer_private_key ({derived}) or leave it unset"
            )
        values["signer"] = signer
    if (values.get("rest_url") == "") != (values.get("ws_url") == ""):
        name = "rest_url" if values.get("rest_url") == "" else "ws_url"
        raise ConfigError(
            f"{_where(name, where)}: invalid value ''; leave both {SECTION}.rest_url and "
            f"{SECTION}.ws_url empty for the embedded simulator, or set both"
        )
    return AsterSettings(**values)


def _address_of(private_key: str) -> str:
    """The checksummed address of a private key (validated by the key's pattern before we get here)."""
    try:
        return _derived_address(private_key)
    except Exception as exc:  # e.g. zero or >= curve order: the pattern cannot catch those
        raise ConfigError(
            f"{SECTION}.signer_private_key: invalid value '***'; not a valid secp256k1 private key "
            f"({type(exc).__name__})"
        ) from None


@functools.lru_cache(maxsize=4)
def _derived_address(private_key: str) -> str:
    """``Account.from_key`` runs pure-Python curve arithmetic (~1.5 ms): the CLI and the venue each validate."""
    from eth_account import Account  # deferred: only v3 configurations pay for importing eth-account

    return str(Account.from_key(private_key).address)
