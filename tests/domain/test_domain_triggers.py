"""TriggerBook: which tranches a mark price (or the clock) triggers, nearest first, same answer as a full scan."""

import random
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posmon.domain.orders import Side
from posmon.domain.tranche import ExitReason, Tranche, exit_for
from posmon.domain.triggers import TriggerBook

ALL = {"take_profit": True, "stop_loss": True, "timeout": True}
TP, SL, TIMEOUT = ExitReason.TP, ExitReason.SL, ExitReason.TIMEOUT


def tr(id: int, side: Side, tp: str | D, sl: str | D, deadline: float | None = None) -> Tranche:
    return Tranche(
        id=id,
        venue="sim",
        symbol="BTCUSDT",
        side=side,
        index=id,
        entry=D(100),
        qty=D(1),
        tp=D(tp),
        sl=D(sl),
        opened_at=0.0,
        deadline=deadline,
    )


def book_of(side: Side, *tranches: Tranche, **flags: bool) -> TriggerBook:
    book = TriggerBook(side, **{**ALL, **flags})
    for t in tranches:
        book.add(t)
    return book


def pop(book: TriggerBook, mark: str | D | None, now: float = 0.0) -> list[tuple[int, ExitReason]]:
    return list(book.pop_triggered(None if mark is None else D(mark), now))


# --- direction ----------------------------------------------------------------------------------------------


def test_long_tp_triggers_at_or_above_tp_only():
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50"))
    assert pop(book, "109.9") == []
    assert pop(book, "110") == [(1, TP)]
    assert len(book) == 0


def test_long_sl_triggers_at_or_below_sl_only():
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50"))
    assert pop(book, "50.1") == []
    assert pop(book, "50") == [(1, SL)]
    assert 1 not in book


def test_short_tp_triggers_at_or_below_tp_only():
    book = book_of(Side.SHORT, tr(1, Side.SHORT, "90", "150"))
    assert pop(book, "90.1") == []
    assert pop(book, "150.1") == [(1, SL)]  # a SHORT's SL is above
    book.add(tr(1, Side.SHORT, "90", "150"))
    assert pop(book, "110") == []  # above a SHORT's TP means nothing
    assert pop(book, "90") == [(1, TP)]


def test_short_sl_triggers_at_or_above_sl_only():
    book = book_of(Side.SHORT, tr(1, Side.SHORT, "90", "150"))
    assert pop(book, "149.9") == []
    assert pop(book, "50") == [(1, TP)]
    book.add(tr(1, Side.SHORT, "90", "150"))
    assert pop(book, "150") == [(1, SL)]


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_timeout_triggers_at_the_deadline_without_a_mark(side):
    tp, sl = ("110", "50") if side is Side.LONG else ("90", "150")
    book = book_of(side, tr(1, side, tp, sl, deadline=60.0), tr(2, side, tp, sl))
    assert pop(book, None, now=59.9) == []
    assert pop(book, None, now=60.0) == [(1, TIMEOUT)]
    assert pop(book, "100", now=10**9) == []  # tranche 2 has no deadline
    assert len(book) == 1


def test_triggered_tranche_is_yielded_once_even_when_several_exits_apply():
    # Mark through TP and past the deadline: the first exit wins, the tranche leaves the book.
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50", deadline=5.0))
    assert pop(book, "120", now=10.0) == [(1, TP)]
    assert pop(book, "10", now=20.0) == []


def test_disabled_kinds_never_trigger():
    book = book_of(
        Side.LONG, tr(1, Side.LONG, "110", "50", deadline=5.0), take_profit=False, stop_loss=False, timeout=False
    )
    assert pop(book, "1000", now=100.0) == []
    assert pop(book, "1", now=100.0) == []
    assert len(book) == 1
    only_tp = book_of(Side.LONG, tr(1, Side.LONG, "110", "50", deadline=5.0), stop_loss=False, timeout=False)
    assert pop(only_tp, "1", now=100.0) == []
    assert pop(only_tp, "110", now=100.0) == [(1, TP)]


# --- order --------------------------------------------------------------------------------------------------


