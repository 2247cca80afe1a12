"""One writer per store: an advisory lock file ``<store>.lock`` beside the SQLite file.

``posmon protect`` holds it while it writes and refuses to start when it is taken; the daemon should hold
it for its whole run (``with hold_store_lock(settings.daemon.store): ...`` in ``run_main``) so that
``protect`` can tell that a daemon trades the same store and account. ``flock`` locks die with their
process, so a crashed daemon never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from posmon.store.location import is_url


class StoreLocked(Exception):
    """Another process (a running daemon, another ``protect``) holds the store."""


def lock_path(store: str | Path) -> Path | None:
    """Where the lock of ``store`` lives; None for an in-memory store and for a PostgreSQL store (shared by
    design: a cluster's leases, issue 17, take the lock's place there)."""
    return None if str(store) == ":memory:" or is_url(str(store)) else Path(f"{store}.lock")


@contextmanager
def hold_store_lock(store: str | Path) -> Iterator[None]:
    """Hold the store's lock for the block; raises ``StoreLocked`` at once when someone else holds it."""
    path = lock_path(store)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreLocked(f"{path} is held by another process (a running posmon daemon?)") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def store_in_use(store: str | Path) -> bool:
    """True when another process holds the store's lock (cheap: one non-blocking flock attempt)."""
    path = lock_path(store)
    if path is None or not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
