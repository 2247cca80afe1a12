"""Several ``posmon run`` instances of one cluster (issue 17) against a simulator served in this process.

The instances share a PostgreSQL store (a URL) and trade one account on the simulator; each is a real process
(``chaos.run.Daemon``) with its own name and log. What the tests and ``bench/takeover.py`` read: who owns the
account's lease (``lease``), the store's open tranches and active orders (``read_pg_store``) for the campaign's
invariants (``chaos.invariants.check_state``), and every order the venue received under posmon's client ids.
"""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import trio

from chaos.invariants import StoreTranche, StoreView, Violation, check_history, check_state
from chaos.run import Daemon
from chaos.venues import Venue
from posmon.domain.orders import Side


def write_instance_config(
    path: Path, url: str, venue: Venue, rest_url: str, ws_url: str, *, instance: str, lease: float, renew: float
) -> Path:
    path.write_text(f"""[daemon]
venue = "{venue.name}"
store = "{url}"
hedge_mode = {str(venue.hedge).lower()}
log_level = "INFO"
stale_stream_seconds = 3.0
request_timeout_seconds = 2.0
restart_backoff_seconds = 0.2
restart_budget = 50
reconcile_interval_seconds = 2.0

[risk]
tp_pct = 1.0
sl_pct = 2.0

[api]
enabled = false

[cluster]
enabled = true
instance = "{instance}"
lease_seconds = {lease}
lease_renew_seconds = {renew}

{venue.config(rest_url, ws_url)}""")
    return path


def read_pg_store(url: str) -> StoreView:
    """The shared store's open tranches and active orders (as ``chaos.invariants.read_store`` reads SQLite)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT id, symbol, side, qty, tp, sl, status, entry, plan, level FROM tranches "
            "WHERE status IN ('open', 'closing') ORDER BY id"
        ).fetchall()
        orders = conn.execute("SELECT client_id, tranche_id, purpose, qty, state FROM orders WHERE state != 'DONE'")
        names = ("client_id", "tranche_id", "purpose", "qty", "state")
        active = [dict(zip(names, r, strict=True)) for r in orders.fetchall()]
    tranches = [
        StoreTranche(r[0], r[1], Side(r[2]), Decimal(r[3]), r[4] or "", r[5] or "", r[6], Decimal(r[7]), r[8], r[9])
        for r in rows
    ]
    return StoreView(tranches, active)


def lease(url: str, account: str) -> tuple[str, int, float] | None:
    """(owner, token, seconds to expiry on the server's clock) of ``account``'s lease, or None."""
    import psycopg

    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT owner, token, expires_at - EXTRACT(EPOCH FROM clock_timestamp()) FROM leases WHERE account = %s",
            [account],
        ).fetchone()
    return None if row is None else (row[0], int(row[1]), float(row[2]))


class Cluster:
    """Instances ``a``, ``b``, ... of one account, started and killed by name."""

    def __init__(
        self,
        work: Path,
        url: str,
        venue: Venue,
        rest_url: str,
        ws_url: str,
        *,
        names: tuple[str, ...] = ("a", "b"),
        lease: float = 2.0,
        renew: float = 0.5,
    ) -> None:
        self.url, self.venue, self.lease_seconds = url, venue, lease
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
        env.update(venue.env())
        self.instances: dict[str, Daemon] = {}
        for name in names:
            config = write_instance_config(
                work / f"{name}.toml", url, venue, rest_url, ws_url, instance=name, lease=lease, renew=renew
            )
            self.instances[name] = Daemon(config, work / f"{name}.log", env)

    def start(self, name: str) -> None:
        self.instances[name].start()

    def kill(self, name: str) -> None:
        self.instances[name].kill()

    def signal(self, name: str, sig: signal.Signals) -> None:
        proc = self.instances[name].proc
        assert proc is not None and proc.poll() is None, f"instance {name} is not running"
        proc.send_signal(sig)

    async def stop_all(self) -> None:
        for daemon in self.instances.values():
            proc = daemon.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a paused one must be able to stop
            await daemon.stop()

    def owner(self) -> tuple[str, int, float] | None:
        return lease(self.url, self.venue.name)

    async def until_owner(self, *, other_than: str | None = None, within: float = 60.0) -> tuple[str, int]:
        """Wait (bounded) until a live instance other than ``other_than`` holds the lease with time left."""
        with trio.fail_after(within):
            while True:
                got = await trio.to_thread.run_sync(self.owner)
                if got is not None and got[0] != other_than and got[2] > 0:
                    return got[0], got[1]
                await trio.sleep(0.02)

    async def until_registered(self, *names: str, within: float = 60.0) -> None:
        """Wait (bounded) until every instance in ``names`` has registered in the store (it is past start-up)."""

        def registered() -> set[str]:
            import psycopg

            with psycopg.connect(self.url, connect_timeout=3) as conn:
                return {r[0] for r in conn.execute("SELECT id FROM instances").fetchall()}

        with trio.fail_after(within):
            while not set(names) <= await trio.to_thread.run_sync(registered):  # noqa: ASYNC110 - another process's rows
                await trio.sleep(0.05)

    def violations(self) -> list[Violation]:
        """The account's state invariants now (every position covered once, no orphan) and the fills' history."""
        return check_state(self.venue, read_pg_store(self.url)) + check_history(self.venue.fill_log)

    async def until_protected(self, within: float = 60.0) -> float:
        """Wait (bounded) until ``violations`` is empty; returns when that first held (monotonic seconds)."""
        with trio.fail_after(within):
            while True:
                if self.venue.positions() and not await trio.to_thread.run_sync(self.violations):
                    return time.monotonic()
                await trio.sleep(0.05)

    def log(self, name: str) -> str:
        path = self.instances[name].log
        return path.read_text(errors="replace") if path.exists() else ""
