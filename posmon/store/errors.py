"""Store errors: each says in one line what is wrong with which file, so start-up can stop with that line."""


class StoreError(Exception):
    """The store cannot be opened or is inconsistent; the daemon must not trade on it."""


class StoreBusy(StoreError):
    """Another process holds the store's SQLite write lock longer than posmon waits for it.

    Raised by the synchronous writes after a short busy timeout (so the event loop is never held for long);
    the ``*_async`` writes wait for the lock instead, yielding to trio between tries.
    """
