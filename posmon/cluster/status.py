"""``posmon cluster status``: the instances of a cluster and who owns each account, read from the store directly.

Needs no running daemon (like ``posmon history``): it connects to the store named by ``daemon.store`` (or
``--store``) and reads the ``instances`` and ``leases`` tables, with every age on the database server's clock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

from posmon.cli.exit_codes import ExitCode, exit_codes_help
from posmon.cluster.leases import NOW
from posmon.config import ConfigError, load_settings
from posmon.store.errors import StoreError
from posmon.store.location import is_url, redacted

if TYPE_CHECKING:
    from posmon.cli.parser import Subparsers

EXIT_HELP = exit_codes_help(
    {
        ExitCode.OK: "the cluster's state was printed",
        ExitCode.CONFIG: "configuration error, or the store is not a PostgreSQL one (a cluster shares one)",
        ExitCode.STORE: "the store cannot be reached or is not posmon's",
    }
)


def read_status(conn: Any) -> dict[str, Any]:
    """The cluster as plain rows: ``now`` (server epoch seconds), ``instances`` and ``leases``."""
    now = float(conn.execute(f"SELECT {NOW}").fetchone()[0])
    instances = [
        {"id": r[0], "host": r[1], "pid": r[2], "started_at": r[3], "last_seen": r[4]}
        for r in conn.execute("SELECT id, host, pid, started_at, last_seen FROM instances ORDER BY id").fetchall()
    ]
    leases = [
        {"account": r[0], "owner": r[1], "token": r[2], "expires_at": r[3], "acquired_at": r[4], "renewed_at": r[5]}
        for r in conn.execute(
            "SELECT account, owner, token, expires_at, acquired_at, renewed_at FROM leases ORDER BY account"
        ).fetchall()
    ]
    return {"now": now, "instances": instances, "leases": leases}


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_status(status: dict[str, Any], where: str) -> str:
    now = status["now"]
    live = {i["id"] for i in status["instances"]}
    lines = [f"cluster on {where} (server time {_when(now)} UTC)", ""]
    lines.append(f"instances: {len(status['instances'])}")
    holds: dict[str, list[str]] = {}  # the accounts each instance holds a live lease of (sharding)
    for row in status["leases"]:
        if row["expires_at"] > now:
            holds.setdefault(row["owner"], []).append(row["account"])
    if status["instances"]:
        lines.append(f"  {'INSTANCE':<28} {'HOST':<20} {'PID':>7}  {'STARTED (UTC)':<19}  {'ACCOUNTS':<24} LAST SEEN")
        for i in status["instances"]:
            seen = "-" if i["last_seen"] is None else f"{now - i['last_seen']:.1f} s ago"
            held = ",".join(holds.get(i["id"], [])) or "-"
            lines.append(
                f"  {i['id']:<28} {i['host'] or '-':<20} {i['pid'] or 0:>7}  {_when(i['started_at']):<19}  "
                f"{held:<24} {seen}"
            )
    lines += ["", f"leases: {len(status['leases'])}"]
    if status["leases"]:
        lines.append(f"  {'ACCOUNT':<12} {'OWNER':<28} {'TOKEN':>6}  {'STATE':<9} {'EXPIRES IN':>10}  RENEWED")
        for row in status["leases"]:
            left = row["expires_at"] - now
            state = "held" if left > 0 else ("released" if row["expires_at"] == 0 else "expired")
            if state == "held" and row["owner"] not in live:
                state = "orphaned"  # its owner unregistered (stopped) without releasing it: expires by itself
            renewed = "-" if row["renewed_at"] is None else f"{now - row['renewed_at']:.1f} s ago"
            expires = f"{left:.1f} s" if left > 0 else "-"
            lines.append(
                f"  {row['account']:<12} {row['owner']:<28} {row['token']:>6}  {state:<9} {expires:>10}  {renewed}"
            )
    return "\n".join(lines)


def _status_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"posmon: configuration error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    location = args.store if args.store is not None else settings.daemon.store
    if not is_url(location):
        print(
            f"posmon: cluster status: the store {location!r} is not a PostgreSQL store; a cluster shares one "
            "(daemon.store or --store = postgresql://user@host:port/db)",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    from posmon.store.postgres import PgStore

    try:
        store = PgStore.open(location)
    except StoreError as exc:
        print(f"posmon: cluster status: {exc}", file=sys.stderr)
        return ExitCode.STORE
    try:
        status = read_status(store.db)
    except StoreError as exc:
        print(f"posmon: cluster status: {exc}", file=sys.stderr)
        return ExitCode.STORE
    finally:
        store.close()
    print(render_status(status, redacted(location)))
    return ExitCode.OK


def add_cluster(sub: Subparsers) -> None:
    p = sub.add_parser("cluster", help="the instances of a cluster and the owner of each account's lease")
    commands = p.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="instances (last seen), leases (owner, fencing token, expiry), read from the shared store",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--store", default=None, metavar="URL", help="the cluster's PostgreSQL store (default: [daemon] store)"
    )
    status.set_defaults(handler=_status_command)
