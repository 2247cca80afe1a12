"""Leases with fencing tokens: which instance owns an account, and how an owner that lost it is stopped.

The rules (issue 17):

- **Acquire** an account when its lease row is absent, expired or released, in one transaction that takes the row
  (``FOR UPDATE``), sets the owner and increments the fencing token. Expiries are on the database server's clock
  (``clock_timestamp()``), so no two hosts' clocks are ever compared.
- **Renew** every ``lease_renew_seconds`` while the row still has this owner and token (a renewal that finds
  another token means the account was taken over: the run stops).
- **Stop sending before the lease can expire**: the renewal deadline is when the last successful renewal was
  *sent* plus ``lease_seconds`` minus ``margin`` (the server counts the lease from when it *received* it, later).
  Past the deadline the order gateway's gate holds every venue call and the account's run is cancelled at once;
  a paused process (SIGSTOP, a long GC, a partition) finds the deadline passed the moment it runs again.
- **Fence every write**: ``Store.fence`` checks, first inside each write transaction and on the connection that
  will commit it, that the lease row still has this owner and token (``FOR SHARE``: a takeover waits for the
  write, or the write waits for the takeover and then finds the new token). A fenced write raises ``LeaseLost``,
  rolls back, and cancels the account's run.

What can still reach a venue after a takeover is a request already on the wire when the owner stopped (it was
gated before its deadline, so it left before the lease expired); the README ("Failover") says per venue what
such a late request can do.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from posmon.actors.messages import Notice
from posmon.cluster.settings import ClusterSettings
from posmon.metrics import Metrics
from posmon.notify.kinds import NoticeKind
from posmon.store.errors import StoreError
from posmon.store.postgres import PgConn

log = logging.getLogger(__name__)
T = TypeVar("T")

# The database server's clock, in seconds since the epoch: every expiry is written and compared on it.
NOW = "EXTRACT(EPOCH FROM clock_timestamp())"


class LeaseLost(StoreError):
    """A write of an instance that no longer owns the account's lease (fenced off): rolled back, the run stops."""


@dataclass(frozen=True, slots=True)
class Acquired:
    """A lease just taken: its token, and whom it was taken from (None: the account had never been owned)."""

    account: str
    token: int
    previous_owner: str | None
    previous_token: int | None


# --- the SQL: synchronous, on one connection (a worker thread's) ---------------------------------------------


def register(conn: PgConn, instance: str) -> None:
    conn.execute(
        f"INSERT INTO instances (id, host, pid, started_at, last_seen) VALUES (?, ?, ?, {NOW}, {NOW}) "
        f"ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, started_at = excluded.started_at, "
        f"last_seen = excluded.last_seen",
        [instance, socket.gethostname(), os.getpid()],
    )


def heartbeat(conn: PgConn, instance: str) -> None:
    conn.execute(f"UPDATE instances SET last_seen = {NOW} WHERE id = ?", [instance])


def unregister(conn: PgConn, instance: str) -> None:
    conn.execute("DELETE FROM instances WHERE id = ?", [instance])


def live_window(lease_seconds: float) -> float:
    """How recently an instance must have been heard of to count as live: ``lease - margin``. An instance silent
    for that long has passed the renewal deadline of every lease it held and stopped sending for them all."""
    return lease_seconds * 3 / 4


