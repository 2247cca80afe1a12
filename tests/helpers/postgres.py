"""The tests' throwaway PostgreSQL server (``chaos/postgres.py``: initdb + pg_ctl on a unix socket in a temp dir).

Without the binaries (or psycopg) the tests that need the server skip, except under ``CI=true``, where they fail;
a server that does not start fails the test.
"""

from __future__ import annotations

import os

import pytest

from chaos.postgres import MISSING_BINARIES, PostgresServer, PostgresUnavailable, find_bindir
from chaos.postgres import require_psycopg as _require_psycopg
from chaos.postgres import start_server as _start_server

__all__ = ["PostgresServer", "find_bindir", "require_psycopg", "start_server", "unavailable"]


def unavailable(message: str) -> None:
    """Skip (or fail under ``CI=true``) a test that needs the server or the driver."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_psycopg() -> None:
    try:
        _require_psycopg()
    except PostgresUnavailable as exc:
        unavailable(str(exc))


def start_server() -> PostgresServer:
    """initdb and start a server in a fresh temporary directory (skips without binaries or psycopg)."""
    if find_bindir() is None:
        unavailable(MISSING_BINARIES)
    require_psycopg()
    try:
        return _start_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
