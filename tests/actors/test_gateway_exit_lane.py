"""The gateway's exit lane and batch cancels: exits never wait behind the in-flight cap, a tick's cancels of one
symbol go in one call, and a batch whose answer never comes is looked up id by id, never assumed cancelled."""

from decimal import Decimal as D

import trio

from posmon.actors.gateway import GatewayPolicy, OrderGateway
from posmon.actors.messages import Action, CancelOrders, OrderResults, PlaceOrders, Priority, QueryOrders
from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from posmon.exchange.venue import RateLimits
from posmon.metrics import Metrics
from posmon.sim.venue import SimVenue
from tests.actors.test_gateway import RecordingVenue, drain, setup, tp
from tests.harness import settle


class HeldQueries(RecordingVenue):
    """Look-ups hang until released: each one holds an ordinary call slot for as long as the test wants."""

    def __init__(self, exchange, **kw):
        super().__init__(exchange, **kw)
        self.release = trio.Event()
        self.queries_started = 0

    async def query_order(self, symbol, client_id):
        self.queries_started += 1
        await self.release.wait()
        return await super().query_order(symbol, client_id)


class FirstCancelHangs(RecordingVenue):
    """The first cancel call never answers (the venue may or may not have executed it: here it has not)."""

    def __init__(self, exchange, **kw):
        super().__init__(exchange, **kw)
        self.queried: list[str] = []

    async def cancel_orders(self, symbol, client_ids):
        first = not any(kind == "cancel" for _, kind, _ in self.log)
        self.log.append((trio.current_time(), "cancel", len(client_ids)))
        if first:
            await trio.sleep_forever()
        return await SimVenue.cancel_orders(self, symbol, client_ids)

    async def query_order(self, symbol, client_id):
        self.queried.append(client_id)
        return await super().query_order(symbol, client_id)


def _with_venue(venue_cls, policy=None):
    """``setup``'s world with the gateway talking to a ``venue_cls`` over the same exchange."""
    exchange, _venue, plain, inbox, reply, replies = setup(policy=policy)
    venue = venue_cls(exchange)
    return exchange, venue, OrderGateway(venue, plain.inbox, Metrics(), policy), inbox, reply, replies


