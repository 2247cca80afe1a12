"""``posmon run`` with ``[cluster] enabled = true``: the daemon of an account runs only while this instance holds
the account's lease; until then (and again after losing it) the instance stands by.

A wrapper around the one-account daemon (``run_daemon``): each time the lease is taken the account starts afresh
from the shared store and reconciles with the venue, exactly as at any start-up; the lease's fence guards the
store's writes and its gate the order gateway's calls. Takeovers and losses go to the notification channels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

import trio

from posmon.actors.messages import Notice
from posmon.cluster.leases import ClusterNode, HeldLease, idle_transaction_bound
from posmon.cluster.settings import ClusterSettings
from posmon.config import Settings
from posmon.metrics import Metrics
from posmon.notify import NotifyService, NotifySettings
from posmon.store.postgres import PgStore
from posmon.store.store import Store

log = logging.getLogger(__name__)

#: Runs one account until cancelled: ``start(order_gate=..., metrics=...)``.
StartAccount = Callable[..., Awaitable[None]]


def accounts_of(settings: Settings) -> list[str]:
    """The accounts this instance can run, by name: the venue's name (one account per daemon today)."""
    return [settings.daemon.venue]


async def run_clustered(settings: Settings, store: Store, cluster: ClusterSettings, start: StartAccount) -> None:
    """Register, stand by, and run each account while its lease is held, until cancelled."""
    metrics = Metrics()
    notify = NotifyService(NotifySettings.from_config(settings.notify, os.environ), metrics)

    def notice(n: Notice) -> None:
        metrics.inc("notices", kind=n.kind)
        notify.offer(n)

    node = ClusterNode(settings.daemon.store, cluster, metrics, notices=notice)
    if isinstance(store, PgStore):  # a write paused mid-transaction must not hold the lease row past the lease
        store.bound_idle_transactions(idle_transaction_bound(cluster.lease_seconds))

    async def run_account(account: str, lease: HeldLease) -> None:
        store.fence = lease.fence
        try:
            await start(order_gate=lease.gate, metrics=metrics)
        finally:
            store.fence = None

    async with trio.open_nursery() as nursery:
        await nursery.start(notify.run)
        await node.run(accounts_of(settings), run_account)
        nursery.cancel_scope.cancel()
