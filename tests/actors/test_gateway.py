"""The order gateway on its own: batching, priorities, pacing, and unknown outcomes resolved by lookup."""

from decimal import Decimal as D

import trio

from posmon.actors.gateway import GatewayPolicy, OrderGateway
from posmon.actors.messages import Action, CancelOrders, OrderResults, PlaceOrders, Priority
from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, Side
from posmon.exchange.errors import WouldTriggerImmediately
from posmon.exchange.venue import RateLimits
from posmon.metrics import Metrics
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue
from tests.harness import settle, trio_clock

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


class RecordingVenue(SimVenue):
    """A SimVenue that remembers when each call was made and with how many orders."""

    def __init__(self, exchange, **kw):
        super().__init__(exchange, **kw)
        self.log: list[tuple[float, str, int]] = []

    async def place_orders(self, orders):
        self.log.append((trio.current_time(), "place", len(orders)))
        return await super().place_orders(orders)

    async def cancel_orders(self, symbol, client_ids):
        self.log.append((trio.current_time(), "cancel", len(client_ids)))
        return await super().cancel_orders(symbol, client_ids)


def tp(cid: str, symbol: str = "BTCUSDT", price: str = "46000", qty: str = "0.001") -> OrderRequest:
    return OrderRequest(cid, symbol, OrderSide.SELL, "LONG", OrderType.LIMIT, D(qty), price=D(price))


def setup(limits: RateLimits | None = None, policy: GatewayPolicy | None = None):
    exchange = SimExchange(rules_for(SYMBOLS), clock=trio_clock)
    exchange.set_marks({"BTCUSDT": D("45000"), "ETHUSDT": D("3000")})
    exchange.external_entry("BTCUSDT", Side.LONG, D("1"))
    venue = RecordingVenue(exchange, limits=limits)
    inbox_send, inbox_recv = trio.open_memory_channel(1000)
    replies_send, replies_recv = trio.open_memory_channel(1000)
    gateway = OrderGateway(venue, inbox_recv, Metrics(), policy)
    return exchange, venue, gateway, inbox_send, replies_send, replies_recv


