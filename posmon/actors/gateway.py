"""The order gateway: the only code that makes trading REST calls for an account.

Requests queue by priority (exits first) and age; consecutive placements are
packed into the venue's batch call, cancels of one symbol into one batch
cancel. Every call is paced by token buckets sized from the venue's published
limits. A timeout or 5xx is "outcome unknown": the gateway looks each order up
by its client order id before it resends anything, so nothing is doubled.

What must survive the gateway actor's restart lives in a ``GatewayState`` the daemon creates once and hands to
every incarnation (as the directory keeps the actors' inboxes): requests not yet sent are sent by the next
incarnation, and requests in flight when it crashed are answered at once as outcome-unknown, so their requesters
look them up by client order id instead of waiting out their reply timeout.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar, assert_never, overload

import trio

from posmon.actors.messages import (
    AccountSnapshot,
    Action,
    BalanceAnswer,
    CancelOrders,
    FetchAccount,
    FetchBalance,
    GatewayRequest,
    OrderResult,
    OrderResults,
    PlaceOrders,
    Priority,
    QueryOrders,
)
from posmon.domain.orders import OrderRequest, OrderState, SymbolRules
from posmon.domain.protection import reround_exit
from posmon.exchange.errors import (
    Banned,
    ClockSkew,
    DuplicateClientId,
    NonceExpired,
    OrderNotFound,
    OutcomeUnknown,
    PrecisionRejected,
    RateLimited,
    Rejected,
    VenueError,
)
from posmon.exchange.venue import Venue
from posmon.metrics import Metrics
from posmon.ratelimit import TokenBucket

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", PlaceOrders, CancelOrders, QueryOrders, FetchAccount, FetchBalance)


@dataclass(slots=True, eq=False)  # identity-hashed: it borrows a CapacityLimiter token
class _Job:
    """One REST call's worth of requests (``queued``: their queue entries, to requeue them if never sent)."""

    queued: list[_Queued]
    weight: int
    order_count: int = 0

    @property
    def exit(self) -> bool:
        """Led by an exit (or by a placement an exit waits for): it goes in the exit lane."""
        return self.queued[0].priority <= Priority.EXIT

    @property
    def requests(self) -> list[GatewayRequest]:
        return [q.request for q in self.queued]

    def all_of(self, kind: type[R]) -> list[R]:
        """The requests, every one a ``kind`` (a job only ever groups requests of one kind)."""
        return _all_of([q.request for q in self.queued], kind)


def _all_of(requests: list[GatewayRequest], kind: type[R]) -> list[R]:
    same = [r for r in requests if isinstance(r, kind)]
    assert len(same) == len(requests), f"a job mixes {kind.__name__} with other requests"
    return same


@dataclass(slots=True)
class GatewayPolicy:
    request_timeout: float = 10.0
    max_attempts: int = 5
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    max_in_flight: int = 4
    # Exits have their own lane: a frame's closes never queue behind protection or reads, nor behind each
    # other. The token buckets still count every call, so the venue's rate limits hold as before.
    max_exits_in_flight: int = 16


@dataclass(order=True, slots=True)
class _Queued:
    priority: int
    rank: float  # within a priority, lower first (an exit further through its stop outranks the others)
    since: float  # placements: when their exposure began; everything else when it arrived
    seq: int
    request: GatewayRequest = field(compare=False)


class GatewayState:
    """What outlives one gateway incarnation: its queue, what it took but never sent, what is in flight, its budgets.

    Create one per venue account and pass it to every ``OrderGateway`` the supervisor starts.
    """

    def __init__(self) -> None:
        self.queue: list[_Queued] = []  # a heap
        self.seq = itertools.count()
        self.unsent: set[_Job] = set()  # taken off the queue, waiting for pacing or a call slot: nothing sent yet
        self.in_flight: dict[int, GatewayRequest] = {}  # id(request) -> sent (or being sent), not yet answered
        self.weight: TokenBucket | None = None  # the rate budgets: a restart must not grant a fresh burst
        self.orders: TokenBucket | None = None
        self.rules: dict[str, SymbolRules] = {}
        # Client ids whose placement is queued, unsent or in flight: a cancel of one waits for its answer.
        self.placing: dict[str, int] = {}
        self.placement_answered = trio.Event()  # set (and replaced) whenever a placement is answered


