"""Regression tests for the ways the daemon lost protection under kill -9 and faults (issue 10, point 6).

Each test reproduces one mechanism the randomized campaign found, by the mechanism: a position actor and a
scripted gateway whose answers the test gives by hand (so the race is exact), or the whole daemon on the
in-process simulator with the order of events forced.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import trio
import trio.testing

from posmon.actors.messages import (
    AccountSnapshot,
    Action,
    CancelOrders,
    FetchAccount,
    Notice,
    OrderResult,
    OrderResults,
    PlaceOrders,
    QueryOrders,
    ResumeMonitoring,
)
from posmon.actors.position import ActorConfig, ActorLinks, PositionActor
from posmon.actors.price_slot import PriceSlot
from posmon.domain.orders import OrderState, OrderStatus, PositionState, Side, WorkingType
from posmon.domain.protection import protection_orders
from posmon.domain.tranche import Risk, new_tranche
from posmon.exchange.errors import OrderNotFound
from posmon.metrics import Metrics
from posmon.sim.markets import rules_for
from posmon.store.store import Changes, Store
from tests.harness import make_settings, new_exchange, running, settle
from tests.scenario import assert_protected_and_no_orphans

RULES = rules_for(["BTCUSDT"])["BTCUSDT"]
RISK = Risk(tp_pct=D(1), sl_pct=D(10))


class LoneActor:
    """One position actor whose gateway is the test: every request waits in ``requests`` to be answered."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inbox_send, inbox = trio.open_memory_channel[Any](1000)
        self.gateway_send, self.gateway = trio.open_memory_channel[Any](1000)
        notices_send, self.notices = trio.open_memory_channel[Notice](100)
        cfg = ActorConfig(
            venue="sim",
            symbol="BTCUSDT",
            side=Side.LONG,
            rules=RULES,
            risk=RISK,
            instant_tp=True,
            working_type=WorkingType.MARK_PRICE,
            hedge_mode=True,
            prefix="pm",
            reply_timeout=30.0,
        )
        self.links = ActorLinks(
            inbox=inbox,
            self_send=self.inbox_send,
            slot=PriceSlot(self.inbox_send, 1),
            gateway=self.gateway_send,
            notices=notices_send,
            store=store,
            metrics=Metrics(),
            clock=trio.current_time,
        )
        self.cfg = cfg
        self.seen: list[Any] = []

    def start(self, nursery: trio.Nursery, snapshot: AccountSnapshot | None) -> PositionActor:
        actor = PositionActor(self.cfg, self.links, snapshot=snapshot)
        nursery.start_soon(actor.run)
        return actor

    async def requests(self) -> list[Any]:
        """Everything the actor has asked the gateway for since the last call."""
        await trio.testing.wait_all_tasks_blocked()
        out = []
        while True:
            try:
                out.append(self.gateway.receive_nowait())
            except trio.WouldBlock:
                break
        self.seen += out
        return out


def seed_tranche(store: Store, qty: str = "0.1", entry: str = "45000") -> tuple[Any, Any, Any]:
    """A protected tranche as a previous run left it: its TP and SL decided (PENDING until told otherwise)."""
    t = new_tranche(
        id=store.allocate_tranche_id(),
        venue="sim",
        symbol="BTCUSDT",
        side=Side.LONG,
        index=0,
        qty=D(qty),
        price=D(entry),
        now=0.0,
        risk=RISK,
        rules=RULES,
    )
    t, tp, sl = protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=True)
    store.apply(Changes(tranches=[t], orders=[tp, sl]))
    return t, tp, sl


def state(rec: Any, status: OrderStatus, filled: str = "0", order_id: str = "1") -> OrderState:
    r = rec.request
    return OrderState(
        client_id=r.client_id,
        order_id=order_id,
        symbol=r.symbol,
        side=r.side,
        position_side=r.position_side,
        type=r.type,
        status=status,
        qty=r.qty,
        filled_qty=D(filled),
        avg_price=r.price or D(0),
        price=r.price,
        stop_price=r.stop_price,
        reduce_only=r.reduce_only,
    )


def open_store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "posmon.sqlite", clock=trio.current_time)