def drain(recv) -> list[OrderResults]:
    out = []
    while True:
        try:
            out.append(recv.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_queued_placements_are_packed_into_batches_of_at_most_five(nursery, autojump_clock):
    _exchange, venue, gateway, inbox, reply, replies = setup()
    for i in range(3):  # three tranches' TP+SL pairs waiting at once
        inbox.send_nowait(PlaceOrders((tp(f"pm-{i}-T1"), tp(f"pm-{i}-S1", price="46100")), reply))
    await nursery.start(gateway.run)
    await settle()
    assert [n for _, kind, n in venue.log if kind == "place"] == [4, 2]
    results = [r for msg in drain(replies) for r in msg.results]
    assert sorted(r.client_id for r in results if r.state and r.state.status is OrderStatus.NEW) == sorted(
        f"pm-{i}-{p}1" for i in range(3) for p in "TS"
    )


async def test_exits_jump_the_queue(nursery, autojump_clock):
    _exchange, _venue, gateway, inbox, reply, replies = setup()
    for i in range(6):
        inbox.send_nowait(PlaceOrders((tp(f"pm-{i}-T1", "ETHUSDT", "3100"),), reply, Priority.PROTECT))
    close = OrderRequest("pm-99-C1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.MARKET, D("0.5"))
    inbox.send_nowait(PlaceOrders((close,), reply, Priority.EXIT))
    await nursery.start(gateway.run)
    await settle()
    first = drain(replies)[0]
    assert [r.client_id for r in first.results] == ["pm-99-C1"]


async def test_cancels_of_one_symbol_share_a_call_and_a_filled_order_reports_filled(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup()
    exchange.place_orders([tp("pm-1-T1"), tp("pm-1-S1", price="44000")])  # 44000 SELL limit fills at once
    inbox.send_nowait(CancelOrders("BTCUSDT", ("pm-1-T1",), reply))
    inbox.send_nowait(CancelOrders("BTCUSDT", ("pm-1-S1",), reply))
    await nursery.start(gateway.run)
    await settle()
    assert [n for _, kind, n in venue.log if kind == "cancel"] == [2]
    states = {r.client_id: r.state.status for msg in drain(replies) for r in msg.results}
    assert states == {"pm-1-T1": OrderStatus.CANCELED, "pm-1-S1": OrderStatus.FILLED}


async def test_pacing_never_exceeds_the_published_limits(nursery, autojump_clock):
    limits = RateLimits(weight_per_minute=60, orders_per_minute=40)
    _exchange, venue, gateway, inbox, reply, replies = setup(limits)
    for i in range(60):
        inbox.send_nowait(PlaceOrders((tp(f"pm-{i}-T1", price=str(46000 + i)),), reply))
    await nursery.start(gateway.run)
    await trio.sleep(600)
    placed = sum(len(m.results) for m in drain(replies))
    assert placed == 60
    times = [(t, n) for t, kind, n in venue.log if kind == "place"]
    for start, _ in times:
        window = [(t, n) for t, n in times if start <= t < start + 60]
        weight = sum(limits.place_weight if n == 1 else limits.batch_place_weight for _, n in window)
        assert weight <= limits.weight_per_minute
        assert sum(n for _, n in window) <= limits.orders_per_minute


async def test_503_after_execution_is_looked_up_not_resent(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup()
    exchange.fail_next("place_orders", 1, after_execute=True)
    inbox.send_nowait(PlaceOrders((tp("pm-1-T1"), tp("pm-1-S1", price="46100")), reply))
    await nursery.start(gateway.run)
    await trio.sleep(10)
    [msg] = drain(replies)
    assert all(r.state is not None and r.state.status is OrderStatus.NEW for r in msg.results)
    assert len([1 for _, kind, _ in venue.log if kind == "place"]) == 1
    assert len(exchange.engine.open_orders("BTCUSDT")) == 2


async def test_timeout_before_execution_is_looked_up_then_resent_once(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup()
    exchange.fail_next("place_orders", 1)
    inbox.send_nowait(PlaceOrders((tp("pm-1-T1"),), reply))
    await nursery.start(gateway.run)
    await trio.sleep(10)
    [msg] = drain(replies)
    assert msg.results[0].state.status is OrderStatus.NEW
    assert exchange.calls["query_order"] == 1
    assert len([1 for _, kind, _ in venue.log if kind == "place"]) == 2
    assert len(exchange.engine.open_orders("BTCUSDT")) == 1


async def test_rate_limited_call_waits_and_is_retried(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup()
    exchange.rate_limit_next("place_orders", 1, retry_after=30)
    inbox.send_nowait(PlaceOrders((tp("pm-1-T1"),), reply))
    await nursery.start(gateway.run)
    await trio.sleep(60)
    [msg] = drain(replies)
    assert msg.results[0].state.status is OrderStatus.NEW
    t1, t2 = [t for t, kind, _ in venue.log if kind == "place"]
    assert t2 - t1 >= 30


async def test_outcome_still_unknown_after_all_attempts_is_reported_unknown(nursery, autojump_clock):
    exchange, venue, gateway, inbox, reply, replies = setup(policy=GatewayPolicy(max_attempts=3))
    exchange.fail_next("place_orders", 100)
    exchange.fail_next("query_order", 100)
    inbox.send_nowait(PlaceOrders((tp("pm-1-T1"),), reply))
    await nursery.start(gateway.run)
    await trio.sleep(120)
    [msg] = drain(replies)
    assert msg.results[0].unknown and msg.results[0].action is Action.PLACE
    assert len([1 for _, kind, _ in venue.log if kind == "place"]) == 1  # never resent blindly


async def test_precision_refusal_is_re_rounded_in_the_safe_direction_and_placed(nursery, autojump_clock):
    exchange, _venue, gateway, inbox, reply, replies = setup()
    tp_sell = tp("pm-1-T1", price="46000.05")  # off the 0.1 tick
    stop = OrderRequest(
        "pm-1-S1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.STOP_MARKET, D("0.0015"), stop_price=D("22500.01")
    )
    inbox.send_nowait(PlaceOrders((tp_sell, stop), reply))
    await nursery.start(gateway.run)
    await trio.sleep(5)
    [msg] = drain(replies)
    by_id = {r.client_id: r for r in msg.results}
    assert by_id["pm-1-T1"].state.price == D("46000.0")  # a closing SELL limit rounds down
    assert by_id["pm-1-S1"].state.stop_price == D("22500.1")  # a SELL stop rounds up, toward the entry
    assert by_id["pm-1-S1"].state.qty == D("0.001")  # quantities round down
    assert by_id["pm-1-T1"].sent.price == D("46000.0")
    assert len(exchange.engine.open_orders("BTCUSDT")) == 2


async def test_other_refusals_are_final_and_carry_the_venue_code(nursery, autojump_clock):
    _exchange, _venue, gateway, inbox, reply, replies = setup()
    stop = OrderRequest(
        "pm-1-S1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.STOP_MARKET, D("0.001"), stop_price=D("45100")
    )  # a SELL stop above the mark would trigger at once
    inbox.send_nowait(PlaceOrders((stop,), reply))
    await nursery.start(gateway.run)
    await settle()
    [msg] = drain(replies)
    assert isinstance(msg.results[0].error, WouldTriggerImmediately) and msg.results[0].error.code == -2021


async def test_many_waiting_account_snapshots_are_served_by_one_whole_account_fetch(nursery, autojump_clock):
    from posmon.actors.messages import FetchAccount

    exchange, venue, gateway, inbox, _reply, _replies = setup()
    exchange.external_entry("ETHUSDT", Side.SHORT, D("2"))
    calls = []
    real_positions, real_open = venue.positions, venue.open_orders

    async def positions(symbol=None):
        calls.append(("positions", symbol))
        return await real_positions(symbol)

    async def open_orders(symbol=None):
        calls.append(("open_orders", symbol))
        return await real_open(symbol)

    venue.positions, venue.open_orders = positions, open_orders
    answers = []
    for i in range(40):  # 40 actors reconciling at start-up: 40 x 6 weight > one whole-account fetch (45)
        send, recv = trio.open_memory_channel(1)
        inbox.send_nowait(FetchAccount(SYMBOLS[i % 2], send))
        answers.append((SYMBOLS[i % 2], recv))
    await nursery.start(gateway.run)
    await settle()

    assert calls == [("positions", None), ("open_orders", None)]
    for symbol, recv in answers:
        snap = recv.receive_nowait()
        assert [p.symbol for p in snap.positions] == [symbol]  # each actor sees only its symbol


async def test_a_few_account_snapshots_stay_per_symbol(nursery, autojump_clock):
    from posmon.actors.messages import FetchAccount

    _exchange, venue, gateway, inbox, _reply, _replies = setup()
    calls = []
    real_positions = venue.positions

    async def positions(symbol=None):
        calls.append(symbol)
        return await real_positions(symbol)

    venue.positions = positions
    send, recv = trio.open_memory_channel(1)
    inbox.send_nowait(FetchAccount("BTCUSDT", send))
    await nursery.start(gateway.run)
    await settle()
    assert calls == ["BTCUSDT"] and [p.symbol for p in recv.receive_nowait().positions] == ["BTCUSDT"]


async def test_a_cancel_never_overtakes_the_queued_placement_of_the_same_order(nursery, autojump_clock):
    """An exit's cancel outranks a protection placement, but not the placement of the very order it cancels:
    sent first it would find nothing, the order would be written off as never placed and then rest untracked."""
    exchange, venue, gateway, inbox, reply, replies = setup()
    inbox.send_nowait(PlaceOrders((tp("pm-1-T1"),), reply, Priority.PROTECT))
    inbox.send_nowait(PlaceOrders((tp("pm-2-T1", "ETHUSDT", "3100"),), reply, Priority.PROTECT))
    inbox.send_nowait(CancelOrders("BTCUSDT", ("pm-1-T1",), reply, Priority.EXIT))
    await nursery.start(gateway.run)
    await settle()
    results = [
        (r.action, r.client_id, r.state.status if r.state else r.error) for m in drain(replies) for r in m.results
    ]
    assert (Action.CANCEL, "pm-1-T1", OrderStatus.CANCELED) in results
    assert exchange.engine.open_orders("BTCUSDT") == []  # nothing rests untracked
    assert venue.log[0][1] == "place"  # hoisted ahead of the exit's cancel


class GatedVenue(RecordingVenue):
    """Placements wait for ``gate`` before they reach the exchange: a slow POST still in flight."""

    def __init__(self, exchange, **kw):
        super().__init__(exchange, **kw)
        self.gate = trio.Event()

    async def place_orders(self, orders):
        self.log.append((trio.current_time(), "place", len(orders)))
        await self.gate.wait()
        return await SimVenue.place_orders(self, orders)


async def test_a_cancel_waits_for_the_in_flight_placement_of_the_same_order(nursery, autojump_clock):
    exchange, _venue, _gateway, _inbox, reply, replies = setup()
    venue = GatedVenue(exchange)
    inbox_send, inbox_recv = trio.open_memory_channel(100)
    gateway = OrderGateway(venue, inbox_recv, Metrics())
    await nursery.start(gateway.run)
    inbox_send.send_nowait(PlaceOrders((tp("pm-1-T1"),), reply, Priority.PROTECT))
    await settle()  # the POST is out, its answer not yet in
    inbox_send.send_nowait(CancelOrders("BTCUSDT", ("pm-1-T1",), reply, Priority.EXIT))
    await settle()
    venue.gate.set()
    await trio.sleep(1)
    results = [(r.action, r.state.status if r.state else r.error) for m in drain(replies) for r in m.results]
    assert results == [(Action.PLACE, OrderStatus.NEW), (Action.CANCEL, OrderStatus.CANCELED)]
    assert exchange.engine.open_orders("BTCUSDT") == []


async def test_a_placement_refused_as_a_duplicate_client_id_is_looked_up_not_written_off(nursery, autojump_clock):
    """-4116 means the order exists (an earlier attempt or incarnation placed it): written off as refused, the
    actor would protect again under a new client id and two orders would rest."""
    exchange, _venue, gateway, inbox, reply, replies = setup()
    exchange.place_orders([tp("pm-1-T1")])  # placed by an attempt whose answer was lost
    inbox.send_nowait(PlaceOrders((tp("pm-1-T1"),), reply))
    await nursery.start(gateway.run)
    await trio.sleep(5)
    [msg] = drain(replies)
    [result] = msg.results
    assert result.error is None and result.state.status is OrderStatus.NEW
    assert exchange.calls["query_order"] == 1
    assert len(exchange.engine.open_orders("BTCUSDT")) == 1
