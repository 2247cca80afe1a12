"""The operator API of an instance holding several accounts (``[accounts.*]`` with ``[cluster] enabled = true``).

Each held account runs its own ``run_daemon`` (``posmon.cluster.run``), none serving an API of its own; the
instance serves one on ``[api]`` over ``InstanceControl``, which answers for the accounts it holds *now*:

- ``status``: every held account's status (its daemon's control's), merged like a multi-venue daemon's (tranches,
  streams named "<account> price", one ``accounts`` entry each) plus ``extra``: the instance, its role (``active``
  or ``standby``) and each account's own report, or ``{"status": 503, "error": "account starting"}`` until its
  daemon is up.
- commands go to the account named by ``venue`` (the account's name, as with a multi-venue daemon); one this
  instance does not hold answers 409 naming where to look (``posmon cluster status``), one starting 503 with
  Retry-After. Hedge pairs need both legs in one daemon: 409 here.
- ``/health`` and ``/ready`` through ``InstanceReadiness``: ready when every held account is ready. A standby
  holding nothing is ready (200, ``"role": "standby"``): it is doing its job, so a container ``HEALTHCHECK`` or a
  systemd watchdog must not restart it; a load balancer that should reach only instances running accounts reads
  ``role`` (or asks ``/api/monitor/status``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import trio

from posmon.control import (
    STARTING_RETRY_AFTER_SECONDS,
    AccountView,
    CloseResult,
    ControlError,
    LinkRequest,
    OpenRequest,
    OpenResult,
    PairRequest,
    PairStatusView,
    StatusReport,
    StopResult,
    StreamView,
    TrancheView,
)
from posmon.domain.orders import Side
from posmon.readiness import Readiness, State
from posmon.store.history import History

if TYPE_CHECKING:
    from posmon.daemon import Daemon

PAIRS_REFUSED = (
    "hedge pairs need both legs' accounts in one daemon; with [accounts.*] in a cluster each account runs its own "
    "daemon: open the legs separately, or run the pair's venues in one daemon without [accounts.*]"
)


STARTING_RETRY_AFTER = STARTING_RETRY_AFTER_SECONDS


class InstanceControl:
    """``Control`` over the accounts this instance holds (each its own daemon); see the module's docstring."""

    def __init__(self, instance: str, accounts: list[str]) -> None:
        self.instance = instance
        self.configured = list(accounts)
        self._held: dict[str, Daemon | None] = {}  # held account -> its daemon once started (None while starting)
        self.started_at = time.time()

    # --- what cluster.run tells it ------------------------------------------------------------------------

    def starting(self, account: str) -> None:
        self._held[account] = None

    def started(self, account: str, daemon: Daemon) -> None:
        if account in self._held:
            self._held[account] = daemon

    def released(self, account: str) -> None:
        self._held.pop(account, None)

    @property
    def held(self) -> list[str]:
        return sorted(self._held)

    def account_state(self, account: str) -> State:
        daemon = self._held.get(account)
        return "starting" if daemon is None else daemon.readiness.state

    def describe(self) -> dict[str, Any]:
        """What ``/health`` and ``/ready`` add to their body: the instance, its role and each held account's phase."""
        return {
            "instance": self.instance,
            "role": "active" if self._held else "standby",
            "accounts": {name: self.account_state(name) for name in self.held},
        }

    # --- reading ------------------------------------------------------------------------------------------

    async def status(self) -> StatusReport:
        await trio.lowlevel.checkpoint()
        reports: dict[str, Any] = {}
        tranches: list[TrancheView] = []
        streams: list[StreamView] = []
        views: list[AccountView] = []
        unmonitored: list[str] = []
        for name in self.held:
            daemon = self._held.get(name)
            if daemon is None or daemon.control is None:
                reports[name] = {"status": 503, "error": "account starting", "retry_after": STARTING_RETRY_AFTER}
                views.append(AccountView(name, "starting", "account starting", None, [], None, [], 0))
                continue
            report = await daemon.control.status()
            reports[name] = report
            tranches += report.tranches
            streams += [dataclasses.replace(s, name=f"{name} {s.name}") for s in report.streams]
            views += report.accounts
            unmonitored += [f"{name}:{sym}" for sym in report.unmonitored]
        return StatusReport(
            running=True,  # the instance: a held account that stopped is lost and released, not shown as running
            venue=",".join(self.held) or f"{self.instance} (standby)",  # `posmon status`: "posmon on a (standby)"
            started_at=self.started_at,
            streams=streams,
            tranches=tranches,
            unmonitored=unmonitored,
            extra={**self.describe(), "accounts": reports},
            now=time.time(),
            accounts=views,
        )

    async def history(
        self,
        *,
        since: float | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        venue: str | None = None,
    ) -> History:
        """One held account's (``venue``), or every account's from the shared store (any held account reads it)."""
        if venue is not None:
            return await self._control(venue).history(since=since, symbol=symbol, limit=limit, venue=venue)
        await trio.lowlevel.checkpoint()
        daemon = next((d for d in self._held.values() if d is not None), None)
        if daemon is None:
            raise self._not_here(None)
        return daemon.store.history(since=since, symbol=symbol, venue=None, limit=limit)

    async def pairs(self) -> list[PairStatusView]:
        await trio.lowlevel.checkpoint()
        return []

    # --- acting: routed to the account that holds the symbol ---------------------------------------------

    def _not_here(self, account: str | None) -> ControlError:
        held = ", ".join(self.held) or "none: it stands by"
        what = f"account {account!r} is" if account else "accounts are"
        return ControlError(
            f"{what} not held by instance {self.instance!r} (it holds {held}); `posmon cluster status` names each "
            "account's owner: send the command to that instance's API",
            field="venue",
            status=409,
        )

    def _control(self, venue: str | None) -> Any:
        if venue is None:
            if len(self._held) != 1:
                if not self._held:
                    raise self._not_here(None)
                raise ControlError(
                    f"instance {self.instance!r} holds several accounts ({', '.join(self.held)}): name the account "
                    "in venue",
                    field="venue",
                )
            venue = self.held[0]
        name = venue.lower()
        if name not in self._held:
            if name in self.configured:
                raise self._not_here(name)
            raise ControlError(
                f"account {venue!r} is not configured; expected one of {', '.join(map(repr, self.configured))}",
                field="venue",
            )
        daemon = self._held[name]
        if daemon is None or daemon.control is None:
            raise ControlError(
                f"account {name} is starting; retry in {STARTING_RETRY_AFTER_SECONDS:g} s",
                field="venue",
                status=503,
                retry_after=STARTING_RETRY_AFTER_SECONDS,
            )
        return daemon.control

    async def open_position(self, request: OpenRequest) -> OpenResult:
        result: OpenResult = await self._control(request.venue).open_position(request)
        return result

    async def close(
        self, symbol: str, side: Side | None = None, tranche_id: int | None = None, *, venue: str | None = None
    ) -> list[CloseResult]:
        result: list[CloseResult] = await self._control(venue).close(symbol, side, tranche_id)
        return result

    async def stop_monitoring(self, symbol: str, *, venue: str | None = None) -> StopResult:
        result: StopResult = await self._control(venue).stop_monitoring(symbol)
        return result

    async def resume_monitoring(self, symbol: str, *, venue: str | None = None) -> None:
        await self._control(venue).resume_monitoring(symbol)

    async def open_pair(self, request: PairRequest) -> PairStatusView | dict[str, Any]:
        raise ControlError(PAIRS_REFUSED, status=409)

    async def link_pair(self, request: LinkRequest) -> PairStatusView | dict[str, Any]:
        raise ControlError(PAIRS_REFUSED, status=409)

    async def close_pair(self, pair_id: int) -> PairStatusView | dict[str, Any]:
        raise ControlError(PAIRS_REFUSED, status=409)


class InstanceReadiness(Readiness):
    """``/ready`` of the instance: ready when every held account's daemon is (a standby holding none is ready).

    Unlike a daemon's start-up it can go back to ``starting``: a lease taken starts an account afresh."""

    def __init__(self, control: InstanceControl) -> None:
        super().__init__("standing by")
        self._control = control

    @property
    def state(self) -> State:
        return "ready" if self.is_ready else "starting"

    @property
    def is_ready(self) -> bool:
        return all(self._control.account_state(a) == "ready" for a in self._control.held)