async def test_a_leg_resized_during_the_start_up_reconcile_is_never_looked_up_while_in_flight(tmp_path, autojump_clock):
    """Mechanism 1: the TP partly filled while the daemon was down; the start-up reconcile places a resized SL.

    Before the fix the look-up list was computed after settling, so the new SL was looked up while its
    placement was in flight, answered "unknown order", written off, and a third SL placed: two rested.
    """
    store = open_store(tmp_path)
    _, tp, sl = seed_tranche(store)
    lone = LoneActor(store)
    snap = AccountSnapshot(
        (PositionState("BTCUSDT", Side.LONG, D("0.06"), D("45000")),),
        (state(tp, OrderStatus.PARTIALLY_FILLED, "0.04", "11"), state(sl, OrderStatus.NEW, "0", "12")),
    )
    async with trio.open_nursery() as nursery:
        lone.start(nursery, snap)
        first = await lone.requests()
        placed = [o for r in first if isinstance(r, PlaceOrders) for o in r.orders]
        assert [(o.type.value, o.qty) for o in placed] == [("STOP_MARKET", D("0.06"))]
        new_sl = placed[0]
        assert not [r for r in first if isinstance(r, QueryOrders)], "nothing needed a look-up"
        # The placement is answered late, after anything else the actor might do meanwhile.
        await trio.sleep(1)
        later = await lone.requests()
        assert not [r for r in later if isinstance(r, QueryOrders) and new_sl.client_id in r.client_ids]
        [req] = [r for r in first if isinstance(r, PlaceOrders)]
        rec = store.order(new_sl.client_id)
        req.reply_to.send_nowait(
            OrderResults((OrderResult(new_sl.client_id, Action.PLACE, state=state(rec, OrderStatus.NEW, "0", "13")),))
        )
        after = await lone.requests()
        # The old SL goes once the new one is live; no third SL is ever placed.
        assert [r.client_ids for r in after if isinstance(r, CancelOrders)] == [(sl.client_id,)]
        all_sls = {
            o.client_id
            for r in lone.seen
            if isinstance(r, PlaceOrders)
            for o in r.orders
            if o.type.value == "STOP_MARKET"
        }
        assert all_sls == {new_sl.client_id}
        nursery.cancel_scope.cancel()
    store.close()


async def test_look_ups_that_fail_are_retried_until_the_legs_are_known_and_placed(tmp_path, autojump_clock):
    """Mechanism 2: killed with a TP+SL batch in flight that never executed; after the restart both look-ups
    answer 503. Before the fix the unknown answers were ignored, the PENDING legs counted as current, and the
    position sat with no TP and no SL until a reconnect."""
    store = open_store(tmp_path)
    _, tp, sl = seed_tranche(store)
    lone = LoneActor(store)
    snap = AccountSnapshot((PositionState("BTCUSDT", Side.LONG, D("0.1"), D("45000")),), ())
    async with trio.open_nursery() as nursery:
        lone.start(nursery, snap)
        [query] = [r for r in await lone.requests() if isinstance(r, QueryOrders)]
        assert set(query.client_ids) == {tp.request.client_id, sl.request.client_id}
        query.reply_to.send_nowait(OrderResults(tuple(OrderResult(c, Action.QUERY) for c in query.client_ids)))
        assert not [r for r in await lone.requests() if isinstance(r, PlaceOrders)]  # unknown is not "absent"
        await trio.sleep(lone.cfg.retry_seconds + 0.1)
        again = await lone.requests()
        [fetch] = [r for r in again if isinstance(r, FetchAccount)]
        fetch.reply_to.send_nowait(snap)
        [query] = [r for r in await lone.requests() if isinstance(r, QueryOrders)]
        query.reply_to.send_nowait(
            OrderResults(
                tuple(
                    OrderResult(c, Action.QUERY, error=OrderNotFound("no such order", code=-2013))
                    for c in query.client_ids
                )
            )
        )
        placed = [o for r in await lone.requests() if isinstance(r, PlaceOrders) for o in r.orders]
        assert sorted((o.type.value, o.qty) for o in placed) == [("LIMIT", D("0.1")), ("STOP_MARKET", D("0.1"))]
        nursery.cancel_scope.cancel()
    store.close()


