"""``posmon cluster status``: instances, leases, owners, tokens and expiries from the store; one line otherwise."""

from __future__ import annotations

import os
import socket

from posmon.cli.exit_codes import ExitCode
from posmon.cli.parser import main
from posmon.cluster import leases
from posmon.store.postgres import PgConn, PgStore


def test_status_shows_each_instance_and_who_holds_each_lease_with_its_token(postgres, capsys):
    url = postgres.new_store_url()
    PgStore.open(url).close()
    conn = PgConn(url, "test")
    try:
        leases.register(conn, "node-a")
        leases.register(conn, "node-b")
        leases.try_acquire(conn, "aster", "node-a", 10)
        conn.execute("UPDATE leases SET expires_at = 1 WHERE account = 'aster'")
        leases.try_acquire(conn, "aster", "node-b", 10)  # a takeover: token 2
        leases.try_acquire(conn, "lighter", "node-a", 10)
        leases.release(conn, "lighter", "node-a", 1)
    finally:
        conn.close()
    assert main(["cluster", "status", "--store", url]) == ExitCode.OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "instances: 2" in lines and "leases: 2" in lines
    [a] = [line.split() for line in lines if line.strip().startswith("node-a ")]
    assert a[1] == socket.gethostname() and int(a[2]) == os.getpid()
    assert a[-1] == "ago"  # last seen "0.0 s ago"
    assert a[-4] == "-"  # node-a holds no account now (aster was taken over, lighter released)
    [b] = [line.split() for line in lines if line.strip().startswith("node-b ")]
    assert b[-4] == "aster"  # the accounts each instance holds
    [aster] = [line.split() for line in lines if line.strip().startswith("aster")]
    assert aster[:4] == ["aster", "node-b", "2", "held"] and float(aster[4]) > 9  # "9.9 s" to expiry
    [lighter] = [line.split() for line in lines if line.strip().startswith("lighter")]
    assert lighter[:4] == ["lighter", "node-a", "1", "released"]


def test_a_store_that_is_not_postgresql_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["cluster", "status", "--store", str(tmp_path / "posmon.sqlite")]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a PostgreSQL store; a cluster shares one" in err


def test_an_unreachable_server_is_one_line_and_exit_4(tmp_path, capsys):
    url = f"postgresql://posmon:hunter2@/posmon?host={tmp_path}"
    assert main(["cluster", "status", "--store", url]) == ExitCode.STORE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect" in err and "hunter2" not in err
