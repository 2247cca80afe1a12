"""``make chaos-cluster``: the cluster invariants catch what they name, and two short cluster runs pass end to end.

The lease checks are proved on hand-written instance logs, the write audit on a real store (a write made under
another instance's name while the lease is someone else's); the smoke runs ``python -m chaos --cluster --smoke`` as
CI does: a throwaway PostgreSQL server per run, instances killed, paused and the server restarted, both venues.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from chaos.cluster import check_audit, check_leases, install_audit, tagged_url
from chaos.cluster_run import CLUSTER_INVARIANTS, cluster_faults, instances_for
from chaos.invariants import INVARIANTS
from chaos.postgres import MISSING_BINARIES, find_bindir
from posmon.store.postgres import PgConn, PgStore
from tests.helpers.postgres import require_psycopg, unavailable

ROOT = Path(__file__).resolve().parents[2]
T = "2026-12-06T22:57:"


def log(*lines: str) -> str:
    return "\n".join(lines) + "\n"


A_FIRST = log(
    f"{T}25.454Z INFO    posmon.cluster.leases: cluster: a owns aster (token 1, first owner)",
    f"{T}25.739Z INFO    posmon.daemon: posmon ready: watching aster (1 symbol), 1 position",
    "=== chaos: SIGKILL at 1796597856.530 ===",
)
B_TOOK_OVER = log(
    f"{T}38.381Z WARNING posmon.cluster.leases: cluster: b took over aster from a (token 1 -> 2); starting it",
    f"{T}38.600Z INFO    posmon.daemon: posmon ready: watching aster (1 symbol), 1 position",
)


def names(violations) -> set[str]:
    return {v.invariant for v in violations}


def test_one_ready_owner_holding_the_lease_row_after_a_takeover_passes():
    assert check_leases({"a": A_FIRST, "b": B_TOOK_OVER}, "aster", [("a", 1), ("b", 2)], ("b", 2, 1.5)) == []


def test_a_paused_owner_that_never_noticed_its_loss_is_a_second_holder():
    a_paused = A_FIRST.replace("=== chaos: SIGKILL at 1796597856.530 ===\n", "")
    (violation,) = check_leases({"a": a_paused, "b": B_TOOK_OVER}, "aster", [("a", 1), ("b", 2)], ("b", 2, 1.5))
    assert violation.invariant == "one_owner" and "2 instances hold aster" in violation.detail
    stopped = a_paused + f"{T}40.000Z ERROR   posmon.cluster.leases: cluster: aster: lost; stopping the account\n"
    assert check_leases({"a": stopped, "b": B_TOOK_OVER}, "aster", [("a", 1), ("b", 2)], ("b", 2, 1.5)) == []


def test_a_token_taken_twice_a_lease_row_going_back_or_an_owner_not_ready_break_one_owner():
    twice = B_TOOK_OVER.replace("token 1 -> 2", "token 0 -> 1")
    assert any(
        "token 1 acquired 2 times" in v.detail for v in check_leases({"a": A_FIRST, "b": twice}, "aster", [], None)
    )
    back = check_leases({"a": A_FIRST, "b": B_TOOK_OVER}, "aster", [("b", 2), ("a", 1)], ("b", 2, 1.5))
    assert [v.detail for v in back] == ["lease row went from b token 2 to a token 1"]
    not_ready = B_TOOK_OVER.splitlines()[0]
    (violation,) = check_leases({"a": A_FIRST, "b": not_ready}, "aster", [("a", 1), ("b", 2)], ("b", 2, 1.5))
    assert "not ready" in violation.detail


def test_the_audit_flags_a_write_by_an_instance_that_does_not_hold_the_lease(postgres):
    url = postgres.new_store_url()
    PgStore.open(url).close()
    install_audit(url, "aster")
    admin = PgConn(url, "test")
    admin.execute("INSERT INTO leases (account, owner, token, expires_at) VALUES ('aster', 'b', 2, 1e12)")
    for i, writer in enumerate(("b", "a")):  # the owner's write, then a stale instance's
        conn = PgConn(tagged_url(url, writer), writer)
        conn.execute("INSERT INTO events (id, ts, venue, kind, data) VALUES (?, 1, 'aster', 'test', '{}')", [i + 1])
        conn.close()
    admin.close()
    violations, audited = check_audit(url)
    assert audited == 2
    (violation,) = violations
    assert violation.invariant == "no_write_after_lease_lost"
    assert "INSERT on events by a" in violation.detail and "while b held the lease (token 2)" in violation.detail


def test_every_seed_hits_the_owner_and_draws_two_or_three_instances():
    for seed in range(30):
        faults = cluster_faults(seed, 10.0)
        assert any(f.kind in ("kill_owner", "pause_owner") for f in faults)
        assert all(f.hold > 2.0 for f in faults if f.kind == "pause_owner")  # past the 2 s lease
        assert cluster_faults(seed, 10.0) == faults
    assert {len(instances_for(seed)) for seed in range(30)} == {2, 3}


def test_cluster_smoke_campaign_kills_pauses_restarts_the_database_and_reports(tmp_path: Path):
    if find_bindir() is None:
        unavailable(MISSING_BINARIES)
    require_psycopg()
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", "--cluster", "--smoke", "--seed", "11", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = orjson.loads(out.read_bytes())
    assert summary["cluster"] is True and summary["runs"] == 2 and set(summary["by_venue"]) == {"aster", "lighter"}
    assert set(summary["violations_by_invariant"]) == set(INVARIANTS + CLUSTER_INVARIANTS)
    assert summary["owner_kills"] + summary["pauses"] >= 2 and summary["takeovers"] >= 1
    assert summary["audited_writes"] > 0 and summary["takeover_lease_s"]["count"] >= 1
    assert "owner pauses (SIGSTOP)" in proc.stdout and "violations one_owner" in proc.stdout
    failures = "\n".join(f"{f['replay']}: {f['invariants']} {f['error'] or ''}" for f in summary["failing_seeds"])
    assert summary["failed_runs"] == 0 and proc.returncode == 0, failures + proc.stderr[-2000:]