async def test_a_placement_answered_after_its_order_was_written_off_is_cancelled(tmp_path, autojump_clock):
    """The safety net of mechanism 1: whatever is placed under an id already written off does not stay."""
    store = open_store(tmp_path)
    _, tp, sl = seed_tranche(store)
    store.apply(Changes(orders=[replace(tp, state=tp.state.DONE, final_status=OrderStatus.CANCELED)]))
    lone = LoneActor(store)
    async with trio.open_nursery() as nursery:
        lone.start(
            nursery,
            AccountSnapshot(
                (PositionState("BTCUSDT", Side.LONG, D("0.1"), D("45000")),), (state(sl, OrderStatus.NEW),)
            ),
        )
        await lone.requests()
        lone.inbox_send.send_nowait(
            OrderResults(
                (OrderResult(tp.request.client_id, Action.PLACE, state=state(tp, OrderStatus.NEW, "0", "99")),)
            )
        )
        cancels = [r.client_ids for r in await lone.requests() if isinstance(r, CancelOrders)]
        assert (tp.request.client_id,) in cancels
        nursery.cancel_scope.cancel()
    store.close()


async def test_fills_between_the_start_up_snapshot_and_the_first_stream_connection_are_protected(
    tmp_path, autojump_clock, monkeypatch
):
    """Mechanism 3: an entry lands on a restored key after the start-up snapshot and before the user stream's
    first connection. Before the fix the stream reconciled only on reconnects, so the growth stayed unprotected."""
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")

    subscribe = type(exchange).open_user_stream
    landed = []

    def entry_then_subscribe(self: Any) -> Any:
        if not landed:  # the first connection: the entry's events are gone before anyone listens
            landed.append(True)
            self.set_mark("BTCUSDT", D("44900"))
            self.external_entry("BTCUSDT", Side.LONG, D("0.05"))
        return subscribe(self)

    monkeypatch.setattr(type(exchange), "open_user_stream", entry_then_subscribe)
    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        assert landed
        assert sum(t.qty for t in h.store.open_tranches("sim")) == D("0.15")
        assert_protected_and_no_orphans(h)


async def test_a_sibling_cancel_persisted_before_a_kill_goes_out_after_the_restart(tmp_path, autojump_clock):
    """Mechanism 4: the TP filled, the SL was persisted CANCELING, the daemon died before the cancel went out.
    Before the fix only keys with open tranches were restored, so the SL stayed resting on a flat side."""
    settings = make_settings(tmp_path, instant_tp_enabled=False)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        exchange.fail_next("cancel_orders", 1000)  # the cancel never gets out (as if killed first)
        await h.mark("BTCUSDT", "45500")  # the TP limit trades
        assert h.store.open_tranches("sim") == [] and h.store.position_keys("sim") != []
        assert [o.type.value for o in h.orders()] == ["STOP_MARKET"]
    exchange.faults.clear()
    async with running(settings, exchange) as h:
        await trio.sleep(1)
        await settle()
        assert h.orders() == []


async def test_a_late_update_of_an_adopted_fill_is_not_counted_twice(tmp_path, autojump_clock):
    """Mechanism 5: after a restart the stream delivered an entry's update late; the read had already adopted
    the grown position, and the late update was applied again (store 0.21 against a position of 0.18)."""
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with running(settings, exchange) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
    tap = exchange.open_user_stream()
    exchange.set_mark("BTCUSDT", D("44900"))
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.05"), client_id="manual-7")
    late = []
    while True:
        try:
            frame = tap.receive_nowait()
        except trio.WouldBlock:
            break
        if b"manual-7" in frame:
            late.append(frame)
    assert late
    async with running(settings, exchange) as h:
        await trio.sleep(3)
        await settle()
        assert sum(t.qty for t in h.store.open_tranches("sim")) == D("0.15")
        for frame in late:
            exchange.publish_raw_user_frame(frame)
        await trio.sleep(3)
        await settle()
        assert sum(t.qty for t in h.store.open_tranches("sim")) == D("0.15")
        assert_protected_and_no_orphans(h)


async def test_three_hundred_resumes_do_not_delay_an_exit(tmp_path, autojump_clock):
    """Issue 11 point 1: every resume ran a full reconcile inside the actor, waiting for rate-paced reads;
    300 of them stopped a close outright. Now reads run beside the actor and repeated requests coalesce."""
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        reads = h.exchange.calls["positions"]
        inbox = h.daemon.directory.inbox("BTCUSDT", Side.LONG)
        for _ in range(300):
            inbox.send_nowait(ResumeMonitoring())
        h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)  # through the TP: instant close
        await settle()  # no time passes: the close must not wait for any read
        assert h.store.open_tranches("sim") == []
        assert h.exchange.engine.position("BTCUSDT", Side.LONG) is None
        await trio.sleep(30)
        await settle()
        assert h.exchange.calls["positions"] - reads <= 2  # 300 requests, at most one read under way + one after


