"""Store errors: each says in one line what is wrong with which file, so start-up can stop with that line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class StoreError(Exception):
    """The store cannot be opened or is inconsistent; the daemon must not trade on it."""


class StoreBusy(StoreError):
    """Another process holds the store's SQLite write lock longer than posmon waits for it.

    Raised by the synchronous writes after a short busy timeout (so the event loop is never held for long);
    the ``*_async`` writes wait for the lock instead, yielding to trio between tries. ``wait_writable`` (when
    set) waits the same way until the store takes writes again: a supervisor can await it before restarting an
    actor that met the lock, instead of spending its restart budget on someone else's transaction.
    """

    def __init__(self, message: str, *, wait_writable: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(message)
        self.wait_writable = wait_writable


class StoreUnavailable(StoreBusy):
    """The store's server cannot be reached (PostgreSQL restarted, network down): nothing was written.

    A ``StoreBusy`` so the actors' supervisor waits (``wait_writable``) until the server is back instead of
    spending its restart budget; the group commit (``Store.commit``) retries on its own and never raises it.
    """
