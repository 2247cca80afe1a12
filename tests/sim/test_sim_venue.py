"""SimVenue / SimExchange as the daemon sees them: wire frames, REST calls, counters and injected failures."""

from __future__ import annotations

from decimal import Decimal as D

import orjson
import pytest
import trio
import trio.testing

from posmon.domain.orders import OrderRequest, OrderSide, OrderState, OrderStatus, OrderType, PositionState, Side
from posmon.exchange.aster import codec
from posmon.exchange.errors import OrderNotFound, OutcomeUnknown, RateLimited, Rejected
from posmon.exchange.events import MalformedMessage, MarkPrice, OrderUpdate, PositionUpdate
from posmon.exchange.venue import FrameStream, StreamClosed, Venue
from posmon.sim import wire
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue

SYMBOLS = ["BTCUSDT", "XRPUSDT"]


class FixedClock:
    """A settable wall clock for the exchange, so event times are exact."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(*, hedge: bool = True, latency: float = 0.0) -> tuple[SimExchange, SimVenue, FixedClock]:
    clock = FixedClock()
    exchange = SimExchange(rules_for(SYMBOLS), hedge_mode=hedge, clock=clock)
    exchange.set_marks({"BTCUSDT": D("45000"), "XRPUSDT": D("1.0")})
    venue = SimVenue(exchange, latency=latency)
    _: Venue = venue  # the type checker holds SimVenue to the protocol
    return exchange, venue, clock


def order(
    cid: str,
    side: OrderSide = OrderSide.BUY,
    ps: str = "LONG",
    type_: OrderType = OrderType.MARKET,
    qty: str = "0.01",
    *,
    price: str | None = None,
    stop: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        client_id=cid,
        symbol="BTCUSDT",
        side=side,
        position_side=ps,
        type=type_,
        qty=D(qty),
        price=D(price) if price else None,
        stop_price=D(stop) if stop else None,
    )


def pending(stream: trio.MemoryReceiveChannel[bytes]) -> list[bytes]:
    """Every frame already delivered to a subscriber, without waiting."""
    frames = []
    while True:
        try:
            frames.append(stream.receive_nowait())
        except trio.WouldBlock:
            return frames


async def receive_all(stream: FrameStream, n: int) -> list[bytes]:
    return [await stream.receive() for _ in range(n)]


# ---- streams ---------------------------------------------------------------------------------------------------


async def test_price_frames_parse_into_mark_prices() -> None:
    exchange, venue, clock = make()
    async with venue.connect_prices(["BTCUSDT"]) as stream:
        clock.now = 1_700_000_001.5
        exchange.set_marks({"BTCUSDT": D("45010.5"), "XRPUSDT": D("1.0001")})
        frame = await stream.receive()
    assert venue.parse_price_frame(frame) == [
        MarkPrice("BTCUSDT", D("45010.5"), 1_700_000_001.5),
        MarkPrice("XRPUSDT", D("1.0001"), 1_700_000_001.5),
    ]
    assert orjson.loads(frame)[0] == {"e": "markPriceUpdate", "E": 1_700_000_001_500, "s": "BTCUSDT", "p": "45010.5"}


async def test_every_subscriber_gets_every_frame_and_closed_ones_are_dropped() -> None:
    exchange, venue, _ = make()
    a = exchange.open_price_stream()
    b = exchange.open_price_stream()
    exchange.set_mark("BTCUSDT", D("45001"))
    assert pending(a) == pending(b) != []
    b.close()
    exchange.set_mark("BTCUSDT", D("45002"))
    assert exchange.subscriber_counts == (1, 0)
    assert [m.price for f in pending(a) for m in venue.parse_price_frame(f)] == [D("45002")]


async def test_user_events_round_trip_through_the_user_stream() -> None:
    exchange, venue, clock = make()
    async with venue.connect_user_stream() as stream:
        clock.now += 1
        [entry] = await venue.place_orders([order("pm-e", qty="0.002")])
        assert isinstance(entry, OrderState) and entry.status is OrderStatus.FILLED
        stop_loss = order("pm-s", OrderSide.SELL, type_=OrderType.STOP_MARKET, qty="0.002", stop="44000")
        [sl] = await venue.place_orders([stop_loss])
        assert isinstance(sl, OrderState) and sl.status is OrderStatus.NEW
        clock.now += 1
        exchange.set_mark("BTCUSDT", D("43900"))
        events = [ev for frame in await receive_all(stream, 6) for ev in venue.parse_user_frame(frame)]
    summary = [
        (ev.client_id, ev.exec_type, ev.status, ev.last_qty, ev.last_price, ev.realized_pnl)
        if isinstance(ev, OrderUpdate)
        else (ev.position.side, ev.position.qty, ev.position.entry_price)
        for ev in events
    ]
    assert summary == [
        ("pm-e", "NEW", OrderStatus.NEW, D(0), D(0), D(0)),
        ("pm-e", "TRADE", OrderStatus.FILLED, D("0.002"), D(45000), D(0)),
        (Side.LONG, D("0.002"), D(45000)),
        ("pm-s", "NEW", OrderStatus.NEW, D(0), D(0), D(0)),
        ("pm-s", "TRADE", OrderStatus.FILLED, D("0.002"), D(43900), D("-2.2")),
        (Side.LONG, D(0), D(0)),
    ]
    assert events[4].time == clock.now
    assert exchange.positions() == []


async def test_one_way_account_update_says_both_and_a_flat_position_is_flat_on_both_sides() -> None:
    exchange, venue, _ = make(hedge=False)
    user = exchange.open_user_stream()
    await venue.place_orders([order("pm-1", ps="BOTH")])
    await venue.place_orders([order("pm-2", OrderSide.SELL, ps="BOTH")])
    frames = [orjson.loads(f) for f in pending(user)]
    accounts = [f["a"]["P"][0] for f in frames if f["e"] == "ACCOUNT_UPDATE"]
    assert accounts == [
        {"s": "BTCUSDT", "pa": "0.01", "ep": "45000", "ps": "BOTH"},
        {"s": "BTCUSDT", "pa": "0", "ep": "0", "ps": "BOTH"},
    ]
    last = venue.parse_user_frame(orjson.dumps(frames[-1]))
    assert [u.position for u in last if isinstance(u, PositionUpdate)] == [
        PositionState("BTCUSDT", Side.LONG, D(0), D(0)),
        PositionState("BTCUSDT", Side.SHORT, D(0), D(0)),
    ]


def test_short_position_is_negative_on_the_wire() -> None:
    event = PositionUpdate(PositionState("XRPUSDT", Side.SHORT, D("12.5"), D("1.0123")), 1.0)
    frame = wire.encode_user_event(event, 1000)
    assert orjson.loads(frame)["a"]["P"] == [{"s": "XRPUSDT", "pa": "-12.5", "ep": "1.0123", "ps": "SHORT"}]
    assert codec.parse_user_frame(frame) == [event]


def test_order_update_survives_encoding_exactly() -> None:
    event = OrderUpdate(
        symbol="BTCUSDT",
        client_id="pm:a/b.c_d-1",
        order_id="42",
        side=OrderSide.SELL,
        position_side="SHORT",
        type=OrderType.TAKE_PROFIT_MARKET,
        status=OrderStatus.PARTIALLY_FILLED,
        exec_type="TRADE",
        qty=D("0.003"),
        filled_qty=D("0.001"),
        last_qty=D("0.001"),
        last_price=D("44123.4"),
        avg_price=D("44123.4"),
        reduce_only=True,
        realized_pnl=D("-0.1234"),
        time=1_700_000_000.123,
    )
    frame = wire.encode_user_event(event, 1_700_000_000_123, stop_price=D("44100"))
    assert codec.parse_user_frame(frame) == [event]
    body = orjson.loads(frame)
    assert body["e"] == "ORDER_TRADE_UPDATE"
    assert (body["o"]["sp"], body["o"]["p"], body["o"]["i"], body["o"]["R"]) == ("44100", "0", 42, True)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b'{"result":null,"id":1}', []),
        (
            b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1000,"s":"BTCUSDT","p":"5"}}',
            [MarkPrice("BTCUSDT", D(5), 1.0)],
        ),
        (
            b'{"e":"markPriceUpdate","E":2500,"s":"XRPUSDT","p":"0.50","i":"0.5","r":"0.0001","T":0}',
            [MarkPrice("XRPUSDT", D("0.50"), 2.5)],
        ),
        (b"[]", []),
    ],
)
def test_price_frame_shapes(frame: bytes, expected: list[MarkPrice]) -> None:
    assert codec.parse_price_frame(frame) == expected


@pytest.mark.parametrize(
    "frame",
    [
        b'{"e":"listenKeyExpired","E":1}',
        b'{"e":"MARGIN_CALL","E":1,"p":[]}',
        b'{"stream":"key","data":{"e":"listenKeyExpired","E":1}}',
        b'{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"DEPOSIT","B":[],"P":[]}}',
    ],
)
def test_user_frames_with_nothing_for_posmon(frame: bytes) -> None:
    assert codec.parse_user_frame(frame) == []


# ---- malformed frames ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (b"not json", "not JSON"),
        (b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT"}', "'p'"),
        (b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":45000.5}', "not a decimal string"),
        (b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"abc"}', "not a decimal"),
        (b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"NaN"}', "finite"),
        (b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"-1"}', "negative"),
        (b'{"e":"markPriceUpdate","E":"1","s":"BTCUSDT","p":"1"}', "'E'"),
        (b'{"e":"markPriceUpdate","E":1,"s":"","p":"1"}', "'s'"),
        (b'{"e":"bookTicker","E":1}', "not a markPriceUpdate"),
        (b'[{"e":"markPriceUpdate","E":1,"s":"A","p":"1"}, 7]', "not a JSON object"),
        (b'{"stream":"x"}', "'data'"),
    ],
)
async def test_malformed_price_frames_raise_malformed_message(frame: bytes, says: str) -> None:
    exchange, venue, _ = make()
    async with venue.connect_prices(SYMBOLS) as stream:
        exchange.publish_raw_price_frame(frame)
        received = await stream.receive()
    assert received == frame
    with pytest.raises(MalformedMessage, match=says):
        venue.parse_price_frame(received)


def _trade_update(**changes: object) -> bytes:
    body = orjson.loads(
        wire.encode_user_event(
            OrderUpdate(
                symbol="BTCUSDT",
                client_id="pm-1",
                order_id="1",
                side=OrderSide.BUY,
                position_side="LONG",
                type=OrderType.MARKET,
                status=OrderStatus.FILLED,
                exec_type="TRADE",
                qty=D(1),
                filled_qty=D(1),
                last_qty=D(1),
                last_price=D(100),
                avg_price=D(100),
                reduce_only=False,
                realized_pnl=D(0),
                time=1.0,
            ),
            1000,
        )
    )
    for key, value in changes.items():
        if value is None:
            del body["o"][key]
        else:
            body["o"][key] = value
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (b"{", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"E":1}', "'e'"),
        (b'{"e":"ORDER_TRADE_UPDATE","E":1,"T":1}', "'o'"),
        (_trade_update(X="FILLED_A_BIT"), "OrderStatus"),
        (_trade_update(x="MYSTERY"), "execution type"),
        (_trade_update(o="ICEBERG"), "OrderType"),
        (_trade_update(S="HOLD"), "OrderSide"),
        (_trade_update(ps="MIDDLE"), "position side"),
        (_trade_update(l=1.5), "not a decimal string"),
        (_trade_update(z="1,5"), "not a decimal"),
        (_trade_update(c=None), "missing field 'c'"),
        (_trade_update(R="false"), "'R'"),
        (b'{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"ORDER","B":[],"P":{}}}', "not a list"),
        (b'{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"ORDER","B":[],"P":[{"s":"A","pa":"1","ps":"LONG"}]}}', "'ep'"),
    ],
)
async def test_malformed_user_frames_raise_malformed_message(frame: bytes, says: str) -> None:
    exchange, venue, _ = make()
    async with venue.connect_user_stream() as stream:
        exchange.publish_raw_user_frame(frame)
        received = await stream.receive()
    with pytest.raises(MalformedMessage, match=says):
        venue.parse_user_frame(received)


def test_the_unmodified_trade_update_used_above_parses() -> None:
    assert len(codec.parse_user_frame(_trade_update())) == 1


# ---- REST calls, counters, batch limits -----------------------------------------------------------------------------


async def test_rest_calls_behave_like_the_venue_and_are_counted() -> None:
    exchange, venue, _ = make()
    assert set(await venue.load_rules()) == set(SYMBOLS)
    results = await venue.place_orders(
        [
            order("pm-1", type_=OrderType.LIMIT, price="44000"),
            order("pm-2", type_=OrderType.LIMIT, price="44000.05"),
            order("pm-3"),
        ]
    )
    assert isinstance(results[0], OrderState) and results[0].status is OrderStatus.NEW
    assert isinstance(results[1], Rejected) and results[1].code == -4014
    assert [o.client_id for o in await venue.open_orders("BTCUSDT")] == ["pm-1"]
    assert await venue.positions() == [PositionState("BTCUSDT", Side.LONG, D("0.01"), D(45000))]
    cancels = await venue.cancel_orders("BTCUSDT", ["pm-1", "pm-404"])
    assert isinstance(cancels[0], OrderState) and cancels[0].status is OrderStatus.CANCELED
    assert isinstance(cancels[1], OrderNotFound) and cancels[1].code == -2011
    assert (await venue.query_order("BTCUSDT", "pm-1")).status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        await venue.query_order("BTCUSDT", "pm-2")
    assert {m.symbol: m.price for m in await venue.mark_prices()} == {"BTCUSDT": D(45000), "XRPUSDT": D("1.0")}
    assert exchange.calls == {
        "load_rules": 1,
        "place_orders": 1,
        "open_orders": 1,
        "positions": 1,
        "cancel_orders": 1,
        "query_order": 2,
        "mark_prices": 1,
    }
    assert exchange.orders_sent == 3


async def test_batches_over_the_venue_limit_are_refused_whole() -> None:
    exchange, venue, _ = make()
    with pytest.raises(Rejected) as info:
        await venue.place_orders([order(f"pm-{i}") for i in range(6)])
    assert info.value.code == -4082
    assert exchange.positions() == []
    with pytest.raises(Rejected):
        await venue.cancel_orders("BTCUSDT", [f"pm-{i}" for i in range(11)])


async def test_latency_is_paid_in_trio_time(autojump_clock: trio.testing.MockClock) -> None:
    _, venue, _ = make(latency=0.25)
    start = trio.current_time()
    await venue.positions()
    await venue.place_orders([order("pm-1")])
    assert trio.current_time() - start == pytest.approx(0.5)


# ---- fault injection ------------------------------------------------------------------------------------------------


async def test_fail_next_before_execute_has_no_effect() -> None:
    exchange, venue, _ = make()
    user = exchange.open_user_stream()
    exchange.fail_next("place_orders", 2)
    for _ in range(2):
        with pytest.raises(OutcomeUnknown):
            await venue.place_orders([order("pm-1")])
    with pytest.raises(OrderNotFound):
        await venue.query_order("BTCUSDT", "pm-1")
    assert pending(user) == []
    [state] = await venue.place_orders([order("pm-1")])  # the third attempt goes through
    assert isinstance(state, OrderState) and state.status is OrderStatus.FILLED
    assert exchange.calls["place_orders"] == 3
    assert exchange.orders_sent == 3


async def test_fail_next_after_execute_is_the_503_that_did_happen() -> None:
    exchange, venue, _ = make()
    user = exchange.open_user_stream()
    exchange.fail_next("place_orders", after_execute=True)
    with pytest.raises(OutcomeUnknown):
        await venue.place_orders([order("pm-1")])
    assert (await venue.query_order("BTCUSDT", "pm-1")).status is OrderStatus.FILLED
    assert await venue.positions() == [PositionState("BTCUSDT", Side.LONG, D("0.01"), D(45000))]
    assert len(pending(user)) == 3  # NEW, TRADE, ACCOUNT_UPDATE went out anyway
    [again] = await venue.place_orders([order("pm-1")])  # blind resend is refused as a duplicate
    assert isinstance(again, Rejected) and again.code == -4116


async def test_fail_next_on_cancel_after_execute() -> None:
    exchange, venue, _ = make()
    await venue.place_orders([order("pm-1", type_=OrderType.LIMIT, price="40000")])
    exchange.fail_next("cancel_orders", after_execute=True)
    with pytest.raises(OutcomeUnknown):
        await venue.cancel_orders("BTCUSDT", ["pm-1"])
    assert (await venue.query_order("BTCUSDT", "pm-1")).status is OrderStatus.CANCELED


async def test_rate_limit_next_refuses_without_executing() -> None:
    exchange, venue, _ = make()
    exchange.rate_limit_next("open_orders", 1, retry_after=7.5)
    exchange.rate_limit_next("place_orders", 1, retry_after=2)
    with pytest.raises(RateLimited) as info:
        await venue.open_orders()
    assert info.value.retry_after == 7.5
    with pytest.raises(RateLimited):
        await venue.place_orders([order("pm-1")])
    assert exchange.positions() == []
    assert await venue.open_orders() == []  # only the next call was limited
    assert exchange.calls["open_orders"] == 2


def test_faults_name_real_calls_only() -> None:
    exchange, _, _ = make()
    with pytest.raises(ValueError, match="place_order"):
        exchange.fail_next("place_order")


async def test_drop_streams_ends_every_stream_and_reconnect_works() -> None:
    exchange, venue, _ = make()
    async with venue.connect_prices(SYMBOLS) as prices, venue.connect_user_stream() as user:
        exchange.set_mark("BTCUSDT", D("45001"))
        exchange.drop_streams()
        assert venue.parse_price_frame(await prices.receive())[0].price == D("45001")  # buffered frame first
        with pytest.raises(StreamClosed):
            await prices.receive()
        with pytest.raises(StreamClosed):
            await user.receive()
        exchange.set_mark("BTCUSDT", D("45002"))  # published to nobody
    assert exchange.subscriber_counts == (0, 0)
    async with venue.connect_prices(SYMBOLS) as prices:
        exchange.set_mark("BTCUSDT", D("45003"))
        assert venue.parse_price_frame(await prices.receive())[0].price == D("45003")


async def test_stalled_prices_still_move_the_market() -> None:
    exchange, venue, _ = make()
    prices = exchange.open_price_stream()
    user = exchange.open_user_stream()
    await venue.place_orders([order("pm-e"), order("pm-s", OrderSide.SELL, type_=OrderType.STOP_MARKET, stop="44000")])
    pending(user)
    exchange.stall_prices(True)
    exchange.set_mark("BTCUSDT", D("43000"))
    assert pending(prices) == []
    fills = [e for f in pending(user) for e in venue.parse_user_frame(f) if isinstance(e, OrderUpdate) and e.is_fill]
    assert [(f.client_id, f.last_price) for f in fills] == [("pm-s", D(43000))]
    assert {m.symbol: m.price for m in await venue.mark_prices()}["BTCUSDT"] == D(43000)
    exchange.stall_prices(False)
    exchange.set_mark("BTCUSDT", D("43001"))
    assert [m.price for f in pending(prices) for m in venue.parse_price_frame(f)] == [D("43001")]


# ---- drivers: replay, external trader ------------------------------------------------------------------------------


async def test_replay_steps_paths_on_the_interval_and_loops(autojump_clock: trio.testing.MockClock) -> None:
    exchange = SimExchange(rules_for(SYMBOLS), clock=trio.current_time)
    prices = exchange.open_price_stream()
    paths = {"BTCUSDT": [D(1), D(2), D(3)], "XRPUSDT": [D("0.5"), D("0.6")]}
    with trio.move_on_after(4.5):  # ticks at t = 0, 1, 2, 3, 4
        await exchange.replay(paths, 1.0)
    seen = [(m.time, m.symbol, m.price) for f in pending(prices) for m in codec.parse_price_frame(f)]
    btc = [(float(t), "BTCUSDT", D(p)) for t, p in enumerate([1, 2, 3, 1, 2])]
    assert [s for s in seen if s[1] == "BTCUSDT"] == btc
    assert [s[2] for s in seen if s[1] == "XRPUSDT"] == [D("0.5"), D("0.6"), D("0.5"), D("0.6"), D("0.5")]


async def test_replay_without_loop_ends_with_the_longest_path(autojump_clock: trio.testing.MockClock) -> None:
    exchange = SimExchange(rules_for(SYMBOLS), clock=trio.current_time)
    prices = exchange.open_price_stream()
    await exchange.replay({"BTCUSDT": [D(1), D(2), D(3)], "XRPUSDT": [D("0.5")]}, 1.0, loop=False)
    frames = [codec.parse_price_frame(f) for f in pending(prices)]
    assert [[m.symbol for m in f] for f in frames] == [["BTCUSDT", "XRPUSDT"], ["BTCUSDT"], ["BTCUSDT"]]
    assert exchange.engine.mark("BTCUSDT") == D(3)


async def test_external_entry_is_someone_elses_order() -> None:
    exchange, venue, _ = make()
    user = exchange.open_user_stream()
    state = exchange.external_entry("XRPUSDT", Side.SHORT, D(50))
    assert (state.client_id, state.side, state.position_side, state.status) == (
        "ext-1",
        OrderSide.SELL,
        "SHORT",
        OrderStatus.FILLED,
    )
    assert exchange.external_entry("XRPUSDT", Side.SHORT, D(10)).client_id == "ext-2"
    assert await venue.positions() == [PositionState("XRPUSDT", Side.SHORT, D(60), D("1.0"))]
    assert len(pending(user)) == 6
    assert exchange.calls["place_orders"] == 0  # not the daemon's REST traffic
    with pytest.raises(ValueError):
        exchange.external_entry("XRPUSDT", Side.LONG, D(10), client_id="pm-sneaky")


async def test_run_trader_opens_random_positions_deterministically(autojump_clock: trio.testing.MockClock) -> None:
    async def trade(seed: int) -> list[tuple[str, OrderSide, D]]:
        exchange = SimExchange(rules_for(["BTCUSDT", "XRPUSDT", "DOGEUSDT"]), clock=trio.current_time)
        exchange.set_marks({"BTCUSDT": D(45000), "XRPUSDT": D("1.0"), "DOGEUSDT": D("0.2")})
        with trio.move_on_after(10.5):
            await exchange.run_trader(["BTCUSDT", "XRPUSDT", "DOGEUSDT"], 1.0, seed)
        entries = [
            exchange.engine.query(s, f"ext-{i}")
            for i in range(1, 11)
            for s in ["BTCUSDT", "XRPUSDT", "DOGEUSDT"]
            if _known(exchange, s, f"ext-{i}")
        ]
        assert len(entries) == 10
        assert all(e.status is OrderStatus.FILLED for e in entries)
        assert sum(p.qty for p in exchange.positions()) > 0
        return [(e.symbol, e.side, e.qty) for e in entries]

    first = await trade(1)
    assert first == await trade(1)
    assert first != await trade(2)
    marks = {"BTCUSDT": D(45000), "XRPUSDT": D("1.0"), "DOGEUSDT": D("0.2")}
    rules = rules_for(marks)
    for symbol, _, qty in first:  # about 100 USDT: rounded down, by less than one step
        assert D(100) - rules[symbol].step_size * marks[symbol] < qty * marks[symbol] <= D(100)
        assert qty % rules[symbol].step_size == 0


def _known(exchange: SimExchange, symbol: str, client_id: str) -> bool:
    try:
        exchange.engine.query(symbol, client_id)
    except OrderNotFound:
        return False
    return True


def test_a_zero_mark_is_no_price_and_is_skipped():
    # Aster reports "0" for a symbol without a mark yet: nothing to act on, but not a malformed frame either.
    assert codec.parse_price_frame(b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"0"}') == []


async def test_symbol_lookup_is_no_venue_call_to_count_or_fault() -> None:
    exchange, venue, _ = make()
    exchange.fail_next("load_rules")
    assert venue.symbol_for("BTCUSDT") == "BTCUSDT"
    with pytest.raises(KeyError):
        venue.symbol_for("NOPEUSDT")
    assert exchange.calls["load_rules"] == 0 and exchange.faults.pending("load_rules") == 1
