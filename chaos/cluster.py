"""Several ``posmon run`` instances of one cluster (issue 17) against a simulator served in this process.

The instances share a PostgreSQL store (a URL) and trade one account on the simulator; each is a real process
(``chaos.run.Daemon``) with its own name and log. What the tests and ``bench/takeover.py`` read: who owns the
account's lease (``lease``), the store's open tranches and active orders (``read_pg_store``) for the campaign's
invariants (``chaos.invariants.check_state``), and every order the venue received under posmon's client ids.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import trio

from chaos.invariants import StoreTranche, StoreView, Violation, check_history, check_state
from chaos.run import Daemon
from chaos.venues import Venue
from posmon.domain.orders import Side


def write_instance_config(
    path: Path,
    url: str,
    venue: Venue,
    rest_url: str,
    ws_url: str,
    *,
    instance: str,
    lease: float,
    renew: float,
    daemon_extra: str = "",
    risk_extra: str = "",
) -> Path:
    """One instance's config; ``daemon_extra``/``risk_extra`` are more lines of those sections (the campaign's)."""
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
{daemon_extra}
[risk]
tp_pct = 1.0
sl_pct = 2.0
{risk_extra}

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


def tagged_url(url: str, instance: str) -> str:
    """``url`` with ``application_name=posmon-<instance>``: the audit trigger (``install_audit``) knows the writer."""
    return f"{url}{'&' if '?' in url else '?'}application_name={APP_PREFIX}{instance}"


APP_PREFIX = "posmon-"
# The account's state: every table an owner writes. Not the cluster's own ``leases`` and ``instances``, nor
# ``meta``: its counters move only inside a tranche's or a pair's transaction (audited there), and its other rows
# are each store session's own commit marker, which a standby deletes when it stops (read by no other session).
AUDITED_TABLES = ("orders", "events", "unmonitored", "tranches", "entries", "pairs", "pair_legs", "pair_tranches")


def install_audit(url: str, account: str) -> None:
    """After the store's migrations: a statement trigger on every state table records who wrote (the connection's
    ``application_name``) and who held ``account``'s lease at that moment, in ``chaos_audit``.

    The fence locks the lease row first in every write transaction (``FOR SHARE``), so the row the trigger reads
    is the one the write was fenced against: a write by anyone but the owner is a fenced write that went through.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS chaos_audit (id bigserial PRIMARY KEY, at double precision, app text, "
            "tbl text, op text, owner text, token bigint, expires_at double precision)"
        )
        conn.execute(f"""CREATE OR REPLACE FUNCTION chaos_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO chaos_audit (at, app, tbl, op, owner, token, expires_at)
  SELECT EXTRACT(EPOCH FROM clock_timestamp()), current_setting('application_name'), TG_TABLE_NAME, TG_OP,
         l.owner, l.token, l.expires_at
  FROM (SELECT 1) AS one LEFT JOIN leases l ON l.account = '{account}';
  RETURN NULL;
END $$""")
        for table in AUDITED_TABLES:
            conn.execute(
                f"CREATE TRIGGER chaos_audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION chaos_audit()"
            )


def check_audit(url: str) -> tuple[list[Violation], int]:
    """``no_write_after_lease_lost``: every audited write was made by the lease's owner of that moment; and how
    many writes were audited (a check that saw none proves nothing)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=3) as conn:
        rows = conn.execute("SELECT at, app, tbl, op, owner, token FROM chaos_audit ORDER BY id").fetchall()
    out: list[Violation] = []
    for at, app, tbl, op, owner, token in rows:
        writer = app.removeprefix(APP_PREFIX) if app.startswith(APP_PREFIX) else None
        if writer is not None and writer != owner:
            when = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
            out.append(
                Violation(
                    "no_write_after_lease_lost",
                    f"{op} on {tbl} by {writer} at {when} while {owner or 'nobody'} held the lease (token {token})",
                )
            )
    return out[:5], len(rows)


@dataclass(frozen=True, slots=True)
class Acquisition:
    at: str  # the log line's time
    instance: str
    token: int


def ownership(log: str, instance: str, account: str) -> tuple[list[Acquisition], Acquisition | None, bool]:
    """From an instance's log: every lease it acquired, the one it still holds at the end of the log (None: it
    stood by, stopped, released or was killed since), and whether its daemon became ready under that one."""
    acquired: list[Acquisition] = []
    holding: Acquisition | None = None
    ready = False
    for line in log.splitlines():
        if line.startswith("=== chaos:"):
            holding, ready = None, False
        elif m := re.search(rf"cluster: {instance} owns {account} \(token (\d+)", line) or re.search(
            rf"cluster: {instance} took over {account} from \S+ \(token \S+ -> (\d+)\)", line
        ):
            holding, ready = Acquisition(line[:23], instance, int(m[1])), False
            acquired.append(holding)
        elif (f"cluster: {account}: " in line and "stopping the account" in line) or (
            f"released the lease of {account}" in line
        ):
            holding, ready = None, False
        elif "posmon ready" in line and holding is not None:
            ready = True
    return acquired, holding, ready


def check_leases(
    logs: dict[str, str], account: str, seen: list[tuple[str, int]], owner_now: tuple[str, int, float] | None
) -> list[Violation]:
    """``one_owner``: every token was acquired once, by one instance, in increasing order over the run (the
    polled lease row never went back nor changed hands without a new token); after settling exactly one
    instance holds the account, the lease row's owner, its daemon ready."""
    out: list[Violation] = []
    acquisitions: list[Acquisition] = []
    holders: list[tuple[Acquisition, bool]] = []
    for name, text in logs.items():
        got, holding, ready = ownership(text, name, account)
        acquisitions += got
        if holding is not None:
            holders.append((holding, ready))
    by_token: dict[int, list[str]] = {}
    for a in acquisitions:
        by_token.setdefault(a.token, []).append(a.instance)
    for token, who in sorted(by_token.items()):
        if len(who) > 1:
            out.append(Violation("one_owner", f"token {token} acquired {len(who)} times ({', '.join(who)})"))
    in_time = [a.token for a in sorted(acquisitions, key=lambda a: a.at)]
    if in_time != sorted(in_time):
        out.append(Violation("one_owner", f"tokens acquired out of order: {in_time}"))
    for (o1, t1), (o2, t2) in itertools.pairwise(seen):
        if t2 < t1 or (t2 == t1 and o2 != o1):
            out.append(Violation("one_owner", f"lease row went from {o1} token {t1} to {o2} token {t2}"))
    if len(holders) != 1:
        names = ", ".join(f"{h.instance} (token {h.token})" for h, _ in holders) or "none"
        out.append(Violation("one_owner", f"{len(holders)} instances hold {account} at the end: {names}"))
    else:
        ((held, ready),) = holders
        if owner_now is None or (owner_now[0], owner_now[1]) != (held.instance, held.token):
            out.append(Violation("one_owner", f"{held.instance} holds token {held.token}; the lease row: {owner_now}"))
        elif not ready:
            out.append(Violation("one_owner", f"{held.instance} holds {account} but its daemon is not ready"))
    return out


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
        daemon_extra: str = "",
        risk_extra: str = "",
    ) -> None:
        self.url, self.venue, self.lease_seconds = url, venue, lease
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
        env.update(venue.env())
        self.instances: dict[str, Daemon] = {}
        for name in names:
            config = write_instance_config(
                work / f"{name}.toml",
                tagged_url(url, name),
                venue,
                rest_url,
                ws_url,
                instance=name,
                lease=lease,
                renew=renew,
                daemon_extra=daemon_extra,
                risk_extra=risk_extra,
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
