"""``posmon run`` with ``[cluster] enabled = true``: the daemon of an account runs only while this instance holds
the account's lease; until then (and again after losing it) the instance stands by. With several accounts
(``[accounts.<name>]``, or ``[daemon] venues``) each instance runs the ones it holds, at most its fair share.

A wrapper around the one-account daemon (``run_daemon``): each time the lease is taken the account starts afresh
from the shared store and reconciles with the venue, exactly as at any start-up; the lease's fence guards the
store's writes and its gate the order gateway's calls. Takeovers and losses go to the notification channels.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable

import trio

from posmon.actors.messages import Notice
from posmon.api.app import create_app
from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings
from posmon.cluster.accounts import accounts_of, opener_of
from posmon.cluster.api import InstanceControl, InstanceReadiness
from posmon.cluster.leases import ClusterNode, HeldLease, idle_transaction_bound
from posmon.cluster.settings import ClusterSettings
from posmon.config import Settings
from posmon.daemon import run_daemon
from posmon.metrics import Metrics, render
from posmon.notify import NotifyService, NotifySettings
from posmon.startup import (
    CONNECT_TIMEOUT_SECONDS,
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
)
from posmon.store.errors import StoreError
from posmon.store.postgres import PgStore
from posmon.store.store import Store

log = logging.getLogger(__name__)

#: Runs one account until cancelled: ``start(order_gate=..., metrics=...)``.
StartAccount = Callable[..., Awaitable[None]]


async def run_clustered(
    settings: Settings,
    store: Store,
    cluster: ClusterSettings,
    start: StartAccount,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    api: ApiSettings | None = None,
) -> None:
    """Register, stand by, and run each account while its lease is held, until cancelled.

    One account (no ``[accounts.*]``, one venue): ``start`` runs it on ``store`` as before, the operator API
    with it. Several: each held account runs its own ``run_daemon`` on a store connection of its own, so its
    group commit holds only its own decisions and its lease's fence guards exactly them (a lost lease fails that
    account's writes, never another's); ``api`` is then served by the instance over the accounts it holds
    (``posmon.cluster.api``), never by an account's daemon.
    """
    metrics = Metrics()
    notify = NotifyService(NotifySettings.from_config(settings.notify, os.environ), metrics)
    accounts = accounts_of(settings)

    def notice(n: Notice) -> None:
        metrics.inc("notices", kind=n.kind)
        notify.offer(n)

    node = ClusterNode(settings.daemon.store, cluster, metrics, notices=notice)
    by_name = {a.name: a for a in accounts}
    single = len(accounts) == 1 and not settings.accounts
    idle_bound = idle_transaction_bound(cluster.lease_seconds)
    if isinstance(store, PgStore):  # a write paused mid-transaction must not hold the lease row past the lease
        store.bound_idle_transactions(idle_bound)
    control = InstanceControl(cluster.instance, [a.name for a in accounts])

    async def run_account(name: str, lease: HeldLease) -> None:
        if single:
            store.fence = lease.fence
            try:
                await start(order_gate=lease.gate, metrics=metrics)
            finally:
                store.fence = None
            return
        account = by_name[name]
        own = await _open_store(settings.daemon.store)
        if isinstance(own, PgStore):
            own.bound_idle_transactions(idle_bound)
        own.fence = lease.fence
        control.starting(name)
        try:
            async with trio.open_nursery() as runs:
                daemon = await runs.start(
                    functools.partial(
                        run_daemon,  # opens the venue itself, retrying while it is unreachable; serves no API
                        account.settings,
                        [opener_of(account)],
                        own,
                        metrics=metrics,
                        order_gate=lease.gate,
                        freeze_heap=False,
                        connect_timeout=connect_timeout,
                    )
                )
                control.started(name, daemon)
        finally:
            control.released(name)
            metrics.forget(name)  # its streams' and book's gauges are the new owner's to report
            own.fence = None
            own.close()

    async with trio.open_nursery() as nursery:
        await nursery.start(notify.run)
        if not single and api is not None and api.enabled:
            metrics.set_build_info(",".join(by_name))  # a standby is scraped too (the absent() alert)
            app = create_app(
                control,  # InstanceControl: the Control protocol over the held accounts
                metrics_render=lambda: render(metrics),
                token=api.token or None,
                allowed_hosts=api.allowed_hosts,
                health_timeout_seconds=api.health_timeout_seconds,
                readiness=InstanceReadiness(control),
                describe=control.describe,
            )
            await nursery.start(serve_api, app, api)
        await node.run([a.name for a in accounts], run_account)
        nursery.cancel_scope.cancel()


async def _open_store(url: str) -> Store:
    """The account's own connections to the shared store, retried while the server is unreachable (a restart)."""
    delay = FIRST_BACKOFF_SECONDS
    while True:
        try:
            return await trio.to_thread.run_sync(Store.open, url)
        except StoreError as exc:
            log.warning("%s; retrying in %.1f s", exc, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