def test_long_tps_and_sls_come_nearest_first():
    book = book_of(
        Side.LONG, tr(3, Side.LONG, "112", "48"), tr(1, Side.LONG, "110", "50"), tr(2, Side.LONG, "111", "49")
    )
    assert pop(book, "200") == [(1, TP), (2, TP), (3, TP)]
    book = book_of(
        Side.LONG, tr(3, Side.LONG, "112", "48"), tr(1, Side.LONG, "110", "50"), tr(2, Side.LONG, "111", "49")
    )
    assert pop(book, "1") == [(1, SL), (2, SL), (3, SL)]


def test_short_tps_and_sls_come_nearest_first():
    book = book_of(
        Side.SHORT, tr(3, Side.SHORT, "88", "152"), tr(1, Side.SHORT, "90", "150"), tr(2, Side.SHORT, "89", "151")
    )
    assert pop(book, "1") == [(1, TP), (2, TP), (3, TP)]
    book = book_of(
        Side.SHORT, tr(3, Side.SHORT, "88", "152"), tr(1, Side.SHORT, "90", "150"), tr(2, Side.SHORT, "89", "151")
    )
    assert pop(book, "1000") == [(1, SL), (2, SL), (3, SL)]


def test_deadlines_come_earliest_first_and_only_those_due():
    book = book_of(
        Side.LONG, *(tr(i, Side.LONG, "110", "50", deadline=d) for i, d in ((1, 30.0), (2, 10.0), (3, 20.0), (4, 99.0)))
    )
    assert pop(book, None, now=30.0) == [(2, TIMEOUT), (3, TIMEOUT), (1, TIMEOUT)]
    assert list(book.pop_triggered(None, 30.0)) == []
    assert 4 in book


def test_partial_trigger_takes_only_the_levels_crossed():
    book = book_of(
        Side.LONG, tr(1, Side.LONG, "110", "50"), tr(2, Side.LONG, "111", "49"), tr(3, Side.LONG, "112", "48")
    )
    assert pop(book, "111") == [(1, TP), (2, TP)]
    assert len(book) == 1 and 3 in book


# --- replace / discard / deadlines ----------------------------------------------------------------------------


def test_replacing_a_tranche_drops_its_old_levels():
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50", deadline=10.0))
    book.add(tr(1, Side.LONG, "120", "40", deadline=50.0))
    assert len(book) == 1
    assert pop(book, "115", now=20.0) == []  # old TP 110 and old deadline 10 are gone
    assert pop(book, "45", now=20.0) == []  # old SL 50 is gone
    assert book.next_deadline() == 50.0
    assert pop(book, "120") == [(1, TP)]


def test_discard_removes_the_tranche():
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50", deadline=10.0), tr(2, Side.LONG, "110", "50"))
    book.discard(1)
    book.discard(99)  # unknown ids are ignored
    assert 1 not in book and len(book) == 1
    assert pop(book, "200", now=100.0) == [(2, TP)]


def test_a_discarded_tranche_can_be_added_again():
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50"))
    book.discard(1)
    book.add(tr(1, Side.LONG, "130", "50"))
    assert pop(book, "120") == []
    assert pop(book, "130") == [(1, TP)]


def test_next_deadline_is_the_earliest_live_one():
    book = book_of(Side.LONG)
    assert book.next_deadline() is None
    for i, d in ((1, 30.0), (2, 10.0), (3, None), (4, 20.0)):
        book.add(tr(i, Side.LONG, "110", "50", deadline=d))
    assert book.next_deadline() == 10.0
    book.discard(2)
    assert book.next_deadline() == 20.0
    book.add(tr(4, Side.LONG, "110", "50", deadline=40.0))
    assert book.next_deadline() == 30.0
    assert pop(book, "200") == [(1, TP), (3, TP), (4, TP)]
    assert book.next_deadline() is None


def test_next_deadline_is_none_when_timeouts_are_not_emulated():
    book = book_of(Side.LONG, tr(1, Side.LONG, "110", "50", deadline=5.0), timeout=False)
    assert book.next_deadline() is None


