"""``LighterVenue`` against the Lighter-protocol simulator over loopback, signing with the real SDK signer.

Real signed create/cancel transactions are accepted, orders and positions read back, and a fill reaches the
account stream as an ``OrderUpdate`` carrying posmon's client id."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import trio

from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, Side
from posmon.exchange.events import MarkPrice, OrderUpdate, PositionUpdate
from posmon.exchange.lighter.settings import LighterSettings
from posmon.exchange.lighter.venue import LighterVenue
from posmon.exchange.venue import FrameStream
from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
from posmon.sim.lighter.credentials import (
    DEFAULT_ACCOUNT_INDEX,
    DEFAULT_API_KEY_INDEX,
    DEFAULT_API_PRIVATE_KEY,
)

D = Decimal
WAIT = 10.0  # seconds; a loopback answer takes milliseconds


@asynccontextmanager
async def lighter_on_sim(**options: Any) -> AsyncIterator[tuple[LighterVenue, LighterSim]]:
    sim = LighterSim(build_exchange(), **options)
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)
        settings = LighterSettings(
            rest_url=rest_url,
            ws_url=ws_url,
            account_index=DEFAULT_ACCOUNT_INDEX,
            api_key_index=DEFAULT_API_KEY_INDEX,
            api_private_key=DEFAULT_API_PRIVATE_KEY,
        )
        async with LighterVenue.open(settings, clock=time.time) as venue:
            yield venue, sim
        nursery.cancel_scope.cancel()


def order(cid: str, **kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "client_id": cid,
        "symbol": "ETH",
        "side": OrderSide.BUY,
        "position_side": "BOTH",
        "type": OrderType.LIMIT,
        "qty": D("0.1"),
        "price": D("2500.00"),
    }
    return OrderRequest(**{**base, **kw})


async def next_order_update(venue: LighterVenue, frames: FrameStream, cid: str) -> OrderUpdate:
    with trio.fail_after(WAIT):
        while True:
            for event in venue.parse_user_frame(await frames.receive()):
                if isinstance(event, OrderUpdate) and event.client_id == cid:
                    return event


async def test_signed_limit_order_is_accepted_read_back_and_cancelled() -> None:
    async with lighter_on_sim() as (venue, _sim):
        (placed,) = await venue.place_orders([order("pm-1-E1")])
        assert not isinstance(placed, Exception) and placed.status is OrderStatus.NEW
        live = await venue.open_orders("ETH")  # the sim executes what it accepted before answering a read
        assert [(o.client_id, o.price, o.qty, o.side) for o in live] == [
            ("pm-1-E1", D("2500.00"), D("0.1"), OrderSide.BUY)
        ]
        assert (await venue.query_order("ETH", "pm-1-E1")).status is OrderStatus.NEW
        (answer,) = await venue.cancel_orders("ETH", ["pm-1-E1"])
        assert not isinstance(answer, Exception)
        state = await venue.query_order("ETH", "pm-1-E1")
        assert state.status is OrderStatus.CANCELED


async def test_market_entry_fill_reaches_the_account_stream_with_our_client_id() -> None:
    async with lighter_on_sim() as (venue, _sim):
        async with venue.connect_user_stream() as frames:
            (placed,) = await venue.place_orders([order("pm-2-E1", type=OrderType.MARKET, price=D("3030.00"))])
            assert not isinstance(placed, Exception)
            update = await next_order_update(venue, frames, "pm-2-E1")
            while not update.is_fill:
                update = await next_order_update(venue, frames, "pm-2-E1")
            assert (update.side, update.qty, update.last_qty) == (OrderSide.BUY, D("0.1"), D("0.1"))
            assert update.status is OrderStatus.FILLED and D(2900) < update.last_price <= D("3030.00")
        (position,) = await venue.positions("ETH")
        assert (position.side, position.qty) == (Side.LONG, D("0.1"))


async def test_positions_reach_the_stream_and_marks_the_price_stream() -> None:
    async with lighter_on_sim() as (venue, sim):
        async with venue.connect_user_stream() as frames:
            sim.external_entry("BTC", Side.SHORT, D("0.01"))
            with trio.fail_after(WAIT):
                found = None
                while found is None:
                    events = venue.parse_user_frame(await frames.receive())
                    found = next(
                        (
                            e
                            for e in events
                            if isinstance(e, PositionUpdate) and e.position.symbol == "BTC" and e.position.qty > 0
                        ),
                        None,
                    )
        assert (found.position.side, found.position.qty) == (Side.SHORT, D("0.01"))
        async with venue.connect_prices(["BTC"]) as prices:
            with trio.fail_after(WAIT):
                marks: list[MarkPrice] = []
                while not marks:
                    marks = venue.parse_price_frame(await prices.receive())
        assert {m.symbol for m in marks} <= {"ETH", "BTC", "DOGE"} and all(m.price > 0 for m in marks)
