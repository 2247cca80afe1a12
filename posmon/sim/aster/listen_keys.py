"""User-data listen keys: one live key per account, valid for a fixed time on the server clock.

Expiry is what clients get wrong (no keepalive, or no reconnect after ``listenKeyExpired``),
so the rule is the venue's exactly: POST returns the live key and extends it, PUT extends,
DELETE ends it, and a key past its time is gone for good (the next POST makes a new one).
Websocket connections wait on ``changed`` to react at once to PUT/DELETE/forced expiry.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import trio

from posmon.sim.aster import errors as e
from posmon.sim.aster.errors import ApiError

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64


@dataclass(slots=True)
class _Key:
    key: str
    account: str
    expires: float
    deleted: bool = False


class ListenKeys:
    """The keys of every account, with their expiry times (seconds on the server clock)."""

    def __init__(self, clock: Callable[[], float], ttl: float = 3600.0, *, seed: int | str = 0) -> None:
        self._clock = clock
        self.ttl = ttl
        self._rng = random.Random(f"listen-keys-{seed}")
        self._keys: dict[str, _Key] = {}
        self._live: dict[str, str] = {}  # account -> its current key
        self.changed = trio.Event()

    def create(self, account: str) -> str:
        """The account's live key, extended; a new one when it has none."""
        now = self._clock()
        current = self._current(account, now)
        if current is not None:
            current.expires = now + self.ttl
            self.notify()
            return current.key
        key = "".join(self._rng.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))
        self._keys[key] = _Key(key, account, now + self.ttl)
        self._live[account] = key
        self.notify()
        return key

    def keepalive(self, account: str, key: str | None = None) -> None:
        now = self._clock()
        current = self._current(account, now)
        if current is None or (key is not None and key != current.key):
            raise ApiError(e.INVALID_LISTEN_KEY)
        current.expires = now + self.ttl
        self.notify()

    def delete(self, account: str, key: str | None = None) -> None:
        current = self._current(account, self._clock())
        if current is None or (key is not None and key != current.key):
            raise ApiError(e.INVALID_LISTEN_KEY)
        current.deleted = True
        self._live.pop(account, None)
        self.notify()

    def expire(self, key: str | None = None) -> list[str]:
        """Force expiry now (of ``key``, or of every live key); returns the keys expired."""
        now = self._clock()
        expired = []
        for record in self._keys.values():
            if (key is None or record.key == key) and not record.deleted and record.expires > now:
                record.expires = now
                expired.append(record.key)
        self.notify()
        return expired

    def status(self, key: str) -> tuple[str, float]:
        """("live", expiry) / ("expired", expiry) / ("deleted", 0) / ("unknown", 0)."""
        record = self._keys.get(key)
        if record is None:
            return "unknown", 0.0
        if record.deleted:
            return "deleted", 0.0
        if self._clock() >= record.expires:
            return "expired", record.expires
        return "live", record.expires

    def is_live(self, key: str) -> bool:
        return self.status(key)[0] == "live"

    def _current(self, account: str, now: float) -> _Key | None:
        key = self._live.get(account)
        record = self._keys.get(key) if key is not None else None
        if record is None or record.deleted or now >= record.expires:
            self._live.pop(account, None)
            return None
        return record

    def notify(self) -> None:
        """Wake every connection waiting on a key, then arm a fresh event for the next change."""
        self.changed.set()
        self.changed = trio.Event()
