"""The position directory: finds, or creates on first need, the actor of a (symbol, side).

It owns each actor's inbox and price slot, so both outlive the actor's
restarts: a supervised restart picks up the same inbox and nothing queued for
the actor is lost.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio

from posmon.actors.messages import AccountSnapshot, GatewayRequest, Notice, PositionMessage
from posmon.actors.position import ActorConfig, ActorInbox, ActorLinks, PositionActor
from posmon.actors.price_router import RouterRequest, Subscribe
from posmon.actors.price_slot import PriceSlot
from posmon.actors.risk_guard import RiskGuard
from posmon.actors.supervisor import RestartPolicy, supervise
from posmon.domain.orders import Side
from posmon.metrics import Metrics
from posmon.store.store import Restored, Store

log = logging.getLogger(__name__)

Key = tuple[str, Side]


class UnknownSymbol(KeyError):
    """The venue does not list this symbol, so posmon cannot round or place anything for it."""


@dataclass(slots=True)
class _Entry:
    send: trio.MemorySendChannel[PositionMessage]
    slot: PriceSlot
    actor: PositionActor | None = None
    # The first incarnation's start-up inputs (account slice, store rows), dropped once it is made: a restart
    # reads afresh, and the entry lives as long as the daemon (holding them kept the start-up snapshot alive).
    snapshot: AccountSnapshot | None = None
    restored: Restored | None = None


class PositionDirectory:
    def __init__(
        self,
        nursery: trio.Nursery,
        config_for: Callable[[str, Side], ActorConfig],
        *,
        router: trio.MemorySendChannel[RouterRequest],
        gateway: trio.MemorySendChannel[GatewayRequest],
        notices: trio.MemorySendChannel[Notice],
        store: Store,
        metrics: Metrics,
        clock: Callable[[], float],
        policy: RestartPolicy,
        unmonitored: set[str] | None = None,
        risk: RiskGuard | None = None,
    ) -> None:
        self._nursery = nursery
        self._config_for = config_for
        self._router = router
        self._gateway = gateway
        self._notices = notices
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._policy = policy
        self._actors: dict[Key, _Entry] = {}
        # Symbols the operator stopped monitoring (mirrors the store): no actor is started for them.
        self.unmonitored: set[str] = set(unmonitored or ())
        self._risk = risk

    def __contains__(self, key: Key) -> bool:
        return key in self._actors

    def keys(self) -> list[Key]:
        return list(self._actors)

    def __iter__(self) -> Iterator[Key]:
        """The keys at this moment (a copy: starting an actor while iterating is allowed)."""
        return iter(list(self._actors))

    def actor(self, symbol: str, side: Side) -> PositionActor | None:
        """The current incarnation (for status and tests); None before the first start."""
        entry = self._actors.get((symbol, side))
        return entry.actor if entry else None

    def inbox(
        self,
        symbol: str,
        side: Side,
        *,
        reconcile: bool = True,
        snapshot: AccountSnapshot | None = None,
        restored: Restored | None = None,
        await_sweep: bool = False,
    ) -> trio.MemorySendChannel[PositionMessage]:
        """The actor's inbox, starting the actor if this (symbol, side) has none yet.

        ``reconcile=False``: the caller is delivering a live fill for a key posmon has never held, so the new
        actor need not ask the exchange before acting on it (a burst of new keys would otherwise queue a
        reconcile per key ahead of their protection). ``snapshot``, ``restored`` and ``await_sweep`` go to a
        new actor's first incarnation only (see ``PositionActor``).
        """
        key = (symbol, side)
        entry = self._actors.get(key)
        if entry is None:
            entry = self._spawn(key, reconcile=reconcile, snapshot=snapshot, restored=restored, await_sweep=await_sweep)
        return entry.send

    def actors(self) -> list[PositionActor]:
        """Every current incarnation (for gauges and status)."""
        return [e.actor for e in self._actors.values() if e.actor is not None]

    def _spawn(
        self,
        key: Key,
        *,
        reconcile: bool,
        snapshot: AccountSnapshot | None = None,
        restored: Restored | None = None,
        await_sweep: bool = False,
    ) -> _Entry:
        symbol, side = key
        try:
            cfg = dataclasses.replace(self._config_for(symbol, side), reconcile_on_start=reconcile)
        except KeyError as exc:
            raise UnknownSymbol(symbol) from exc
        # Unbounded: the gateway replies into inboxes, and a full inbox must never stall the gateway.
        send, recv = trio.open_memory_channel[ActorInbox](math.inf)
        entry = _Entry(send, PriceSlot(send, side.sign), snapshot=snapshot, restored=restored)
        self._actors[key] = entry
        self._router.send_nowait(Subscribe(symbol, entry.slot))
        links = ActorLinks(
            inbox=recv,
            self_send=send,
            slot=entry.slot,
            gateway=self._gateway,
            notices=self._notices,
            store=self._store,
            metrics=self._metrics,
            clock=self._clock,
            risk=self._risk,
        )

        def make_run() -> Callable[..., Any]:
            # Only the first incarnation may skip the start-up reconcile; a restarted one always reconciles.
            first = entry.actor is None
            # Only the first incarnation may use the start-up snapshot and rows: a restarted one reads afresh.
            snap, rows, entry.snapshot, entry.restored = entry.snapshot, entry.restored, None, None
            entry.actor = PositionActor(
                cfg if first else dataclasses.replace(cfg, reconcile_on_start=True),
                links,
                snapshot=snap,
                restored=rows,
                await_sweep=await_sweep and first,
            )
            return entry.actor.run

        name = f"position:{cfg.venue}:{symbol}:{side.value}"
        self._nursery.start_soon(supervise, name, make_run, self._policy, self._metrics)
        self._metrics.set("position_actors", len(self._actors), venue=cfg.venue)  # one directory per venue
        log.debug("started %s", name)
        return entry
