"""The price slot: conflation, and gating so only a mark that can trigger something wakes an actor."""

from decimal import Decimal as D

import trio

from posmon.actors.price_slot import PriceSlot
from posmon.domain.orders import Side
from posmon.domain.tranche import Tranche
from posmon.domain.triggers import TriggerBook
from posmon.exchange.events import MarkPrice


def tranche(tid, side, tp, sl):
    return Tranche(
        id=tid, venue="v", symbol="X", side=side, index=tid, entry=D(100), qty=D(1), tp=D(tp), sl=D(sl), opened_at=0.0
    )


def wakes(slot, recv):
    n = 0
    while True:
        try:
            recv.receive_nowait()
            n += 1
        except trio.WouldBlock:
            return n


async def test_marks_are_conflated_into_one_wake_up():
    send, recv = trio.open_memory_channel(10)
    slot = PriceSlot(send)
    for p in ("1", "2", "3"):
        slot.put(MarkPrice("X", D(p), 0.0), 0.0)
    assert wakes(slot, recv) == 1
    assert slot.take().price == D(3) and slot.take() is None


async def test_long_actor_is_woken_only_by_a_mark_at_its_nearest_tp_or_sl():
    book = TriggerBook(Side.LONG, take_profit=True, stop_loss=True, timeout=False)
    book.add(tranche(1, Side.LONG, "110", "90"))
    book.add(tranche(2, Side.LONG, "105", "95"))
    send, recv = trio.open_memory_channel(10)
    slot = PriceSlot(send, Side.LONG.sign)
    slot.gate = book.price_gates()

    for p in ("100", "104.99", "95.01"):
        slot.put(MarkPrice("X", D(p), 0.0), 0.0)
    assert wakes(slot, recv) == 0 and slot.latest is None
    assert slot.last.price == D("95.01")  # still known to the actor (bounded closes use it)

    slot.put(MarkPrice("X", D("105"), 0.0), 0.0)
    assert wakes(slot, recv) == 1 and slot.take().price == D(105)
    slot.put(MarkPrice("X", D("95"), 0.0), 0.0)
    assert wakes(slot, recv) == 1


async def test_short_actor_gate_mirrors_and_no_exits_means_no_wake_ups():
    book = TriggerBook(Side.SHORT, take_profit=True, stop_loss=False, timeout=False)
    book.add(tranche(1, Side.SHORT, "90", "110"))
    send, recv = trio.open_memory_channel(10)
    slot = PriceSlot(send, Side.SHORT.sign)
    slot.gate = book.price_gates()
    slot.put(MarkPrice("X", D("200"), 0.0), 0.0)  # the SL is on the exchange, not watched here
    slot.put(MarkPrice("X", D("90.01"), 0.0), 0.0)
    assert wakes(slot, recv) == 0
    slot.put(MarkPrice("X", D("90"), 0.0), 0.0)
    assert wakes(slot, recv) == 1

    slot.take()
    slot.gate = TriggerBook(Side.SHORT, take_profit=True, stop_loss=True, timeout=False).price_gates()
    slot.put(MarkPrice("X", D("1"), 0.0), 0.0)
    assert wakes(slot, recv) == 0
