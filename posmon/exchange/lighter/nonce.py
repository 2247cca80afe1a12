"""The nonce of one (account, API key): fetched once, counted locally, re-fetched whenever its fate is unknown.

Lighter accepts each nonce once and in increasing order. Counting locally saves a ``nextNonce`` request per
order (one of only 60 a minute on a Standard account). A batch takes consecutive nonces (21105 otherwise).
After 21104/21105, a 429, a 5xx, a timeout or anything else that leaves open whether the venue consumed the
nonces, the next send fetches ``nextNonce`` again first.

One API key must have exactly one sender: a second process (or a second keeper) with the same key makes
both count wrong. In posmon the order gateway is that sender; it owns this keeper through the venue object,
and the venue sends under a lock so nonces reach Lighter in the order they were taken.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

__all__ = ["NonceKeeper"]

log = logging.getLogger(__name__)


class NonceKeeper:
    """Hands out nonces; ``fetch`` asks the venue for the next unused one."""

    def __init__(self, fetch: Callable[[], Awaitable[int]]) -> None:
        self._fetch = fetch
        self._next: int | None = None
        self.fetches = 0  # how often the venue was asked (for tests and metrics)

    @property
    def known(self) -> bool:
        return self._next is not None

    async def take(self, count: int = 1) -> range:
        """``count`` consecutive nonces (fetching the next one first when it is not known)."""
        if count < 1:
            raise ValueError(f"cannot take {count} nonces")
        if self._next is None:
            await self.refresh()
        assert self._next is not None
        start = self._next
        self._next += count
        return range(start, start + count)

    async def refresh(self) -> int:
        """Ask the venue for the next nonce now (start-up, ``sync_time``)."""
        self._next = None
        nonce = await self._fetch()
        self.fetches += 1
        self._next = nonce
        return nonce

    def give_back(self, nonce: int) -> None:
        """Return the last nonce taken, unused (its transaction was never signed or sent)."""
        if self._next is not None and nonce == self._next - 1:
            self._next = nonce
        else:
            self.invalidate(f"nonce {nonce} came back out of order")

    def invalidate(self, why: str) -> None:
        """The last nonces' fate is unknown (or they were refused): fetch before the next send."""
        if self._next is not None:
            log.info("lighter: nonce re-fetch needed before the next send (%s)", why)
        self._next = None
