"""A gateway restart loses nothing queued: unsent requests go out from the next incarnation, in-flight ones are
answered outcome-unknown at once (their requesters look them up) and are never resent blindly."""

import itertools
from decimal import Decimal as D

import trio

from posmon.actors.gateway import GatewayPolicy, GatewayState, OrderGateway
from posmon.actors.messages import Action, FetchAccount, OrderResults, PlaceOrders
from posmon.actors.supervisor import RestartPolicy, supervise
from posmon.domain.orders import OrderStatus, Side
from posmon.exchange.errors import OutcomeUnknown
from posmon.exchange.venue import RateLimits
from posmon.metrics import Metrics
from posmon.ratelimit import TokenBucket
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue
from tests.actors.test_gateway import SYMBOLS, RecordingVenue, drain, tp
from tests.harness import make_settings, new_exchange, running, settle, trio_clock
from tests.scenario import assert_protected_and_no_orphans

RESTART = RestartPolicy(budget=5, window=60, backoff=0.5)


class CrashingVenue(RecordingVenue):
    """Executes the first placement of ``crash_on`` and then raises, as a codec bug would: the gateway dies with
    that request in flight. ``crash_positions`` does the same to the first positions read."""

    def __init__(self, exchange, *, crash_on: str = "", crash_positions: bool = False, **kw):
        super().__init__(exchange, **kw)
        self.crash_on = crash_on
        self.crash_positions = crash_positions

    async def place_orders(self, orders):
        answers = await super().place_orders(orders)
        if any(o.client_id == self.crash_on for o in orders):
            self.crash_on = ""
            raise RuntimeError("a bug while reading the venue's answer")
        return answers

    async def positions(self, symbol=None):
        if self.crash_positions:
            self.crash_positions = False
            raise RuntimeError("a bug while reading the venue's answer")
        return await super().positions(symbol)


def exchange_with_position() -> SimExchange:
    exchange = SimExchange(rules_for(SYMBOLS), clock=trio_clock)
    exchange.set_marks({"BTCUSDT": D("45000"), "ETHUSDT": D("3000")})
    exchange.external_entry("BTCUSDT", Side.LONG, D("1"))
    return exchange


async def start_supervised(nursery, venue, inbox, policy: GatewayPolicy) -> GatewayState:
    state = GatewayState()
    metrics = Metrics()
    await nursery.start(
        supervise, "gateway", lambda: OrderGateway(venue, inbox, metrics, policy, state=state).run, RESTART, metrics
    )
    return state


async def test_requests_queued_in_a_crashed_gateway_are_sent_by_the_next_one_and_the_in_flight_one_answers_unknown(
    nursery, autojump_clock
):
    exchange = exchange_with_position()
    # One order per call and one call at a time: the crash finds one request in flight, one taken off the queue
    # waiting for a call slot (not yet sent) and one still queued.
    venue = CrashingVenue(
        exchange,
        crash_on="pm-1-T1",
        limits=RateLimits(weight_per_minute=2400, orders_per_minute=1200, max_batch_place=1),
    )
    inbox_send, inbox_recv = trio.open_memory_channel(100)
    reply_send, replies = trio.open_memory_channel(100)
    for i, price in ((1, "46000"), (2, "46100"), (3, "46200")):
        inbox_send.send_nowait(PlaceOrders((tp(f"pm-{i}-T1", price=price),), reply_send))
    start = trio.current_time()
    await start_supervised(nursery, venue, inbox_recv, GatewayPolicy(max_in_flight=1))
    await trio.sleep(RESTART.backoff)
    await settle()

    results = {r.client_id: r for msg in drain(replies) for r in msg.results}
    assert set(results) == {"pm-1-T1", "pm-2-T1", "pm-3-T1"}
    crashed = results["pm-1-T1"]
    assert crashed.unknown and crashed.action is Action.PLACE and crashed.sent is not None
    assert trio.current_time() - start <= RESTART.backoff  # at the restart, not after a requester's timeout
    assert results["pm-2-T1"].state.status is OrderStatus.NEW
    assert results["pm-3-T1"].state.status is OrderStatus.NEW
    # Each order reached the venue exactly once: the in-flight one was not resent, the others not lost.
    assert [n for _, kind, n in venue.log if kind == "place"] == [1, 1, 1]
    assert sorted(o.client_id for o in exchange.engine.open_orders("BTCUSDT")) == ["pm-1-T1", "pm-2-T1", "pm-3-T1"]


