"""``[api]`` settings: the TOML table plus ``POSMON_API_<KEY>`` overrides, validated into one frozen object.

The API can open and close real positions, so anything but a loopback bind must carry a bearer token, and a
bad value stops the daemon at start-up naming the key (or variable), the value and what is allowed. The token
is a secret: errors show it as ``'***'`` and it is left out of ``repr``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from posmon.config import ConfigError

__all__ = ["ENV_PREFIX", "MIN_TOKEN_LENGTH", "TOKEN_ENV", "ApiSettings", "is_loopback"]

SECTION = "api"
ENV_PREFIX = "POSMON_API_"
TOKEN_ENV = "POSMON_API_TOKEN"
MIN_TOKEN_LENGTH = 16

_Kind = Literal["str", "bool", "int", "float"]


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    kind: _Kind
    allowed: str
    ok: Callable[[Any], bool]
    secret: bool = False


def _token_ok(v: str) -> bool:
    return v == "" or (len(v) >= MIN_TOKEN_LENGTH and v.isascii() and v.isprintable() and " " not in v)


_KEYS: tuple[_Key, ...] = (
    _Key("enabled", "bool", "expected a boolean (true or false)", lambda v: True),
    _Key("host", "str", "expected an IP address or host name to listen on, e.g. '127.0.0.1' or '0.0.0.0'",
         lambda v: v != "" and v.strip() == v and " " not in v),
    _Key("port", "int", "expected an integer from 0 to 65535 (0: any free port)", lambda v: 0 <= v <= 65535),
    _Key("token", "str", f"expected '' (no token) or at least {MIN_TOKEN_LENGTH} printable ASCII characters "
         "without spaces", _token_ok, secret=True),
    _Key("health_timeout_seconds", "float", "expected a number > 0", lambda v: v > 0),
)
_BY_NAME: Mapping[str, _Key] = {k.name: k for k in _KEYS}
_ENV_BOOLS: Mapping[str, bool] = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


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
        if settings.enabled and not settings.loopback and not settings.token:
            raise ConfigError(
                f"{where.get('host', SECTION + '.host')}: invalid value {settings.host!r} without a token; the API "
                f"can open and close positions, so listening beyond loopback needs {SECTION}.token (or "
                f"{TOKEN_ENV}); expected a loopback host such as '127.0.0.1', or set a token")
        return settings


def _shown(name: str, raw: Any) -> Any:
    """An unknown key may be a misspelt token: never echo a value whose name smells like a secret."""
    lowered = name.lower()
    return "***" if any(p in lowered for p in ("tok", "sec", "key", "pass", "auth")) else raw


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
    if kind == "bool" and isinstance(v, bool):
        return v
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
        return v
    if kind == "float" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
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
    raise AssertionError(kind)
