"""Takeover time of a cluster (issue 17): SIGKILL the owner of an account again and again, time the standby.

    .venv/bin/python -m bench.takeover                 # 20 kills, lease 2 s renewed every 0.5 s
    .venv/bin/python -m bench.takeover --kills 40 --lease 10 --renew 3

Two ``posmon run`` instances (``chaos.cluster``) share a throwaway PostgreSQL server (``chaos/postgres.py``:
initdb + pg_ctl on a unix socket) and trade one account on the Aster simulator served in this process, holding a
long and a short position. Each round kills the owner and measures, from the kill:

- ``lease_s``: until the standby holds the lease (the dead owner's lease runs out, the standby's next try takes it);
- ``ready_s``: until the new owner's daemon is ready (started from the store, reconciled with the venue);

then restarts the killed instance as the new standby. ``--sharded``: two named accounts (``[accounts.*]``), one on
Aster's simulator and one on Lighter's, one per instance; each round kills the owner of the next account (it holds
one), times that account's takeover the same way, restarts the killed instance and waits for the hand-over that
splits the accounts one and one again. Target: ``lease_s`` and ``ready_s`` under 2 x lease. At the end
every position must still be covered by exactly one TP and one SL and no order doubled (``chaos.invariants``).
Prints one JSON object (also written to ``bench/results/takeover.json``), with ``machine_load`` as the other
benchmarks record it: on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import trio

from chaos.cluster import Cluster
from chaos.venues import AsterVenue
from posmon.domain.orders import Side
from tests.helpers.shard_cluster import ShardCluster, aster_and_lighter, serve_all

RESULTS = Path(__file__).resolve().parent / "results"


def _ready_lines(cluster: Cluster, name: str) -> int:
    return cluster.log(name).count("posmon ready")


async def run(kills: int, lease: float, renew: float, sharded: bool = False) -> dict[str, Any]:
    from chaos.postgres import start_server

    server = start_server()
    work = Path(tempfile.mkdtemp(prefix="posmon-takeover-"))
    load = os.getloadavg()[0]
    try:
        async with trio.open_nursery() as nursery:
            from posmon.store.postgres import PgStore

            url = server.new_store_url()
            PgStore.open(url).close()
            cluster: Any
            if sharded:
                venues = aster_and_lighter("aster_main", "lighter_main")
                cluster = ShardCluster(work, url, venues, await serve_all(venues, nursery), lease=lease, renew=renew)
            else:
                venue = AsterVenue(("BTCUSDT",))
                rest_url, ws_url = await venue.serve(nursery)
                cluster = Cluster(work, url, venue, rest_url, ws_url, lease=lease, renew=renew)
            try:
                rounds = await (_shard_rounds(cluster, kills) if sharded else _rounds(cluster, kills))
            finally:
                with trio.CancelScope(shield=True):
                    await cluster.stop_all()
            violations = cluster.violations()
            nursery.cancel_scope.cancel()
    finally:
        server.cleanup()
    lease_s = [r["lease_s"] for r in rounds]
    ready_s = [r["ready_s"] for r in rounds]
    return {
        "kills": len(rounds),
        "accounts": ["aster_main", "lighter_main"] if sharded else ["aster"],
        "lease_seconds": lease,
        "lease_renew_seconds": renew,
        "target_s": 2 * lease,
        "lease_s": {"p50": round(statistics.median(lease_s), 3), "max": round(max(lease_s), 3)},
        "ready_s": {"p50": round(statistics.median(ready_s), 3), "max": round(max(ready_s), 3)},
        "violations": [f"{v.invariant}: {v.detail}" for v in violations],
        "machine_load": {"load_1m_at_start": round(load, 2), "cpus": os.cpu_count()},
        "rounds": rounds,
    }


async def _rounds(cluster: Cluster, kills: int) -> list[dict[str, float]]:
    venue = cluster.venue
    cluster.start("a")
    await cluster.until_owner()
    cluster.start("b")
    await cluster.until_registered("a", "b")
    venue.entry("BTCUSDT", Side.LONG, Decimal(100))
    venue.entry("BTCUSDT", Side.SHORT, Decimal(100))
    await cluster.until_protected()
    rounds = []
    for i in range(kills):
        owner, _token = await cluster.until_owner()
        standby = "b" if owner == "a" else "a"
        readies = _ready_lines(cluster, standby)
        cluster.kill(owner)
        killed = time.monotonic()
        await cluster.until_owner(other_than=owner)
        took = time.monotonic() - killed
        with trio.fail_after(60):
            while _ready_lines(cluster, standby) == readies:  # noqa: ASYNC110 - another process's log
                await trio.sleep(0.01)
        ready = time.monotonic() - killed
        rounds.append({"round": i + 1, "lease_s": round(took, 3), "ready_s": round(ready, 3)})
        print(f"kill {i + 1}/{kills}: {owner} -> {standby}: lease {took:.2f} s, ready {ready:.2f} s", file=sys.stderr)
        registered = cluster.log(owner).count("registered (lease")
        cluster.start(owner)  # the killed instance comes back as the standby
        with trio.fail_after(60):
            while cluster.log(owner).count("registered (lease") == registered:  # noqa: ASYNC110
                await trio.sleep(0.02)
    await cluster.until_protected()
    return rounds


async def _shard_rounds(cluster: ShardCluster, kills: int) -> list[dict[str, Any]]:
    """Kill the owner of each account in turn (one account per instance), time its takeover, restart the killed
    instance and wait for the accounts to be split one and one again."""
    cluster.start("a")
    cluster.start("b")
    await cluster.until_split({"a": 1, "b": 1})
    for venue in cluster.venues.values():
        venue.entry(venue.symbols[0], Side.LONG, Decimal(100))
    await cluster.until_protected()
    accounts = sorted(cluster.venues)
    rounds = []
    for i in range(kills):
        account = accounts[i % len(accounts)]
        owner = (await trio.to_thread.run_sync(cluster.owners))[account][0]
        standby = "b" if owner == "a" else "a"
        readies = cluster.ready_lines(standby, account)
        cluster.kill(owner)
        killed = time.monotonic()
        with trio.fail_after(60):
            while (await trio.to_thread.run_sync(cluster.owners)).get(account, ("",))[0] != standby:  # noqa: ASYNC110
                await trio.sleep(0.01)
        took = time.monotonic() - killed
        with trio.fail_after(60):
            while cluster.ready_lines(standby, account) == readies:  # noqa: ASYNC110 - another process's log
                await trio.sleep(0.01)
        ready = time.monotonic() - killed
        rounds.append({"round": i + 1, "account": account, "lease_s": round(took, 3), "ready_s": round(ready, 3)})
        print(
            f"kill {i + 1}/{kills}: {account}: {owner} -> {standby}: lease {took:.2f} s, ready {ready:.2f} s",
            file=sys.stderr,
        )
        cluster.start(owner)
        await cluster.until_split({"a": 1, "b": 1})
        await cluster.until_protected()
    return rounds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.takeover", description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--lease", type=float, default=2.0, help="[cluster] lease_seconds (default 2)")
    p.add_argument("--renew", type=float, default=0.5, help="[cluster] lease_renew_seconds (default 0.5)")
    p.add_argument(
        "--sharded", action="store_true", help="two named accounts (Aster and Lighter simulators), one per instance"
    )
    args = p.parse_args(argv)
    result = trio.run(run, args.kills, args.lease, args.renew, args.sharded)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("takeover_sharded.json" if args.sharded else "takeover.json")).write_text(text + "\n")
    print(text)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
