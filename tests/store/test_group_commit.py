"""The store's writer: decisions handed over in one scheduling round share one transaction, each caller still
returns only once its own decision is written, and one faulty decision fails only its own caller. On both
backends (PostgreSQL's writer commits from a worker thread)."""

from decimal import Decimal as D

import pytest
import trio

from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Purpose, Side
from posmon.domain.protection import LocalState, OrderRecord
from posmon.domain.tranche import Tranche
from posmon.store.errors import StoreError
from posmon.store.store import Changes, Event, Store


def tranche(tid: int, symbol: str) -> Tranche:
    return Tranche(
        id=tid,
        venue="sim",
        symbol=symbol,
        side=Side.LONG,
        index=0,
        entry=D("100"),
        qty=D("1"),
        tp=D("101"),
        sl=D("50"),
        opened_at=0.0,
    )


def closing(tid: int, symbol: str) -> Changes:
    t = tranche(tid, symbol)
    return Changes(tranches=[t], events=[Event("close_started", "sim", symbol, "LONG", tid, {"reason": "TP"})])


@pytest.fixture
def store(location):
    s = Store.open(location)
    yield s
    s.close()


async def test_decisions_of_one_round_share_one_transaction_and_each_caller_waits_for_it(store, nursery):
    await nursery.start(store.run_writer)
    written: dict[int, bool] = {}

    async def actor(tid: int) -> None:
        await store.commit([closing(tid, f"S{tid}USDT")])
        # Returned: the decision is durable before the caller acts on it.
        written[tid] = bool(store.open_tranches("sim", f"S{tid}USDT"))

    before = store.commits
    async with trio.open_nursery() as actors:
        for tid in range(1, 9):  # eight actors woken by one frame
            actors.start_soon(actor, tid)
    assert store.commits - before == 1
    assert written == dict.fromkeys(range(1, 9), True)
    assert len(store.events("close_started")) == 8


async def test_without_the_writer_a_commit_is_written_inline(store):
    before = store.commits
    await store.commit([closing(1, "AUSDT"), closing(2, "BUSDT")])
    assert store.commits - before == 1
    assert len(store.open_tranches("sim")) == 2


async def test_a_faulty_decision_fails_only_its_own_caller(store, nursery):
    await nursery.start(store.run_writer)
    bad = Changes()
    orphan = OrderRecord(
        request=OrderRequest("pm-99-T1", "XUSDT", OrderSide.SELL, "LONG", OrderType.LIMIT, D("1"), price=D("2")),
        tranche_id=99,  # no such tranche: the store refuses to guess its venue
        purpose=Purpose.TP,
        state=LocalState.PENDING,
    )
    bad.orders.append(orphan)
    outcome: dict[str, object] = {}

    async def good() -> None:
        await store.commit([closing(1, "AUSDT")])
        outcome["good"] = "written"

    async def faulty() -> None:
        try:
            await store.commit([bad])
        except StoreError as exc:
            outcome["faulty"] = exc

    async with trio.open_nursery() as actors:
        actors.start_soon(good)
        actors.start_soon(faulty)
    assert outcome["good"] == "written"
    assert isinstance(outcome["faulty"], StoreError)
    assert [t.id for t in store.open_tranches("sim")] == [1]
    assert store.order("pm-99-T1") is None


async def test_a_decision_handed_over_as_the_writer_stops_is_still_written(store):
    async with trio.open_nursery() as n:
        await n.start(store.run_writer)
        n.start_soon(store.commit, [closing(1, "AUSDT")])  # handed over in the round the daemon stops
        n.cancel_scope.cancel()
    assert [t.id for t in store.open_tranches("sim")] == [1]
