"""A throwaway PostgreSQL server from the machine's own binaries (``initdb`` + ``pg_ctl``), for the tests, the
cluster campaign (``chaos/cluster.py``) and ``bench/takeover.py``; no pytest here (``tests/helpers/postgres.py``
turns ``PostgresUnavailable`` into a skip, or a failure under ``CI=true``).

It listens on a unix socket in a temporary directory only (no TCP port), with ``fsync=off`` (its data need not
survive a power cut; a clean ``pg_ctl stop`` still writes it all). ``PostgresServer.new_store_url`` gives a schema
of its own per store: the URL sets ``search_path`` to it, so users of one server never see each other's tables.

The binaries are found on PATH (``initdb``, resolved to its directory for ``pg_ctl`` and ``postgres``) or under
/usr/lib/postgresql/<version>/bin (Debian's ``postgresql`` package; ``make test`` installs it where missing).
PostgreSQL refuses to run as root: as root, the server runs as ``nobody`` (``runuser``), in a directory it owns.
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

USER = "posmon"
DATABASE = "posmon"
START_TIMEOUT_SECONDS = 60


MISSING_BINARIES = (
    "initdb/pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin: PostgreSQL tests need Debian's "
    "postgresql package (make test installs it; or apt-get install postgresql)"
)


class PostgresUnavailable(Exception):
    """The binaries or the driver are missing, or the server did not start (the message says which and why)."""


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
        raise PostgresUnavailable(
            "psycopg is not installed: pip install 'psycopg[binary]' (a posmon dependency; make installs it)"
        ) from None


def start_server(prefix: str = "posmon-pg-") -> PostgresServer:
    """initdb and start a server in a fresh temporary directory; ``PostgresUnavailable`` without binaries,
    without psycopg, or when the server does not start."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(MISSING_BINARIES)
    require_psycopg()
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    server = PostgresServer(bindir=bindir, root=root)
    try:
        server.init()
    except subprocess.CalledProcessError as exc:
        server.cleanup()
        raise PostgresUnavailable(
            f"PostgreSQL did not start: {exc.stderr.decode(errors='replace').strip()[:500]}"
        ) from None
    return server
