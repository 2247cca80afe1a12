"""``[api]`` settings: the TOML table plus ``POSMON_API_<KEY>`` overrides, validated into one frozen object.

The API can open and close real positions, so anything but a loopback bind must carry a bearer token, and a
bad value stops the daemon at start-up naming the key (or variable), the value and what is allowed. The token
is a secret: errors show it as ``'***'`` and it is left out of ``repr``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from posmon.settings_fields import ConfigError, KeySpec, Style, numeric, parse_section

__all__ = ["ENV_PREFIX", "MIN_TOKEN_LENGTH", "TOKEN_ENV", "ApiSettings", "is_loopback"]

SECTION = "api"
ENV_PREFIX = "POSMON_API_"
TOKEN_ENV = "POSMON_API_TOKEN"
MIN_TOKEN_LENGTH = 16

_Key = KeySpec
# An unknown key or variable may be a misspelt token: never echo a value whose name smells like a secret.
_STYLE = Style(secret_hints=("tok", "sec"))


def _token_ok(v: str) -> bool:
    return v == "" or (len(v) >= MIN_TOKEN_LENGTH and v.isascii() and v.isprintable() and " " not in v)


_KEYS: tuple[_Key, ...] = (
    _Key("enabled", "bool", "expected a boolean (true or false)", lambda v: True),
    _Key(
        "host",
        "str",
        "expected an IP address or host name to listen on, e.g. '127.0.0.1' or '0.0.0.0'",
        lambda v: v != "" and v.strip() == v and " " not in v,
    ),
    numeric("port", "int", ge=0, le=65535, note=" (0: any free port)"),
    _Key(
        "token",
        "str",
        f"expected '' (no token) or at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces",
        _token_ok,
        secret=True,
    ),
    numeric("health_timeout_seconds", "float", gt=0, le=600),
    _Key(
        "allowed_hosts",
        "names",
        "expected a list of host names (no port) the API also answers to besides "
        "loopback and its own address, e.g. ['posmon.internal']",
        lambda v: (
            len(v) <= 64
            and all(
                0 < len(h) <= 253 and h.isascii() and h.isprintable() and not any(c in h for c in " /@:") for h in v
            )
        ),
    ),
)


def is_loopback(host: str) -> bool:
    """Only ``localhost`` and loopback IP literals count: any other name may resolve to a public interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the control API listens and the bearer token it demands (never shown in ``repr``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8787
    token: str = field(default="", repr=False)
    health_timeout_seconds: float = 5.0
    allowed_hosts: tuple[str, ...] = ()  # names (besides loopback and the bound address) a Host header may carry

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def client_url(self) -> str:
        """The base URL a client on this machine uses: a wildcard bind is reached through loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(self.host, self.host).strip("[]")
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @classmethod
    def from_config(cls, section: Mapping[str, Any], env: Mapping[str, str]) -> ApiSettings:
        """Validate ``[api]`` and the ``POSMON_API_*`` variables; raises ``ConfigError`` on the first problem."""
        values, where = parse_section(section, env, _KEYS, SECTION, ENV_PREFIX, style=_STYLE)
        settings = cls(**values)
        if settings.enabled and not settings.loopback and not settings.token:
            raise ConfigError(
                f"{where.get('host', SECTION + '.host')}: invalid value {settings.host!r} without a token; the API "
                f"can open and close positions, so listening beyond loopback needs {SECTION}.token (or "
                f"{TOKEN_ENV}); expected a loopback host such as '127.0.0.1', or set a token"
            )
        return settings