class OrderGateway:
    def __init__(
        self,
        venue: Venue,
        inbox: trio.MemoryReceiveChannel[GatewayRequest],
        metrics: Metrics,
        policy: GatewayPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        state: GatewayState | None = None,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``state``: shared by every incarnation so a restart loses nothing queued (None: this one only).

        ``gate``: awaited before every venue call; a cluster's lease (``posmon.cluster.leases.HeldLease.gate``)
        never lets a call through once this instance may no longer own the account (its run is cancelled then).
        """
        self.gate = gate
        self.venue = venue
        self.inbox = inbox
        self.metrics = metrics
        self.policy = policy or GatewayPolicy()
        self._clock = clock  # the actors' clock: placements carry since-times on it
        self.state = state if state is not None else GatewayState()
        now = trio.current_time()
        lim = venue.limits
        heaviest = max(
            lim.batch_place_weight,
            lim.place_weight,
            lim.batch_cancel_weight,
            lim.cancel_weight,
            lim.query_weight,
            lim.positions_weight + lim.open_orders_weight,
        )
        if self.state.weight is None or self.state.orders is None:
            self.state.weight = TokenBucket.for_limit(lim.weight_per_minute, now, max_weight=heaviest)
            self.state.orders = TokenBucket.for_limit(lim.orders_per_minute, now, max_weight=lim.max_batch_place)
        self._weight: TokenBucket = self.state.weight
        self._orders: TokenBucket = self.state.orders
        self._queue = self.state.queue  # the same list: only ever changed in place
        self._limiter = trio.CapacityLimiter(self.policy.max_in_flight)
        self._exit_limiter = trio.CapacityLimiter(self.policy.max_exits_in_flight)
        self._slot_freed = trio.Event()  # set (and replaced) whenever a call ends

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._recover()
        # Read at each scrape: the budget refills while nothing is sent, so a value set per request goes stale.
        self.metrics.set_function("rate_limit_headroom", self._weight_headroom, venue=self.venue.name)
        async with trio.open_nursery() as nursery:
            task_status.started()
            await self._dispatch(nursery)

    def _weight_headroom(self) -> float:
        try:
            now = trio.current_time()
        except RuntimeError:  # scraped from outside the daemon's trio run (it has stopped): the last level
            return self._weight.tokens / self._weight.capacity
        return self._weight.headroom(now)

    def _recover(self) -> None:
        """Take over what a crashed incarnation left: unsent requests queue again, in-flight ones answer unknown.

        An in-flight request may or may not have reached the venue; resending it could double an order, and
        waiting for it would hold its requester until its reply timeout. Its requester gets an outcome-unknown
        answer now and looks the orders up by client order id (a query or snapshot answer is simply asked again).
        """
        s = self.state
        for job in s.unsent:
            for q in job.queued:
                heapq.heappush(self._queue, q)
        requeued = sum(len(job.queued) for job in s.unsent)
        s.unsent.clear()
        lost = list(s.in_flight.values())
        s.in_flight.clear()
        for request in lost:
            self._answer_unknown(request)
            for o in request.orders if isinstance(request, PlaceOrders) else ():
                self.metrics.inc("orders", venue=self.venue.name, type=o.type.value, result="unknown")
        if requeued or lost or self._queue:
            log.warning(
                "gateway: restarted with %d requests queued (%d taken but unsent); %d in flight answered "
                "outcome-unknown, for their requesters to look up",
                len(self._queue),
                requeued,
                len(lost),
            )

    # --- queueing -----------------------------------------------------------------------------------------

    def _push(self, request: GatewayRequest) -> None:
        # Placements say when their exposure began; anything else queues by when it arrived.
        since = request.since if isinstance(request, PlaceOrders) and request.since else self._clock()
        rank = request.rank if isinstance(request, PlaceOrders) else 0.0
        if isinstance(request, PlaceOrders):
            for o in request.orders:
                self.state.placing[o.client_id] = self.state.placing.get(o.client_id, 0) + 1
        heapq.heappush(self._queue, _Queued(int(request.priority), rank, since, next(self.state.seq), request))

    async def _dispatch(self, nursery: trio.Nursery) -> None:
        while True:
            if not self._queue:
                self._push(await self.inbox.receive())
            # Take everything already waiting, so a burst is batched and ordered by priority, not arrival.
            while True:
                try:
                    self._push(self.inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            self.metrics.set("gateway_queue_depth", len(self._queue), venue=self.venue.name)
            if self._queue[0].priority > Priority.EXIT and not self._limiter.available_tokens:
                # Every ordinary slot is taken: wait for one, but let an exit that arrives meanwhile go first.
                await self._slot_or_request()
                continue
            job = self._next_job()
            self.state.unsent.add(job)
            await self._pace(job.weight, job.order_count)
            await self._lane(job).acquire_on_behalf_of(job)
            nursery.start_soon(self._execute, job)

    def _lane(self, job: _Job) -> trio.CapacityLimiter:
        return self._exit_limiter if job.exit else self._limiter

    async def _slot_or_request(self) -> None:
        """Return once a call ends or a new request has been queued (it may be an exit: its lane is free)."""
        async with trio.open_nursery() as race:

            async def request() -> None:
                self._push(await self.inbox.receive())  # a receive is all or nothing: nothing is lost when cancelled
                race.cancel_scope.cancel()

            async def slot() -> None:
                await self._slot_freed.wait()
                race.cancel_scope.cancel()

            race.start_soon(request)
            race.start_soon(slot)

    def _next_job(self) -> _Job:
        limits = self.venue.limits
        first = heapq.heappop(self._queue)
        match first.request:
            case PlaceOrders() as head:
                group, count = [first], len(head.orders)
                while (
                    self._queue
                    and isinstance(nxt := self._queue[0].request, PlaceOrders)
                    and count + len(nxt.orders) <= limits.max_batch_place
                ):
                    group.append(heapq.heappop(self._queue))
                    count += len(nxt.orders)
                weight = limits.place_weight if count == 1 else limits.batch_place_weight
                return _Job(group, weight, count)
            case CancelOrders() as head:
                group, count = [first], len(head.client_ids)
                while (
                    self._queue
                    and isinstance(nxt_cancel := self._queue[0].request, CancelOrders)
                    and nxt_cancel.symbol == head.symbol
                    and count + len(nxt_cancel.client_ids) <= limits.max_batch_cancel
                ):
                    group.append(heapq.heappop(self._queue))
                    count += len(nxt_cancel.client_ids)
                if self._hoist_placements_of(group):
                    return self._next_job()
                return _Job(group, limits.cancel_weight if count == 1 else limits.batch_cancel_weight)
            case QueryOrders():
                return _Job([first], 0)  # each lookup is paced on its own
            case FetchAccount() as head:
                return self._account_job(first, head)
            case FetchBalance():
                return _Job([first], limits.balance_weight)
            case unexpected:
                assert_never(unexpected)

    def _hoist_placements_of(self, cancels: list[_Queued]) -> bool:
        """Queue still-unsent placements of the orders these cancels target ahead of them; True if any.

        A cancel (an exit, urgent) outranks protection placements, but never the placement of the order it
        cancels: sent first it would find nothing, the order would be written off as never placed, and the
        placement would then leave it resting untracked. The cancels go back into the queue behind them.
        """
        ids = {c for r in _all_of([q.request for q in cancels], CancelOrders) for c in r.client_ids}
        if not any(c in self.state.placing for c in ids):
            return False
        hoisted = [
            q
            for q in self._queue
            if isinstance(q.request, PlaceOrders) and any(o.client_id in ids for o in q.request.orders)
        ]
        if not hoisted:
            return False  # their placements are in flight: the cancel job waits for their answers
        for q in hoisted:
            q.priority, q.rank = min(q.priority, cancels[0].priority), -math.inf
        self._queue.extend(cancels)
        heapq.heapify(self._queue)
        return True

    async def _await_placements(self, job: _Job) -> None:
        """Hold a cancel until the in-flight placements of its orders are answered (bounded: never stuck)."""
        ids = [c for r in job.all_of(CancelOrders) for c in r.client_ids]
        with trio.move_on_after(self.policy.request_timeout * self.policy.max_attempts * 3) as waited:
            while any(c in self.state.placing for c in ids):
                await self.state.placement_answered.wait()
        if waited.cancelled_caught:
            log.warning("gateway: cancelling %s without the answer to their placement", ids)

    def _placement_answered(self, request: GatewayRequest) -> None:
        if not isinstance(request, PlaceOrders):
            return
        for o in request.orders:
            left = self.state.placing.get(o.client_id, 0) - 1
            if left > 0:
                self.state.placing[o.client_id] = left
            else:
                self.state.placing.pop(o.client_id, None)
        self.state.placement_answered.set()
        self.state.placement_answered = trio.Event()

    def _account_job(self, first: _Queued, head: FetchAccount) -> _Job:
        """Per-symbol snapshots, or one whole-account snapshot for every waiting request when that is cheaper.

        At start-up every restored actor asks for its symbol's positions and open orders: 2,000 actors would be
        4,000 calls (12,000 weight on Aster); one whole-account snapshot, sliced per symbol, costs 45.
        """
        limits = self.venue.limits
        whole = limits.positions_weight + limits.open_orders_weight
        if head.symbol is None:
            return _Job([first], whole)
        waiting = [q for q in self._queue if isinstance(q.request, FetchAccount)]
        if (len(waiting) + 1) * (limits.positions_weight + limits.open_orders_symbol_weight) <= whole:
            return _Job([first], limits.positions_weight + limits.open_orders_symbol_weight)
        self._queue[:] = [q for q in self._queue if not isinstance(q.request, FetchAccount)]
        heapq.heapify(self._queue)
        return _Job([first, *waiting], whole)

    async def _pace(self, weight: int, orders: int) -> None:
        if weight <= 0 and orders <= 0:
            return
        while True:
            now = trio.current_time()
            wait = max(self._weight.wait_time(weight, now), self._orders.wait_time(orders, now) if orders else 0.0)
            if wait <= 0:
                self._weight.take(weight, now)
                if orders:
                    self._orders.take(orders, now)
                return
            self.metrics.inc("gateway_paced", venue=self.venue.name)
            await trio.sleep(wait)

    # --- execution ----------------------------------------------------------------------------------------

    def _observe_tick_latency(self, job: _Job) -> None:
        """Tick-to-order: from the price frame's arrival to this request leaving for the venue."""
        now = trio.current_time()
        for r in job.requests:
            tick_at = getattr(r, "tick_at", None)
            if tick_at is not None:
                self.metrics.observe("tick_to_order_seconds", now - tick_at, venue=self.venue.name)

    async def _execute(self, job: _Job) -> None:
        if isinstance(job.requests[0], CancelOrders):
            await self._await_placements(job)
        # A gateway already dying (another call crashed it) sends nothing more: the job stays unsent, for the next.
        await trio.lowlevel.checkpoint_if_cancelled()
        # From here on the call may reach the venue: a crash leaves these requests' outcome unknown.
        self.state.unsent.discard(job)
        self.state.in_flight.update((id(r), r) for r in job.requests)
        self._observe_tick_latency(job)
        try:
            match job.requests[0]:
                case PlaceOrders():
                    places = job.all_of(PlaceOrders)
                    results = await self._place([o for r in places for o in r.orders])
                    for r in places:
                        await self._reply(r, r.reply_to, OrderResults(tuple(results[o.client_id] for o in r.orders)))
                case CancelOrders() as head:
                    cancels = job.all_of(CancelOrders)
                    results = await self._cancel(head.symbol, [c for q in cancels for c in q.client_ids])
                    for q in cancels:
                        await self._reply(q, q.reply_to, OrderResults(tuple(results[c] for c in q.client_ids)))
                case QueryOrders() as head:
                    found = await self._lookup(head.symbol, list(head.client_ids))
                    await self._reply(
                        head,
                        head.reply_to,
                        OrderResults(
                            tuple(
                                OrderResult(
                                    c,
                                    Action.QUERY,
                                    state=s,
                                    error=None
                                    if s is not None or u
                                    else OrderNotFound("no such order", request="query"),
                                )
                                for c, (s, u) in found.items()
                            )
                        ),
                    )
                case FetchAccount() as head:
                    if len(job.requests) == 1:
                        await self._reply(head, head.reply_to, await self._fetch_account(head.symbol))
                    else:
                        snapshot = await self._fetch_account(None)
                        split = snapshot.by_symbol()
                        for f in job.all_of(FetchAccount):
                            await self._reply(f, f.reply_to, snapshot.of(f.symbol, split))
                case FetchBalance() as head:
                    await self._reply(head, head.reply_to, await self._fetch_balance())
                case unexpected:
                    assert_never(unexpected)
        finally:
            self._lane(job).release_on_behalf_of(job)
            self._slot_freed.set()
            self._slot_freed = trio.Event()

    async def _reply(self, request: GatewayRequest, reply_to: trio.MemorySendChannel[T], message: T) -> None:
        """Answer ``request`` (``reply_to``: its reply channel, typed for its answer)."""
        self.state.in_flight.pop(id(request), None)
        self._placement_answered(request)
        try:
            await reply_to.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("gateway: requester of %s is gone; result dropped", type(request).__name__)

    def _answer_unknown(self, request: GatewayRequest) -> None:
        match request:
            case PlaceOrders() | CancelOrders() | QueryOrders():
                self._reply_nowait(request, request.reply_to, _unknown_answer(request))
            case FetchAccount():
                self._reply_nowait(request, request.reply_to, _unknown_answer(request))
            case FetchBalance():
                error = OutcomeUnknown("the gateway restarted before the answer came", request="balance")
                self._reply_nowait(request, request.reply_to, BalanceAnswer(None, error))
            case unexpected:
                assert_never(unexpected)

    def _reply_nowait(self, request: GatewayRequest, reply_to: trio.MemorySendChannel[T], message: T) -> None:
        self._placement_answered(request)
        try:
            reply_to.send_nowait(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            log.warning("gateway: requester of %s is gone; result dropped", type(request).__name__)

    async def _call(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One venue call under the request timeout; a timeout is an unknown outcome, a 429 pauses pacing."""
        if self.gate is not None:
            await self.gate()  # outside the timeout: a closed gate is not an unknown outcome
        self.metrics.inc("rest_calls", venue=self.venue.name, call=name)
        try:
            with trio.fail_after(self.policy.request_timeout):
                return await fn()
        except trio.TooSlowError as exc:
            raise OutcomeUnknown("no answer within the request timeout", request=name) from exc
        except RateLimited as exc:
            kind = "banned" if isinstance(exc, Banned) else "rate_limited"
            self.metrics.inc("gateway_throttled", venue=self.venue.name, kind=kind)
            log.warning("gateway: %s on %s; pausing trading calls for %.1fs", kind, name, exc.retry_after)
            self._weight.pause(trio.current_time() + exc.retry_after)
            raise

    def _backoff(self, attempt: int) -> float:
        return min(self.policy.backoff_max, self.policy.backoff_base * 2.0**attempt)

    async def _lookup(self, symbol: str, client_ids: list[str]) -> dict[str, tuple[OrderState | None, bool]]:
        """Each id -> (state, still_unknown): (state, False) found, (None, False) never seen, (None, True) unknown."""
        out: dict[str, tuple[OrderState | None, bool]] = {}
        for cid in client_ids:
            await self._pace(self.venue.limits.query_weight, 0)
            try:
                query = functools.partial(self.venue.query_order, symbol, cid)
                out[cid] = (await self._call("query_order", query), False)
            except OrderNotFound:
                out[cid] = (None, False)
            except (OutcomeUnknown, RateLimited, ClockSkew, NonceExpired) as exc:
                log.warning("gateway: lookup of %s failed (%s); outcome still unknown", cid, exc)
                if isinstance(exc, ClockSkew | NonceExpired):
                    await self._sync_time()
                out[cid] = (None, True)
        return out

    async def _place(self, orders: list[OrderRequest]) -> dict[str, OrderResult]:
        """Place ``orders`` (one call per attempt) until each has a known outcome or attempts run out.

        Unknown outcomes are looked up by client order id before anything is resent; refusals that a
        retry can fix (precision after a rules change, clock skew, a stale nonce, a 429/418 pause) are
        retried; every other refusal is final and goes back to the actor.
        """
        results: dict[str, OrderResult] = {}
        sent = {o.client_id: o for o in orders}  # what was last sent for each id (re-rounding may change it)
        rerounded: set[str] = set()
        to_send, unresolved = list(orders), list[OrderRequest]()
        for attempt in range(self.policy.max_attempts):
            if unresolved:
                still = []
                for o in unresolved:
                    # Before anything is resent, find out whether the earlier attempt took effect.
                    state, unknown = (await self._lookup(o.symbol, [o.client_id]))[o.client_id]
                    if state is not None:
                        results[o.client_id] = OrderResult(o.client_id, Action.PLACE, state=state, sent=o)
                    elif unknown:
                        still.append(o)
                    else:
                        to_send.append(o)
                unresolved = still
            if to_send:
                batch, to_send = to_send, []
                if attempt:
                    await self._pace(
                        self.venue.limits.batch_place_weight if len(batch) > 1 else self.venue.limits.place_weight,
                        len(batch),
                    )
                try:
                    answers = await self._call("place_orders", functools.partial(self.venue.place_orders, batch))
                except OutcomeUnknown as exc:
                    log.warning(
                        "gateway: placing %s: %s; will look the orders up before resending",
                        [o.client_id for o in batch],
                        exc,
                    )
                    unresolved.extend(batch)
                except RateLimited:
                    to_send = batch  # not executed: safe to resend once the pause is over
                except (ClockSkew, NonceExpired) as exc:
                    # Refused before it ran; a stale timestamp or nonce means our clock offset drifted.
                    log.warning("gateway: %s; re-syncing the clock before resending", exc)
                    await self._sync_time()
                    to_send = batch
                except DuplicateClientId:
                    unresolved.extend(batch)  # an earlier attempt (or incarnation) placed it: look it up
                except Rejected as exc:
                    for o in batch:
                        results[o.client_id] = self._refused(o, exc)
                else:
                    for o, answer in zip(batch, answers, strict=True):
                        if isinstance(answer, PrecisionRejected) and o.client_id not in rerounded:
                            fixed = await self._reround(o)
                            if fixed is not None:
                                rerounded.add(o.client_id)
                                sent[o.client_id] = fixed
                                to_send.append(fixed)
                                continue
                        if isinstance(answer, DuplicateClientId):
                            # Not a refusal: the order exists. Written off, its requester would protect again
                            # under a new id and two orders would rest.
                            log.warning(
                                "gateway: %s already exists on %s; looking it up instead of writing it off",
                                o.client_id,
                                self.venue.name,
                            )
                            unresolved.append(o)
                        elif isinstance(answer, VenueError):
                            results[o.client_id] = self._refused(o, answer)
                        else:
                            self.metrics.inc("orders", venue=self.venue.name, type=o.type.value, result="placed")
                            results[o.client_id] = OrderResult(o.client_id, Action.PLACE, state=answer, sent=o)
            if not unresolved and not to_send:
                break
            await trio.sleep(self._backoff(attempt))
        for o in [*unresolved, *to_send]:
            log.error("gateway: outcome of %s still unknown after %d attempts", o.client_id, self.policy.max_attempts)
            self.metrics.inc("orders", venue=self.venue.name, type=o.type.value, result="unknown")
            results[o.client_id] = OrderResult(o.client_id, Action.PLACE, sent=sent[o.client_id])
        return results

    def _refused(self, order: OrderRequest, error: VenueError) -> OrderResult:
        self.metrics.inc("orders", venue=self.venue.name, type=order.type.value, result="rejected")
        return OrderResult(order.client_id, Action.PLACE, error=error, sent=order)

    async def _reround(self, order: OrderRequest) -> OrderRequest | None:
        """The order on the venue's current grid (rules re-read once per refusal), or None if nothing changes."""
        try:
            self.state.rules = await self._call("load_rules", self.venue.load_rules)
        except VenueError as exc:
            log.warning("gateway: cannot refresh trading rules: %s", exc)
        rules = self.state.rules.get(order.symbol)
        if rules is None:
            return None
        fixed = reround_exit(order, rules)
        if fixed == order or fixed.qty <= 0:
            return None
        log.warning(
            "gateway: %s refused for precision; re-rounded to price %s stop %s qty %s",
            order.client_id,
            fixed.price,
            fixed.stop_price,
            fixed.qty,
        )
        return fixed

    async def _sync_time(self) -> None:
        try:
            await self._call("sync_time", self.venue.sync_time)
        except VenueError as exc:
            log.warning("gateway: clock re-sync failed: %s", exc)

    async def _cancel(self, symbol: str, client_ids: list[str]) -> dict[str, OrderResult]:
        """Cancel in the venue's largest batches (one call for up to ``max_batch_cancel`` ids, each call paced)."""
        size = max(1, self.venue.limits.max_batch_cancel)
        results: dict[str, OrderResult] = {}
        for n, start in enumerate(range(0, len(client_ids), size)):
            if n:
                await self._pace(self.venue.limits.batch_cancel_weight, 0)
            results.update(await self._cancel_batch(symbol, client_ids[start : start + size]))
        return results

    async def _cancel_batch(self, symbol: str, client_ids: list[str]) -> dict[str, OrderResult]:
        results: dict[str, OrderResult] = {}
        todo = list(client_ids)
        for attempt in range(self.policy.max_attempts):
            if attempt:
                await self._pace(self.venue.limits.batch_cancel_weight, 0)
            gone: list[str] = []
            try:
                answers = await self._call("cancel_orders", functools.partial(self.venue.cancel_orders, symbol, todo))
            except (OutcomeUnknown, RateLimited) as exc:
                log.warning("gateway: cancelling %s: %s; will look the orders up", todo, exc)
                # Each id is now unknown: only a look-up says which are still open and go again (resending the
                # whole batch would repeat ids already settled and could pass the venue's batch maximum).
                gone, todo = list(todo), []
            except (ClockSkew, NonceExpired):
                await self._sync_time()
                await trio.sleep(self._backoff(attempt))
                continue  # refused before it ran: send the same cancels again
            except Rejected as exc:
                for cid in todo:
                    results[cid] = OrderResult(cid, Action.CANCEL, error=exc)
                todo = []
            else:
                for cid, answer in zip(todo, answers, strict=True):
                    if isinstance(answer, OrderNotFound):
                        gone.append(cid)  # already filled, canceled or never placed: find out which
                    elif isinstance(answer, VenueError):
                        results[cid] = OrderResult(cid, Action.CANCEL, error=answer)
                    else:
                        results[cid] = OrderResult(cid, Action.CANCEL, state=answer)
                todo = []
            for cid, (state, unknown) in (await self._lookup(symbol, gone)).items():
                if unknown or (state is not None and not state.status.is_final):
                    todo.append(cid)  # still open (or unknown): cancel again
                elif state is None:
                    results[cid] = OrderResult(
                        cid, Action.CANCEL, error=OrderNotFound("order was never placed", request="cancel")
                    )
                else:
                    results[cid] = OrderResult(cid, Action.CANCEL, state=state)
            if not todo:
                break
            await trio.sleep(self._backoff(attempt))
        for cid in todo:
            log.error("gateway: cancel of %s still unconfirmed after %d attempts", cid, self.policy.max_attempts)
            results[cid] = OrderResult(cid, Action.CANCEL)
        return results

    async def _fetch_account(self, symbol: str | None) -> AccountSnapshot:
        last: VenueError | None = None
        for attempt in range(self.policy.max_attempts):
            try:
                positions = await self._call("positions", lambda: self.venue.positions(symbol))
                orders = await self._call("open_orders", lambda: self.venue.open_orders(symbol))
            except VenueError as exc:
                last = exc
                if isinstance(exc, ClockSkew | NonceExpired):
                    await self._sync_time()
                await trio.sleep(self._backoff(attempt))
                continue
            if symbol is not None:
                positions = [p for p in positions if p.symbol == symbol]
            return AccountSnapshot(tuple(positions), tuple(orders))
        return AccountSnapshot((), (), error=last)

    async def _fetch_balance(self) -> BalanceAnswer:
        """One try: whoever asked (an operator's entry) is waiting, and a later check asks again."""
        try:
            return BalanceAnswer(await self._call("balance", self.venue.balance))
        except VenueError as exc:
            if isinstance(exc, ClockSkew | NonceExpired):
                await self._sync_time()
            return BalanceAnswer(None, exc)


@overload
def _unknown_answer(request: PlaceOrders | CancelOrders | QueryOrders) -> OrderResults: ...
@overload
def _unknown_answer(request: FetchAccount) -> AccountSnapshot: ...
def _unknown_answer(request: PlaceOrders | CancelOrders | QueryOrders | FetchAccount) -> OrderResults | AccountSnapshot:
    """What a request's requester hears when the gateway died with it in flight: every outcome unknown."""
    match request:
        case PlaceOrders():
            return OrderResults(tuple(OrderResult(o.client_id, Action.PLACE, sent=o) for o in request.orders))
        case CancelOrders():
            return OrderResults(tuple(OrderResult(c, Action.CANCEL) for c in request.client_ids))
        case QueryOrders():
            return OrderResults(tuple(OrderResult(c, Action.QUERY) for c in request.client_ids))
        case FetchAccount():
            return AccountSnapshot(
                (), (), error=OutcomeUnknown("the gateway restarted before the answer came", request="account snapshot")
            )
        case unexpected:
            assert_never(unexpected)