def fair_share(accounts: int, live: int) -> int:
    """How many accounts one instance may hold: ``ceil(accounts / live instances)`` (at least one)."""
    return max(1, -(-accounts // max(1, live)))


def census(conn: PgConn, instance: str, lease_seconds: float) -> tuple[int, list[str]]:
    """(live instances, counting this one; the accounts this instance holds unexpired leases of)."""
    row = conn.execute(
        f"SELECT count(*) FROM instances WHERE last_seen > {NOW} - ? OR id = ?", [live_window(lease_seconds), instance]
    ).fetchone()
    held = conn.execute(
        f"SELECT account FROM leases WHERE owner = ? AND expires_at > {NOW} ORDER BY account", [instance]
    ).fetchall()
    return max(1, int(row[0])), [r[0] for r in held]


def try_acquire(conn: PgConn, account: str, instance: str, lease_seconds: float, accounts: int = 1) -> Acquired | None:
    """Take ``account``'s lease if it is free (no row, expired, released) and this instance has room for it: it
    holds fewer than its fair share of the ``accounts`` over the live instances, or the lease's owner is gone
    (not heard of within ``live_window``: no share to keep for it). None otherwise."""
    conn.execute("BEGIN")
    try:
        row = conn.execute(
            f"SELECT owner, token, expires_at <= {NOW} FROM leases WHERE account = ? FOR UPDATE", [account]
        ).fetchone()
        got = None
        if row is None or row[2]:
            live, held = census(conn, instance, lease_seconds)
            owner_gone = row is not None and row[0] != instance and not _is_live(conn, row[0], lease_seconds)
            room = len([a for a in held if a != account]) < fair_share(accounts, live)
            if room or owner_gone:
                got = _take(conn, account, instance, lease_seconds, row)
        previous: tuple[str | None, int | None] = (None, None) if row is None else (row[0], int(row[1]))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return None if got is None else Acquired(account, int(got[0]), *previous)


def _is_live(conn: PgConn, instance: str, lease_seconds: float) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM instances WHERE id = ? AND last_seen > {NOW} - ?", [instance, live_window(lease_seconds)]
    ).fetchone()
    return row is not None


def _take(conn: PgConn, account: str, instance: str, lease_seconds: float, row: Any) -> Any:
    if row is None:
        return conn.execute(
            f"INSERT INTO leases (account, owner, token, expires_at, acquired_at, renewed_at) "
            f"VALUES (?, ?, 1, {NOW} + ?, {NOW}, {NOW}) ON CONFLICT (account) DO NOTHING RETURNING token",
            [account, instance, lease_seconds],
        ).fetchone()
    return conn.execute(
        f"UPDATE leases SET owner = ?, token = token + 1, expires_at = {NOW} + ?, acquired_at = {NOW}, "
        f"renewed_at = {NOW} WHERE account = ? RETURNING token",
        [instance, lease_seconds, account],
    ).fetchone()


def renew(conn: PgConn, account: str, instance: str, token: int, lease_seconds: float) -> bool:
    """Extend the lease; False when the row no longer has this owner and token (taken over). Heartbeats too."""
    row = conn.execute(
        f"WITH renewed AS (UPDATE leases SET expires_at = {NOW} + ?, renewed_at = {NOW} "
        f"WHERE account = ? AND owner = ? AND token = ? RETURNING 1), "
        f"seen AS (UPDATE instances SET last_seen = {NOW} WHERE id = ? RETURNING 1) "
        f"SELECT (SELECT count(*) FROM renewed), (SELECT count(*) FROM seen)",
        [lease_seconds, account, instance, token, instance],
    ).fetchone()
    return bool(row[0])


def release(conn: PgConn, account: str, instance: str, token: int) -> None:
    """Expire the lease now (a clean stop): a standby takes it at its next try instead of waiting it out."""
    conn.execute(
        "UPDATE leases SET expires_at = 0 WHERE account = ? AND owner = ? AND token = ?", [account, instance, token]
    )


def idle_transaction_bound(lease_seconds: float) -> float:
    """How long a cluster member's session may sit inside a transaction before the server ends it: half a lease,
    so a member paused mid-transaction (its fence holding the lease row ``FOR SHARE``, or its takeover holding it
    ``FOR UPDATE``) releases the row before the lease it may hold expires, and a takeover is not held up."""
    return lease_seconds / 2


def check_fence(conn: Any, account: str, instance: str, token: int) -> None:
    """Inside a write transaction: raise ``LeaseLost`` unless the lease row still has this owner and token.

    ``FOR SHARE`` holds the row until the write commits: a takeover (``FOR UPDATE``) waits for it, so a write
    that passed the fence lands before the new owner reads the store."""
    row = conn.execute(
        "SELECT 1 FROM leases WHERE account = ? AND owner = ? AND token = ? FOR SHARE", [account, instance, token]
    ).fetchone()
    if row is None:
        raise LeaseLost(f"lease of {account} lost (token {token} of {instance} is no longer current): write refused")


def _store_failure(exc: BaseException) -> StoreError | None:
    """The ``StoreError`` an account's run failed with (alone, or with the cancellations it caused in its
    nurseries), or None for anything else (a bug, a cancellation from outside: re-raised)."""
    leaves: list[BaseException] = []
    pending = [exc]
    while pending:
        e = pending.pop()
        if isinstance(e, BaseExceptionGroup):
            pending += e.exceptions
        else:
            leaves.append(e)
    failures = [e for e in leaves if isinstance(e, StoreError)]
    if failures and all(isinstance(e, (StoreError, trio.Cancelled)) for e in leaves):
        return failures[0]
    return None


# --- one held lease ------------------------------------------------------------------------------------------


class HeldLease:
    """The lease of one account while this instance runs it: the gate of its order gateway and its store fence.

    ``lose(reason)`` (from any thread) cancels the account's run; the gate holds every venue call from the
    renewal deadline on, or once the lease is lost.
    """

    def __init__(self, account: str, instance: str, token: int, deadline: float, scope: trio.CancelScope) -> None:
        self.account, self.instance, self.token = account, instance, token
        self.deadline = deadline  # trio time after which nothing is sent (moved on by each renewal)
        self.renewed_at = trio.current_time()
        self.lost_reason: str | None = None
        self.handed_over = False  # stopped to give the account to an instance with room (rebalancing)
        self.released = False
        self._scope = scope
        self._trio_token = trio.lowlevel.current_trio_token()

    def lose(self, reason: str) -> None:
        """The run stops now; thread-safe (the fence runs in the store's writer thread)."""

        def on_trio() -> None:
            if self.lost_reason is None:
                self.lost_reason = reason
                log.error(
                    "cluster: %s: %s; stopping the account (nothing more is sent or written)", self.account, reason
                )
            self._scope.cancel()

        self._trio_token.run_sync_soon(on_trio)

    def hand_over(self) -> None:
        """Stop the run cleanly (nothing is sent on the way out) so that the lease can be released to another."""
        self.handed_over = True
        self._scope.cancel()

    async def gate(self) -> None:
        """Before each venue call of the order gateway: past the deadline (or lost) the call never goes out; the
        run is cancelled at the same moment, which ends the wait."""
        if self.lost_reason is None and trio.current_time() < self.deadline:
            return
        self.lose(self.lost_reason or "renewal deadline passed before the lease could be renewed")
        await trio.sleep_forever()

    def fence(self, conn: Any) -> None:
        """``Store.fence``: the lease check in every write transaction."""
        try:
            check_fence(conn, self.account, self.instance, self.token)
        except LeaseLost as exc:
            self.lose(str(exc))
            raise


# --- the node: registration, standby, ownership --------------------------------------------------------------

RunAccount = Callable[[str, HeldLease], Awaitable[None]]


class ClusterNode:
    """One instance of a cluster: registers, waits for each account's lease, runs it while held.

    Its own connection to the store (not the store's: a renewal never queues behind the actors' commits), used by
    one worker thread at a time; a call that hangs (a paused server) is abandoned and the connection replaced.
    """

    def __init__(
        self,
        url: str,
        settings: ClusterSettings,
        metrics: Metrics,
        *,
        notices: Callable[[Notice], None] = lambda _notice: None,
    ) -> None:
        self.url, self.settings, self.metrics = url, settings, metrics
        self.instance = settings.instance
        self._notices = notices
        self._conn: PgConn | None = None
        self._lock = trio.Lock()
        self.held: dict[str, HeldLease] = {}
        self.accounts = 1  # how many accounts the cluster shares out (the fair share's numerator)

    # -- database calls

    async def _db(self, what: str, call: Callable[[PgConn], T], within: float | None = None) -> T:
        """``call`` on the node's connection in a worker thread, within ``within`` seconds, else ``StoreError``."""
        timeout = self.settings.lease_seconds / 2 if within is None else within
        async with self._lock:

            def run() -> T:
                if self._conn is None or self._conn._lost():
                    self._conn = PgConn(
                        self.url,
                        f"cluster {self.instance}",
                        connect_timeout=timeout,
                        idle_transaction_timeout=idle_transaction_bound(self.settings.lease_seconds),
                    )
                return call(self._conn)

            with trio.move_on_after(timeout):
                return await trio.to_thread.run_sync(run, abandon_on_cancel=True)
            self._conn = None  # the abandoned thread may still use it: the next call connects anew
            raise StoreError(f"cluster: {what} took longer than {timeout:.1f} s")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the instance

    async def run(self, accounts: list[str], run_account: RunAccount) -> None:
        """Register, then own (or stand by for) every account in ``accounts`` until cancelled: at most a fair share
        of them (``fair_share``) while other instances are live, handing surplus ones over as instances join."""
        self.accounts = len(accounts)
        await self._until_done("registering", lambda c: register(c, self.instance))
        log.info(
            "cluster: instance %s registered (lease %.1f s, renewed every %.1f s); standing by for %s",
            self.instance,
            self.settings.lease_seconds,
            self.settings.lease_renew_seconds,
            ", ".join(accounts),
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat)
                for account in accounts:
                    self.metrics.set("lease_owner", 0, account=account)
                    nursery.start_soon(self._own, account, run_account)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.settings.lease_seconds / 2):
                try:
                    await self._db("unregistering", lambda c: unregister(c, self.instance))
                except StoreError as exc:
                    log.warning("cluster: could not unregister %s: %s", self.instance, exc)
            self.close()

    async def _until_done(self, what: str, call: Callable[[PgConn], T]) -> T:
        """Retry ``call`` while the store is unreachable (a server restart), logging every ten seconds."""
        logged = float("-inf")
        while True:
            try:
                return await self._db(what, call)
            except StoreError as exc:
                if time.monotonic() - logged >= 10:
                    logged = time.monotonic()
                    log.warning("cluster: %s: %s; retrying", what, exc)
                await trio.sleep(self.settings.lease_renew_seconds)

    async def _heartbeat(self) -> None:
        """``instances.last_seen`` every renewal period, and the census: an instance holding more than its fair
        share (another instance joined) hands one account over per period until it holds its share."""
        s = self.settings

        def beat(c: PgConn) -> tuple[int, list[str]]:
            heartbeat(c, self.instance)
            return census(c, self.instance, s.lease_seconds)

        while True:
            await trio.sleep(s.lease_renew_seconds)
            try:
                live, held = await self._db("heartbeat", beat)
            except StoreError as exc:
                log.debug("cluster: heartbeat failed: %s", exc)
                continue
            self.metrics.set("cluster_live_instances", live)
            share = fair_share(self.accounts, live)
            running = [a for a in held if a in self.held and not self.held[a].handed_over]
            if len(held) > share and running:
                account = running[-1]
                log.info(
                    "cluster: %s holds %d accounts, more than its share of %d (%d live instances): handing %s over",
                    self.instance,
                    len(held),
                    share,
                    live,
                    account,
                )
                self.held[account].hand_over()

    async def _acquire(self, account: str) -> tuple[Acquired, float]:
        """Wait until this instance holds ``account``'s lease: (what was acquired, trio time the request left)."""
        s = self.settings
        while True:
            sent = trio.current_time()
            try:
                got = await self._db(
                    f"acquiring {account}",
                    lambda c: try_acquire(c, account, self.instance, s.lease_seconds, self.accounts),
                )
            except StoreError as exc:
                log.warning("cluster: %s", exc)
                got = None
            if got is not None:
                return got, sent
            await trio.sleep(s.lease_renew_seconds)

    async def _own(self, account: str, run_account: RunAccount) -> None:
        """Standby until the lease is ours, run the account while it is, and stand by again when it is lost."""
        s = self.settings
        while True:
            got, sent = await self._acquire(account)
            with trio.CancelScope() as scope:
                lease = HeldLease(account, self.instance, got.token, sent + s.lease_seconds - s.margin, scope)
                lease.renewed_at = sent
                self.held[account] = lease
                self._announce(got)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._keep, lease)
                        await run_account(account, lease)
                        nursery.cancel_scope.cancel()
                except BaseException as exc:
                    failure = _store_failure(exc)
                    await self._release(lease)
                    if failure is None:
                        raise
                    # The store failed under the account (a server restart during its start-up, say): the
                    # instance lives on and stands by; whoever takes the lease next starts it from the store.
                    if lease.lost_reason is None:  # a fenced write (``LeaseLost``) has said why already
                        lease.lost_reason = f"the account's run failed on the store ({failure})"
                        log.error("cluster: %s: %s; stopping the account", account, lease.lost_reason)
                finally:
                    del self.held[account]
                    self.metrics.set("lease_owner", 0, account=account)
            if lease.lost_reason is None:  # ended by itself or handed over: a standby may have it at once
                await self._release(lease)
                if not lease.handed_over:
                    return
                log.info("cluster: %s handed over by %s; standing by for it", account, self.instance)
                continue
            self._notices(
                Notice(
                    NoticeKind.LEASE_LOST,
                    account,
                    "",
                    "",
                    f"{self.instance} lost the lease of {account} (token {lease.token}): {lease.lost_reason}; "
                    "standing by",
                    False,
                    {"account": account, "instance": self.instance, "token": lease.token},
                )
            )
            log.warning("cluster: %s stopped on %s; standing by for its lease again", account, self.instance)

    async def _release(self, lease: HeldLease) -> None:
        if lease.released:
            return
        lease.released = True
        with trio.CancelScope(shield=True):
            try:
                await self._db(
                    f"releasing {lease.account}", lambda c: release(c, lease.account, self.instance, lease.token)
                )
                log.info("cluster: released the lease of %s (token %d)", lease.account, lease.token)
            except StoreError as exc:
                log.warning("cluster: could not release %s (%s); it expires by itself", lease.account, exc)

    def _announce(self, got: Acquired) -> None:
        account = got.account
        self.metrics.set("lease_owner", 1, account=account)
        lease = self.held[account]
        self.metrics.set_function(
            "lease_seconds_to_expiry", lambda: max(0.0, lease.deadline - trio.current_time()), account=account
        )
        self.metrics.set_function("lease_age_seconds", lambda: trio.current_time() - lease.renewed_at, account=account)
        if got.previous_owner is None:
            log.info("cluster: %s owns %s (token %d, first owner)", self.instance, account, got.token)
            return
        self.metrics.inc("lease_takeovers", account=account)
        text = (
            f"{self.instance} took over {account} from {got.previous_owner} (token {got.previous_token} -> "
            f"{got.token}); starting it from the store and reconciling with the venue"
        )
        log.warning("cluster: %s", text)
        self._notices(
            Notice(
                NoticeKind.TAKEOVER,
                account,
                "",
                "",
                text,
                False,
                {"account": account, "from": got.previous_owner, "to": self.instance, "token": got.token},
            )
        )

    async def _keep(self, lease: HeldLease) -> None:
        """Renew every ``lease_renew_seconds``; the run is cancelled when a renewal finds the lease taken, or
        when the renewal deadline passes without a successful one."""
        s = self.settings
        next_at = lease.renewed_at + s.lease_renew_seconds
        while True:
            with trio.move_on_at(lease.deadline):
                await trio.sleep_until(next_at)
                sent = trio.current_time()
                try:
                    ok = await self._db(
                        f"renewing {lease.account}",
                        lambda c: renew(c, lease.account, self.instance, lease.token, s.lease_seconds),
                        within=max(0.0, lease.deadline - sent),
                    )
                except StoreError as exc:
                    log.warning("cluster: %s (deadline in %.1f s)", exc, lease.deadline - trio.current_time())
                    next_at = trio.current_time() + min(s.lease_renew_seconds, 0.25)
                    continue
                if not ok:
                    lease.lose(
                        f"the lease of {lease.account} was taken over (token {lease.token} is no longer current)"
                    )
                    return
                lease.deadline = sent + s.lease_seconds - s.margin
                lease.renewed_at = sent
                next_at = sent + s.lease_renew_seconds
                continue
            lease.lose("the renewal deadline passed without a successful renewal")
            return