async def test_an_operator_entry_whose_answer_is_unknown_is_settled_by_a_look_up(tmp_path, autojump_clock):
    """A gateway crash answers an in-flight entry as outcome-unknown: the actor looks it up at its next reconcile
    and protects the fill at the entry's own risk (before, nothing asked again until a reconnect)."""
    from posmon.actors.messages import OpenEntry
    from posmon.domain.orders import OrderRequest, OrderSide, OrderType

    store = open_store(tmp_path)
    lone = LoneActor(store)
    tid = store.allocate_tranche_id()
    entry = OrderRequest(f"pm-{tid}-E1", "BTCUSDT", OrderSide.BUY, "LONG", OrderType.MARKET, D("0.1"))
    async with trio.open_nursery() as nursery:
        lone.start(nursery, AccountSnapshot((), ()))
        await lone.requests()
        lone.inbox_send.send_nowait(OpenEntry(entry, tid, Risk(tp_pct=D(2), sl_pct=D(3))))
        [place] = [r for r in await lone.requests() if isinstance(r, PlaceOrders)]
        place.reply_to.send_nowait(OrderResults((OrderResult(entry.client_id, Action.PLACE, sent=entry),)))
        await trio.sleep(lone.cfg.retry_seconds + 0.1)
        [fetch] = [r for r in await lone.requests() if isinstance(r, FetchAccount)]
        fetch.reply_to.send_nowait(AccountSnapshot((PositionState("BTCUSDT", Side.LONG, D("0.1"), D("45000")),), ()))
        [query] = [r for r in await lone.requests() if isinstance(r, QueryOrders)]
        assert query.client_ids == (entry.client_id,)
        filled = OrderState(
            client_id=entry.client_id,
            order_id="5",
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            position_side="LONG",
            type=OrderType.MARKET,
            status=OrderStatus.FILLED,
            qty=D("0.1"),
            filled_qty=D("0.1"),
            avg_price=D("45000"),
        )
        query.reply_to.send_nowait(OrderResults((OrderResult(entry.client_id, Action.QUERY, state=filled),)))
        placed = [o for r in await lone.requests() if isinstance(r, PlaceOrders) for o in r.orders]
        assert sorted((o.type.value, o.qty, o.price or o.stop_price) for o in placed) == [
            ("LIMIT", D("0.1"), D("45900")),
            ("STOP_MARKET", D("0.1"), D("43650")),
        ]
        [t] = store.open_tranches("sim")
        assert (t.id, t.qty) == (tid, D("0.1"))
        nursery.cancel_scope.cancel()
    store.close()


async def test_an_own_order_resting_on_a_key_with_no_actor_is_cancelled_by_the_sweep(tmp_path, autojump_clock):
    """Campaign violation (Aster seed 1066, no_orphan_order): a TP whose placement was answered 503 was written off,
    landed after all, and the side went flat while the daemon was down. No tranche and no active order named the
    key, so no actor was restored for it and the TP rested for good. The account sweep now starts an actor for
    every key where one of posmon's orders rests, which cancels it."""
    from posmon.domain.orders import OrderRequest, OrderSide, OrderType

    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    exchange.set_mark("ETHUSDT", D("3000"))
    exchange.external_entry("ETHUSDT", Side.LONG, D("1"))
    stray = OrderRequest("pm-41-T2", "ETHUSDT", OrderSide.SELL, "LONG", OrderType.LIMIT, D("1"), price=D("3030"))
    exchange.engine.place(stray, 0.0)
    exchange.silent_position("ETHUSDT", Side.LONG, D("0"), frame=False)  # flat, the TP still resting
    assert [o.client_id for o in exchange.engine.open_orders("ETHUSDT")] == ["pm-41-T2"]
    async with running(settings, exchange) as h:
        await trio.sleep(1)
        await settle()
        assert h.orders("ETHUSDT") == []
        # And one that shows up while running, with no stream event about it, goes at the next periodic sweep.
        exchange.engine.place(
            replace(stray, client_id="pm-42-S2", type=stray.type.STOP_MARKET, price=None, stop_price=D("2000")), 0.0
        )
        exchange.engine.drain_events()
        await trio.sleep(61)
        await settle()
        assert h.orders("ETHUSDT") == []
