"""Carrying out a repair plan: write it to the store, place the new legs, then cancel what they replace.

Every exchange call goes through the daemon's own ``OrderGateway`` (pacing, batching, retries, re-rounding
after a precision refusal, and above all: a timeout or 5xx is "outcome unknown", answered by looking the
order up by its client id before anything is resent). A cancel waits for its replacement to be confirmed
live; when a replacement is refused or its outcome stays unknown, the old leg keeps resting (a wrong-size
stop is better than none) and the result says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from posmon.actors.gateway import GatewayPolicy, OrderGateway
from posmon.actors.messages import CancelOrders, GatewayRequest, OrderResult, OrderResults, PlaceOrders, Priority
from posmon.domain.orders import OrderStatus
from posmon.domain.protection import LocalState, OrderRecord
from posmon.exchange.errors import OrderNotFound
from posmon.exchange.venue import Venue
from posmon.metrics import Metrics
from posmon.ops.plan import Cancel, Plan
from posmon.store.store import Changes, Store


@dataclass(slots=True)
class Outcome:
    """What happened to each order the plan touched."""

    placed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (client id, why)
    unknown: list[str] = field(default_factory=list)  # outcome still unknown: the daemon's reconcile settles it
    held_back: list[str] = field(default_factory=list)  # cancels not sent: their replacement is not live

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unknown or self.held_back)

    def to_json(self) -> dict[str, Any]:
        return {
            "placed": self.placed,
            "cancelled": self.cancelled,
            "failed": [{"client_id": c, "error": e} for c, e in self.failed],
            "unknown": self.unknown,
            "held_back": self.held_back,
        }


async def carry_out(
    plan: Plan, store: Store, venue: Venue, *, request_timeout: float, clock: Callable[[], float]
) -> Outcome:
    """Write the plan (write-ahead), then send it through a gateway of our own; returns what happened."""
    store.apply(plan.changes)
    out = Outcome()
    send, recv = trio.open_memory_channel[GatewayRequest](math.inf)
    async with trio.open_nursery() as nursery:
        gateway = OrderGateway(venue, recv, Metrics(), GatewayPolicy(request_timeout=request_timeout), clock=clock)
        await nursery.start(gateway.run)
        # A gateway request retries with backoff up to its attempts; never wait forever on one.
        limit = request_timeout * (gateway.policy.max_attempts + 1) * 4
        live = await _place(plan.place, store, send, out, limit, clock)
        ready = [c for c in plan.cancels if all(cid in live for cid in c.after)]
        out.held_back = [c.client_id for c in plan.cancels if c not in ready]
        await _cancel(ready, store, send, out, limit, venue.limits.max_batch_cancel)
        nursery.cancel_scope.cancel()
    return out


async def _ask(
    send: trio.MemorySendChannel[GatewayRequest],
    requests: Sequence[Callable[[trio.MemorySendChannel[OrderResults]], GatewayRequest]],
    limit: float,
) -> list[OrderResult]:
    """Send requests to the gateway and gather every result (answers in any order)."""
    if not requests:
        return []
    reply_send, reply_recv = trio.open_memory_channel[OrderResults](len(requests))
    for make in requests:
        await send.send(make(reply_send))
    results: list[OrderResult] = []
    with trio.move_on_after(limit):
        for _ in requests:
            results += (await reply_recv.receive()).results
    return results


async def _place(
    groups: list[tuple[OrderRecord, ...]],
    store: Store,
    send: trio.MemorySendChannel[GatewayRequest],
    out: Outcome,
    limit: float,
    clock: Callable[[], float],
) -> set[str]:
    records = {o.client_id: o for g in groups for o in g}
    now = clock()

    def place(g: tuple[OrderRecord, ...]) -> Callable[[trio.MemorySendChannel[OrderResults]], GatewayRequest]:
        return lambda ch: PlaceOrders(tuple(o.request for o in g), ch, Priority.PROTECT, since=now)

    results = await _ask(send, [place(g) for g in groups], limit)
    answered = {r.client_id: r for r in results}
    changes = Changes()
    live: set[str] = set()
    for cid, rec in records.items():
        r = answered.get(cid)
        if r is None or r.unknown:
            out.unknown.append(cid)  # stays PENDING: the daemon looks it up by client id on start-up
            continue
        if r.sent is not None and r.sent != rec.request:
            rec = replace(rec, request=r.sent)  # re-rounded onto a changed grid: record what really rests
        if r.state is not None:
            s = r.state
            final = s.status.is_final
            rec = replace(
                rec,
                state=LocalState.DONE if final else LocalState.LIVE,
                filled_qty=s.filled_qty,
                exchange_id=s.order_id,
                final_status=s.status if final else None,
            )
            if final:
                out.failed.append((cid, f"ended {s.status.value} at once"))
            else:
                live.add(cid)
                out.placed.append(cid)
        else:
            rec = replace(rec, state=LocalState.DONE, final_status=OrderStatus.REJECTED)
            out.failed.append((cid, str(r.error)))
        changes.orders.append(rec)
    store.apply(changes)
    return live


async def _cancel(
    cancels: list[Cancel],
    store: Store,
    send: trio.MemorySendChannel[GatewayRequest],
    out: Outcome,
    limit: float,
    batch: int,
) -> None:
    ahead = Changes()
    records: dict[str, OrderRecord] = {}
    for c in cancels:
        rec = store.order(c.client_id)
        if rec is not None and rec.active:
            records[c.client_id] = rec
            ahead.orders.append(replace(rec, state=LocalState.CANCELING))  # decided before it is sent
    store.apply(ahead)
    by_symbol: dict[str, list[str]] = defaultdict(list)
    for c in cancels:
        by_symbol[c.symbol].append(c.client_id)
    requests = [
        lambda ch, s=s, ids=tuple(ids[i : i + batch]): CancelOrders(s, ids, ch, Priority.HOUSEKEEPING)
        for s, ids in by_symbol.items()
        for i in range(0, len(ids), batch)
    ]
    answered = {r.client_id: r for r in await _ask(send, requests, limit)}
    after = Changes()
    for c in cancels:
        r = answered.get(c.client_id)
        rec = records.get(c.client_id)
        if r is None or r.unknown:
            out.unknown.append(c.client_id)  # stays CANCELING: the daemon sends the cancel again
            continue
        if r.state is not None or isinstance(r.error, OrderNotFound):
            status = r.state.status if r.state is not None else OrderStatus.CANCELED
            out.cancelled.append(c.client_id)
            if rec is not None:
                after.orders.append(
                    replace(
                        rec,
                        state=LocalState.DONE,
                        final_status=status,
                        filled_qty=r.state.filled_qty if r.state else rec.filled_qty,
                    )
                )
        else:
            out.failed.append((c.client_id, f"cancel refused: {r.error}"))
    store.apply(after)
