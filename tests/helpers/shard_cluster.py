"""Instances of one cluster sharing several named accounts (``[accounts.<name>]``), each account on a simulator of
its own served in this process; ``posmon run`` processes on one PostgreSQL store (issue 17, sharding).

What tests and ``bench/takeover.py`` read: who owns which account (``owners``), each account's store rows (its
``venue`` column is the account's name) and the campaign's invariants per account against its own simulator.
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
from chaos.venues import AsterVenue, LighterVenue, Venue
from posmon.domain.orders import Side
from posmon.sim.aster import credentials as aster_cred
from posmon.sim.lighter import credentials as lighter_cred


def _config(
    url: str,
    accounts: dict[str, tuple[Venue, str, str]],
    *,
    instance: str,
    lease: float,
    renew: float,
    api_port: int | None = None,
) -> str:
    api = "enabled = false" if api_port is None else f'enabled = true\nhost = "127.0.0.1"\nport = {api_port}'
    sections = []
    for name, (venue, rest_url, ws_url) in accounts.items():
        sections.append(f'[accounts.{name}]\nvenue = "{venue.name}"\nrest_url = "{rest_url}"\nws_url = "{ws_url}"\n')
    return f"""[daemon]
store = "{url}"
hedge_mode = true
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
{api}

[cluster]
enabled = true
instance = "{instance}"
lease_seconds = {lease}
lease_renew_seconds = {renew}

[aster]
auth = "v3"
user = "{aster_cred.DEFAULT_USER_ADDRESS}"
symbols = ["BTCUSDT"]

[lighter]
account_index = {lighter_cred.DEFAULT_ACCOUNT_INDEX}
api_key_index = {lighter_cred.DEFAULT_API_KEY_INDEX}
chain_id = {lighter_cred.DEFAULT_CHAIN_ID}
tier = "premium"
symbols = ["BTC"]

{chr(10).join(sections)}"""


def read_account(url: str, account: str) -> StoreView:
    """One account's open tranches and active orders in the shared store."""
    import psycopg

    with psycopg.connect(url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT id, symbol, side, qty, tp, sl, status, entry, plan, level FROM tranches "
            "WHERE status IN ('open', 'closing') AND venue = %s ORDER BY id",
            [account],
        ).fetchall()
        orders = conn.execute(
            "SELECT client_id, tranche_id, purpose, qty, state FROM orders WHERE state != 'DONE' AND venue = %s",
            [account],
        )
        names = ("client_id", "tranche_id", "purpose", "qty", "state")
        active = [dict(zip(names, r, strict=True)) for r in orders.fetchall()]
    tranches = [
        StoreTranche(r[0], r[1], Side(r[2]), Decimal(r[3]), r[4] or "", r[5] or "", r[6], Decimal(r[7]), r[8], r[9])
        for r in rows
    ]
    return StoreView(tranches, active)


class ShardCluster:
    """Instances ``names`` running the accounts ``venues`` (account name -> simulator), started and killed by name;
    ``api_ports``: instance -> the loopback port its operator API listens on (none: no API)."""

    def __init__(
        self,
        work: Path,
        url: str,
        venues: dict[str, Venue],
        urls: dict[str, tuple[str, str]],
        *,
        names: tuple[str, ...] = ("a", "b"),
        lease: float = 2.0,
        renew: float = 0.5,
        api_ports: dict[str, int] | None = None,
    ) -> None:
        self.url, self.venues, self.lease_seconds = url, venues, lease
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
        for name, venue in venues.items():  # each account's secret under its own name
            for key, value in venue.env().items():
                env[f"POSMON_ACCOUNTS_{name.upper()}_{key.split('_', 2)[2]}"] = value
        accounts = {name: (venue, *urls[name]) for name, venue in venues.items()}
        self.instances: dict[str, Daemon] = {}
        for name in names:
            config = work / f"{name}.toml"
            port = (api_ports or {}).get(name)
            config.write_text(_config(url, accounts, instance=name, lease=lease, renew=renew, api_port=port))
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
                proc.send_signal(signal.SIGCONT)
            await daemon.stop()

    def owners(self) -> dict[str, tuple[str, int]]:
        """account -> (owner, token) of every lease with time left on the server's clock."""
        import psycopg

        with psycopg.connect(self.url, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT account, owner, token FROM leases WHERE expires_at > EXTRACT(EPOCH FROM clock_timestamp())"
            ).fetchall()
        return {r[0]: (r[1], int(r[2])) for r in rows}

    def split(self) -> dict[str, list[str]]:
        """instance -> the accounts it holds (sorted), from ``owners``."""
        out: dict[str, list[str]] = {}
        for account, (owner, _token) in sorted(self.owners().items()):
            out.setdefault(owner, []).append(account)
        return out

    async def until_split(self, want: dict[str, int] | None = None, *, within: float = 90.0) -> dict[str, list[str]]:
        """Wait (bounded) until every account is held, by instances holding ``want`` many each (when given)."""
        with trio.fail_after(within):
            while True:
                split = await trio.to_thread.run_sync(self.split)
                held = sum(len(v) for v in split.values())
                if held == len(self.venues) and (want is None or {k: len(v) for k, v in split.items()} == want):
                    return split
                await trio.sleep(0.02)

    def violations(self, accounts: list[str] | None = None) -> list[Violation]:
        out = []
        for name in accounts or list(self.venues):
            venue = self.venues[name]
            found = check_state(venue, read_account(self.url, name)) + check_history(venue.fill_log)
            out += [Violation(v.invariant, f"{name}: {v.detail}") for v in found]
        return out

    async def until_protected(self, accounts: list[str] | None = None, within: float = 90.0) -> float:
        """Wait (bounded) until the accounts' invariants hold (every position covered once, no orphan)."""
        with trio.fail_after(within):
            while await trio.to_thread.run_sync(self.violations, accounts):  # noqa: ASYNC110 - other processes
                await trio.sleep(0.05)
        return time.monotonic()

    def ready_lines(self, name: str, account: str) -> int:
        """How often instance ``name`` said the account's daemon was ready (once per start of the account)."""
        return self.log(name).count(f"ready: watching {account} ")

    def log(self, name: str) -> str:
        path = self.instances[name].log
        return path.read_text(errors="replace") if path.exists() else ""


def aster_and_lighter(*names: str) -> dict[str, Venue]:
    """A simulator per account: ``aster_*`` names on Aster's, the others on Lighter's."""
    return {n: AsterVenue(("BTCUSDT",)) if n.startswith("aster") else LighterVenue(("BTC",)) for n in names}


async def serve_all(venues: dict[str, Venue], nursery: trio.Nursery) -> dict[str, tuple[str, str]]:
    return {name: await venue.serve(nursery) for name, venue in venues.items()}
