"""A throwaway PostgreSQL server for the tests, started from the machine's own binaries (``initdb`` + ``pg_ctl``).

It listens on a unix socket in a temporary directory only (no TCP port), with ``fsync=off`` (a test's data
need not survive a power cut; a clean ``pg_ctl stop`` still writes it all). Each test gets a schema of its own
(``PostgresServer.new_store_url``): the store's URL sets ``search_path`` to it, so tests share one server and
never see each other's tables.

The binaries are found on PATH (``initdb``, resolved to its directory for ``pg_ctl`` and ``postgres``) or under
/usr/lib/postgresql/<version>/bin (Debian's ``postgresql`` package; ``make test`` installs it where missing).
PostgreSQL refuses to run as root: as root, the server runs as ``nobody`` (``runuser``), in a directory it owns.
Without the binaries (or psycopg) the tests that need the server skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

USER = "posmon"
DATABASE = "posmon"
START_TIMEOUT_SECONDS = 60


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    candidates = [Path(os.path.realpath(found)).parent] if found else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )[::-1]
    for d in candidates:
        if all((d / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def unavailable(message: str) -> None:
    """Skip (or fail under ``CI=true``) a test that needs the server or the driver."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class PostgresServer:
    """One server: ``start``/``stop``/``restart`` it, ``new_store_url`` for a fresh, empty store on it."""

    bindir: Path
    root: Path
    start_seconds: float = 0.0  # initdb + first start, for the report
    _schemas: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=START_TIMEOUT_SECONDS
        )

    def init(self) -> None:
        began = time.monotonic()
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync", "--no-instructions"
        )
        self.start()
        import psycopg

        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.start_seconds = time.monotonic() - began

    def start(self) -> None:
        options = f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when an operator restarts the server."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def admin_url(self, database: str = DATABASE) -> str:
        return f"postgresql://{USER}@/{database}?host={quote(str(self.socket_dir))}"

    def new_store_url(self) -> str:
        """A URL whose tables live in a schema nobody else uses: an empty store."""
        import psycopg

        schema = f"t{os.getpid()}_{next(self._schemas)}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.admin_url()}&options={quote(f'-c search_path={schema}')}"

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install 'psycopg[binary]' (a posmon dependency; make installs it)")


def start_server() -> PostgresServer:
    """initdb and start a server in a fresh temporary directory (skips without binaries or psycopg)."""
    bindir = find_bindir()
    if bindir is None:
        unavailable(
            "initdb/pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin: PostgreSQL tests need Debian's "
            "postgresql package (make test installs it; or apt-get install postgresql)"
        )
    require_psycopg()
    root = Path(tempfile.mkdtemp(prefix="posmon-pg-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    server = PostgresServer(bindir=bindir, root=root)  # type: ignore[arg-type]
    try:
        server.init()
    except subprocess.CalledProcessError as exc:
        server.cleanup()
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace').strip()[:500]}", pytrace=False)
    return server