async def test_an_account_read_in_flight_when_the_gateway_crashes_is_answered_with_an_error_at_once(
    nursery, autojump_clock
):
    venue = CrashingVenue(exchange_with_position(), crash_positions=True)
    inbox_send, inbox_recv = trio.open_memory_channel(100)
    snap_send, snap_recv = trio.open_memory_channel(1)
    inbox_send.send_nowait(FetchAccount("BTCUSDT", snap_send))
    await start_supervised(nursery, venue, inbox_recv, GatewayPolicy())
    with trio.fail_after(RESTART.backoff + 0.1):
        snap = await snap_recv.receive()
    assert isinstance(snap.error, OutcomeUnknown) and snap.positions == ()
    # The next incarnation serves the next read normally.
    inbox_send.send_nowait(FetchAccount("BTCUSDT", snap_send))
    with trio.fail_after(1):
        snap = await snap_recv.receive()
    assert snap.error is None and [p.symbol for p in snap.positions] == ["BTCUSDT"]


async def test_rate_budget_is_not_refilled_by_a_restart(nursery, autojump_clock):
    """A crash must not grant a fresh burst: the next incarnation paces against what the last one spent."""
    limits = RateLimits(weight_per_minute=2400, orders_per_minute=3, max_batch_place=1)
    venue = CrashingVenue(exchange_with_position(), crash_on="pm-2-T1", limits=limits)
    inbox_send, inbox_recv = trio.open_memory_channel(100)
    reply_send, replies = trio.open_memory_channel(100)
    for i in range(1, 5):
        inbox_send.send_nowait(PlaceOrders((tp(f"pm-{i}-T1", price=str(46000 + 100 * i)),), reply_send))
    await start_supervised(nursery, venue, inbox_recv, GatewayPolicy(max_in_flight=1))
    await trio.sleep(180)
    assert len([r for msg in drain(replies) for r in msg.results]) == 4
    times = [t for t, kind, _ in venue.log if kind == "place"]
    refill = 1 / TokenBucket.for_limit(limits.orders_per_minute, 0.0, max_weight=1).rate  # one order per ~32 s
    assert len(times) == 4 and min(b - a for a, b in itertools.pairwise(times)) >= refill - 1e-6


def test_unknown_answers_name_every_order_of_the_request():
    send, _recv = trio.open_memory_channel(1)
    from posmon.actors.gateway import _unknown_answer

    answer = _unknown_answer(PlaceOrders((tp("pm-1-T1"), tp("pm-1-S1")), send))
    assert isinstance(answer, OrderResults)
    assert [(r.client_id, r.unknown) for r in answer.results] == [("pm-1-T1", True), ("pm-1-S1", True)]


class CrashAfterPlacing(SimVenue):
    """The first placement reaches the exchange, then the gateway crashes reading the answer."""

    crashed = False

    async def place_orders(self, orders):
        answers = await super().place_orders(orders)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("a bug while reading the venue's answer")
        return answers


async def test_through_the_daemon_a_gateway_crash_with_protection_in_flight_ends_with_exactly_one_tp_and_sl(
    tmp_path, autojump_clock
):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with running(settings, exchange, venue=CrashAfterPlacing(exchange)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # TP+SL go out; the gateway dies with them in flight
        await trio.sleep(30)
        await settle()
        assert h.metrics.get("actor_restarts", actor="gateway") == 1
        assert len(h.orders("BTCUSDT")) == 2  # the in-flight pair was looked up, not placed again
        assert_protected_and_no_orphans(h)
