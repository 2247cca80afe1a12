"""``[cluster]``: whether this instance takes part in active-standby failover, its name and its lease periods."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posmon.config import ConfigError
from posmon.store.location import is_url

KEYS = ("enabled", "instance", "lease_seconds", "lease_renew_seconds")
# A longer lease hides a dead owner for longer (the takeover takes up to about twice the lease); a shorter one
# turns a store hiccup into a failover.
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 1.0, 600.0


def default_instance() -> str:
    """host-pid: unique among live processes, and says where to look."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    enabled: bool = False
    instance: str = ""
    lease_seconds: float = 10.0
    lease_renew_seconds: float = 3.0

    @property
    def margin(self) -> float:
        """How long before its lease can expire an owner stops sending: a quarter of the lease (always more
        than one renewal period short of it, as ``renew < lease / 2``)."""
        return self.lease_seconds / 4

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], store: str) -> ClusterSettings:
        """Validate ``[cluster]``; ``store`` (``daemon.store``) must be a PostgreSQL URL when it is enabled."""
        for key in raw:
            if key not in KEYS:
                raise ConfigError(f"cluster.{key}: unknown key; allowed keys: {', '.join(KEYS)}")
        enabled = raw.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ConfigError(f"cluster.enabled: invalid value {enabled!r}; expected true or false")
        instance = raw.get("instance", "")
        if not isinstance(instance, str) or len(instance) > 200 or (instance and not instance.strip()):
            raise ConfigError(f"cluster.instance: invalid value {instance!r}; expected a name (default: host-pid)")
        lease = _seconds(raw, "lease_seconds", 10.0)
        renew = _seconds(raw, "lease_renew_seconds", 3.0)
        if not MIN_LEASE_SECONDS <= lease <= MAX_LEASE_SECONDS:
            raise ConfigError(
                f"cluster.lease_seconds: invalid value {lease!r}; expected {MIN_LEASE_SECONDS:g} to "
                f"{MAX_LEASE_SECONDS:g} seconds"
            )
        if not 0 < renew < lease / 2:
            raise ConfigError(
                f"cluster.lease_renew_seconds: invalid value {renew!r}; expected more than 0 and less than half of "
                f"cluster.lease_seconds ({lease:g}), so that a renewal can fail once before the lease runs out"
            )
        if enabled and not is_url(store):
            raise ConfigError(
                f"cluster.enabled: the cluster coordinates through a shared PostgreSQL store, but daemon.store is "
                f"{store!r}; set it (or posmon run --store) to postgresql://user@host:port/db"
            )
        return cls(enabled, instance.strip() or default_instance(), lease, renew)


def _seconds(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"cluster.{key}: invalid value {value!r}; expected a number of seconds")
    return float(value)