def test_a_tick_that_triggers_nothing_leaves_the_book_unchanged():
    ts = [tr(i, Side.LONG, str(110 + i), str(50 - i), deadline=100.0 + i) for i in range(1, 6)]
    book = book_of(Side.LONG, *ts)
    for _ in range(100):
        assert pop(book, "100", now=50.0) == []
    assert len(book) == 5 and all(t.id in book for t in ts)
    assert book.next_deadline() == 101.0
    assert pop(book, "200") == [(i, TP) for i in range(1, 6)]


# --- against a brute-force scan ---------------------------------------------------------------------------------


def scan(live: dict[int, Tranche], mark: D | None, now: float, flags: dict[str, bool]) -> set[tuple[int, ExitReason]]:
    out = set()
    for t in live.values():
        if mark is None:
            reason = exit_for(t, D(0), now, take_profit=False, stop_loss=False, timeout=flags["timeout"])
        else:
            reason = exit_for(t, mark, now, **flags)
        if reason is not None:
            out.add((t.id, reason))
    return out


prices = st.integers(1, 400).map(D)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 12), prices, prices, st.one_of(st.none(), st.integers(0, 100))),
        st.tuples(st.just("discard"), st.integers(1, 12)),
    ),
    max_size=40,
)
flag_sets = st.fixed_dictionaries({"take_profit": st.booleans(), "stop_loss": st.booleans(), "timeout": st.booleans()})


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.sampled_from(Side),
    flag_sets,
    ops,
    st.lists(st.tuples(st.one_of(st.none(), prices), st.integers(0, 100)), min_size=1, max_size=4),
)
def test_pop_triggered_matches_a_brute_force_scan(side, flags, operations, ticks):
    book = TriggerBook(side, **flags)
    live: dict[int, Tranche] = {}
    for op in operations:
        if op[0] == "add":
            _, tid, a, b, deadline = op
            # Levels anywhere (even TP and SL on the same side): book and scan must still agree.
            t = tr(tid, side, a, b, None if deadline is None else float(deadline))
            book.add(t)
            live[tid] = t
        else:
            book.discard(op[1])
            live.pop(op[1], None)
    for mark, now in ticks:
        expected = scan(live, mark, float(now), flags)
        got = list(book.pop_triggered(mark, float(now)))
        assert len(got) == len(set(got))  # each tranche once
        assert set(got) == expected
        for tid, _ in got:
            del live[tid]
        assert len(book) == len(live)
        assert all(tid in book for tid in live)
        deadlines = [t.deadline for t in live.values() if t.deadline is not None]
        assert book.next_deadline() == (min(deadlines) if flags["timeout"] and deadlines else None)


# --- compaction ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_behaviour_survives_thousands_of_replacements(side):
    rng = random.Random(7)
    book = TriggerBook(side, **ALL)
    live: dict[int, Tranche] = {}
    for step in range(20_000):
        tid = rng.randrange(50)
        if step % 97 == 0:
            book.discard(tid)
            live.pop(tid, None)
            continue
        t = tr(
            tid,
            side,
            D(rng.randrange(1, 1000)),
            D(rng.randrange(1, 1000)),
            rng.choice([None, float(rng.randrange(1000, 2000))]),
        )
        book.add(t)
        live[t.id] = t
    assert len(book) == len(live)
    deadlines = [t.deadline for t in live.values() if t.deadline is not None]
    assert book.next_deadline() == min(deadlines)
    for mark, now in ((D(500), 0.0), (D(300), 1500.0), (D(700), 1800.0), (D(1), 3000.0)):
        expected = scan(live, mark, now, ALL)
        got = list(book.pop_triggered(mark, now))
        assert set(got) == expected and len(got) == len(expected)
        for tid, _ in got:
            del live[tid]
        assert len(book) == len(live)
    assert len(book) == 0  # mark 1 is through every LONG SL / SHORT TP (all levels are >= 1)


def test_compaction_with_many_live_tranches_keeps_every_level():
    book = TriggerBook(Side.LONG, **ALL)
    for round_ in range(5):
        for i in range(1000):
            book.add(tr(i, Side.LONG, D(1000 + i + round_), D(100 - (i % 50)), deadline=float(10_000 + i)))
    # Only the last round counts: TP 1004 + i.
    assert len(book) == 1000
    assert book.next_deadline() == 10_000.0
    got = pop(book, "1503")
    assert got == [(i, TP) for i in range(500)]
    assert len(book) == 500