async def test_an_exit_is_sent_while_every_ordinary_call_slot_is_taken(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = _with_venue(HeldQueries, GatewayPolicy(max_in_flight=4))
    exchange.place_orders([tp("pm-1-T1"), tp("pm-1-S1", price="46100")])
    for i in range(5):  # five reads: four take the four ordinary slots, the fifth waits for one
        inbox.send_nowait(QueryOrders("BTCUSDT", (f"pm-{i}-T1",), reply))
    await nursery.start(gateway.run)
    await settle()
    assert venue.queries_started == 4

    inbox.send_nowait(CancelOrders("BTCUSDT", ("pm-1-T1", "pm-1-S1"), reply, Priority.EXIT))
    await settle()
    # The exit went out and was answered while the four reads still hold their slots...
    assert [n for _, kind, n in venue.log if kind == "cancel"] == [2]
    answered = {r.client_id: r for m in drain(replies) for r in m.results}
    assert answered["pm-1-T1"].state.status is OrderStatus.CANCELED
    assert answered["pm-1-S1"].state.status is OrderStatus.CANCELED
    # ...and the ordinary cap still holds for everything else.
    assert venue.queries_started == 4

    venue.release.set()
    await settle()
    assert venue.queries_started == 5
    assert sum(len(m.results) for m in drain(replies)) == 5


async def test_exits_still_count_against_the_rate_limits(nursery, autojump_clock):
    limits = RateLimits(weight_per_minute=60, orders_per_minute=1000)
    _exchange, venue, gateway, inbox, reply, replies = setup(limits, GatewayPolicy(max_in_flight=1))
    for i in range(150):  # a burst of closes, far more than a minute's weight
        close = OrderRequest(f"pm-{i}-C1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.MARKET, D("0.001"))
        inbox.send_nowait(PlaceOrders((close,), reply, Priority.EXIT, rank=float(i)))
    await nursery.start(gateway.run)
    await trio.sleep(600)
    assert sum(len(m.results) for m in drain(replies)) == 150
    calls = [(t, n) for t, kind, n in venue.log if kind == "place"]
    assert calls[-1][0] >= 60  # paced: the burst could not all go in the first minute
    for start, _ in calls:  # the exit lane is no way around the venue's published weight per minute
        window = [n for t, n in calls if start <= t < start + 60]
        assert sum(limits.place_weight if n == 1 else limits.batch_place_weight for n in window) <= 60


async def test_a_ticks_cancels_of_one_symbol_go_in_one_venue_call(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup()
    ids = [f"pm-{i}-{leg}1" for i in range(5) for leg in "TS"]
    exchange.place_orders([tp(c, price=str(46000 + n)) for n, c in enumerate(ids[:5])])
    exchange.place_orders([tp(c, price=str(46100 + n)) for n, c in enumerate(ids[5:])])
    for i in range(5):  # five tranches of one symbol closing in the same frame, each asking for its two legs
        inbox.send_nowait(CancelOrders("BTCUSDT", (f"pm-{i}-T1", f"pm-{i}-S1"), reply, Priority.EXIT))
    await nursery.start(gateway.run)
    await settle()
    assert [n for _, kind, n in venue.log if kind == "cancel"] == [10]  # one batch DELETE, the venue's maximum
    states = {r.client_id: r.state.status for m in drain(replies) for r in m.results}
    assert states == dict.fromkeys(ids, OrderStatus.CANCELED)


async def test_a_cancel_of_more_ids_than_a_batch_holds_goes_in_the_venues_largest_batches(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup()
    ids = [f"pm-{i}-T1" for i in range(14)]  # e.g. monitoring stopped on a key with seven tranches
    exchange.place_orders([tp(c, price=str(46000 + n)) for n, c in enumerate(ids[:5])])
    exchange.place_orders([tp(c, price=str(46000 + n)) for n, c in enumerate(ids[5:10], 5)])
    exchange.place_orders([tp(c, price=str(46000 + n)) for n, c in enumerate(ids[10:], 10)])
    inbox.send_nowait(CancelOrders("BTCUSDT", tuple(ids), reply, Priority.HOUSEKEEPING))
    await nursery.start(gateway.run)
    await settle()
    assert [n for _, kind, n in venue.log if kind == "cancel"] == [10, 4]
    (answer,) = drain(replies)
    assert [(r.client_id, r.state.status) for r in answer.results] == [(c, OrderStatus.CANCELED) for c in ids]


async def test_a_batch_cancel_that_times_out_is_looked_up_id_by_id_never_assumed_cancelled(nursery, autojump_clock):
    policy = GatewayPolicy(request_timeout=2.0)
    exchange, venue, gateway, inbox, reply, replies = _with_venue(FirstCancelHangs, policy)
    exchange.place_orders([tp("pm-1-T1"), tp("pm-1-S1", price="44000")])  # the 44000 SELL limit fills at once
    inbox.send_nowait(CancelOrders("BTCUSDT", ("pm-1-T1", "pm-1-S1"), reply, Priority.EXIT))
    await nursery.start(gateway.run)
    await trio.sleep(30)
    # Both ids were looked up after the silent batch; only the one still open was cancelled again.
    assert sorted(venue.queried) == ["pm-1-S1", "pm-1-T1"]
    assert [n for _, kind, n in venue.log if kind == "cancel"] == [2, 1]
    results = {r.client_id: r for m in drain(replies) for r in m.results}
    assert results["pm-1-T1"].action is Action.CANCEL
    assert results["pm-1-T1"].state.status is OrderStatus.CANCELED
    assert results["pm-1-S1"].state.status is OrderStatus.FILLED  # it traded: reported as filled, not cancelled


async def test_a_batch_cancel_whose_outcome_stays_unknown_is_reported_unknown(nursery, autojump_clock):
    exchange, _venue, gateway, inbox, reply, replies = setup(policy=GatewayPolicy(request_timeout=1.0))
    exchange.place_orders([tp("pm-1-T1"), tp("pm-1-S1", price="46100")])
    exchange.fail_next("cancel_orders", 100)
    exchange.fail_next("query_order", 100)
    inbox.send_nowait(CancelOrders("BTCUSDT", ("pm-1-T1", "pm-1-S1"), reply, Priority.EXIT))
    await nursery.start(gateway.run)
    await trio.sleep(120)
    (answer,) = drain(replies)
    assert isinstance(answer, OrderResults)
    assert [(r.client_id, r.unknown) for r in answer.results] == [("pm-1-T1", True), ("pm-1-S1", True)]
    assert exchange.engine.open_orders("BTCUSDT")  # nothing was cancelled, and nothing says it was
