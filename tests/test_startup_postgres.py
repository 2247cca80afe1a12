"""``posmon run`` on a PostgreSQL store it cannot use: one line and exit 4, never a traceback, nothing started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import trio

from posmon.cli.exit_codes import ExitCode
from posmon.store.schema import SCHEMA_VERSION
from tests.helpers.postgres import require_psycopg
from tests.test_startup_failures import assert_nothing_started, assert_one_line_failure, run_posmon, write_config


@pytest.fixture(autouse=True)
def _driver():
    require_psycopg()


async def test_a_malformed_postgresql_url_is_one_line_and_exit_4(tmp_path):
    config = write_config(tmp_path, daemon={"store": "postgresql://posmon@/posmon?no_such_option=1"})
    code, err = await run_posmon(config)
    assert code == ExitCode.STORE, err
    assert_one_line_failure(err, "daemon.store", "is not a valid PostgreSQL URL", "no_such_option")
    assert_nothing_started(err)


async def test_an_unreachable_server_is_one_line_and_exit_4(tmp_path):
    url = f"postgresql://posmon:hunter2@/posmon?host={tmp_path}"  # no server listens on that socket directory
    code, err = await run_posmon(write_config(tmp_path), "--store", url)  # --store beats the config's file
    assert code == ExitCode.STORE, err
    line = assert_one_line_failure(err, "cannot connect", "is PostgreSQL running there")
    assert "hunter2" not in err and "posmon:***@" in line
    assert_nothing_started(err)
    assert not (tmp_path / "posmon.sqlite").exists()


async def test_run_trades_on_a_postgresql_store_named_by_store_and_stops_on_sigterm(tmp_path, postgres):
    """``posmon run --store postgresql://..`` on the embedded simulator: it creates the store on the server, says
    it is watching, and SIGTERM stops it with exit 0 (no SQLite file, no lock file beside a URL)."""
    import psycopg

    url = postgres.new_store_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
    cmd = [sys.executable, "-m", "posmon.cli", "--config", str(write_config(tmp_path)), "run", "--store", url]
    proc = await trio.lowlevel.open_process(cmd, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        seen = b""
        with trio.fail_after(60):
            while b"posmon watching" not in seen:
                chunk = await proc.stderr.receive_some()
                assert chunk, seen.decode()
                seen += chunk
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == ExitCode.OK, seen.decode()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM posmon_schema").fetchone()[0] == SCHEMA_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posmon.toml"]
