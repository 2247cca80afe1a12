"""Tranche rules: the worked example, the threshold, merging, reductions and exits, plus properties."""

from collections.abc import Sequence
from decimal import Decimal as D

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import (
    EntryDecision,
    ExitReason,
    Risk,
    Tranche,
    apply_entry_fill,
    apply_reduction,
    average_entry,
    exit_for,
    exit_prices,
    new_tranche,
    pnl_pct,
    position_pnl_pct,
    realized_pnl,
)

RULES = SymbolRules("BTCUSDT", tick_size=D("0.1"), step_size=D("0.001"))
RISK = Risk(tp_pct=D(1), sl_pct=D(50))
PROPS = settings(max_examples=200, deadline=None, derandomize=True)


class Book:
    """Applies decisions the way the position actor does: replace changed by id, drop removed."""

    def __init__(self, side: Side, risk: Risk = RISK, rules: SymbolRules = RULES) -> None:
        self.side, self.risk, self.rules = side, risk, rules
        self.tranches: dict[int, Tranche] = {}
        self.next_id = 1
        self.now = 0.0

    def fill(self, qty: str | D, price: str | D) -> EntryDecision:
        self.now += 1.0
        decision = apply_entry_fill(
            list(self.tranches.values()),
            qty=D(qty),
            price=D(price),
            now=self.now,
            risk=self.risk,
            rules=self.rules,
            new_id=self.next_id,
            venue="sim",
            symbol=self.rules.symbol,
            side=self.side,
        )
        self.next_id += 1
        self.apply(decision)
        return decision

    def apply(self, decision: EntryDecision) -> None:
        for t in decision.changed:
            self.tranches[t.id] = t
        for t in decision.removed:
            del self.tranches[t.id]

    def ordered(self) -> list[Tranche]:
        return sorted(self.tranches.values(), key=lambda t: t.index)

    @property
    def total(self) -> D:
        return sum((t.qty for t in self.tranches.values()), D(0))


def tranche(
    id: int, index: int, entry: str, qty: str, *, side: Side = Side.LONG, risk: Risk = RISK, now: float = 0.0
) -> Tranche:
    return new_tranche(
        id=id,
        venue="sim",
        symbol="BTCUSDT",
        side=side,
        index=index,
        qty=D(qty),
        price=D(entry),
        now=now,
        risk=risk,
        rules=RULES,
    )


def levels(ts: Sequence[Tranche]) -> list[tuple[int, D, D, D, D]]:
    return [(t.index, t.entry, t.qty, t.tp, t.sl) for t in ts]


# --- the worked example ----------------------------------------------------------------------------------------


def test_worked_example_long():
    book = Book(Side.LONG)
    d = book.fill("0.1", "45000")
    assert d.removed == ()
    assert levels(book.ordered()) == [(0, D("45000"), D("0.1"), D("45450"), D("22500"))]

    d = book.fill("0.05", "44550")
    assert d.removed == ()
    assert levels(book.ordered()) == [(0, D("44850"), D("0.15"), D("45298.5"), D("22425"))]
    assert book.ordered()[0].id == 1  # joined: still tranche 0

    pnl = position_pnl_pct(book.ordered(), D("42300"))
    assert D("-5.70") < pnl < D("-5.68")
    d = book.fill("0.08", "42300")
    assert [t.index for t in d.changed] == [1]
    assert levels(book.ordered()) == [
        (0, D("44850"), D("0.15"), D("45298.5"), D("22425")),
        (1, D("42300"), D("0.08"), D("42723"), D("21150")),
    ]


def test_worked_example_prices_are_on_the_tick():
    book = Book(Side.LONG)
    for qty, price in (("0.1", "45000"), ("0.05", "44550"), ("0.08", "42300")):
        book.fill(qty, price)
    assert [(str(t.tp), str(t.sl)) for t in book.ordered()] == [("45298.5", "22425.0"), ("42723.0", "21150.0")]


def test_worked_example_short_mirrors_long():
    book = Book(Side.SHORT)
    book.fill("0.1", "45000")
    assert levels(book.ordered()) == [(0, D("45000"), D("0.1"), D("44550"), D("67500"))]

    book.fill("0.05", "45450")  # SHORT PnL at 45,450 is -1 %: joins
    assert levels(book.ordered()) == [(0, D("45150"), D("0.15"), D("44698.5"), D("67725"))]

    pnl = position_pnl_pct(book.ordered(), D("47700"))
    assert D("-5.65") < pnl < D("-5.64")
    book.fill("0.08", "47700")
    assert levels(book.ordered()) == [
        (0, D("45150"), D("0.15"), D("44698.5"), D("67725")),
        (1, D("47700"), D("0.08"), D("47223"), D("71550")),
    ]


def test_short_tp_is_below_and_sl_above_the_entry():
    t = tranche(1, 0, "45000", "0.1", side=Side.SHORT)
    assert t.sl > t.entry > t.tp


# --- threshold ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "at_threshold"), [(Side.LONG, "38000"), (Side.SHORT, "42000")])
def test_fill_at_exactly_minus_increment_opens_a_new_tranche(side, at_threshold):
    book = Book(side)
    book.fill("1", "40000")
    assert position_pnl_pct(book.ordered(), D(at_threshold)) == D(-5)
    d = book.fill("0.5", at_threshold)
    assert [(t.index, t.entry, t.qty) for t in d.changed] == [(1, D(at_threshold), D("0.5"))]
    assert len(book.tranches) == 2


@pytest.mark.parametrize(
    ("side", "just_inside"),
    [(Side.LONG, "38000.1"), (Side.SHORT, "41999.9")],
)
def test_fill_just_above_minus_increment_joins_the_newest_tranche(side, just_inside):
    book = Book(side)
    book.fill("1", "40000")
    assert position_pnl_pct(book.ordered(), D(just_inside)) > D(-5)
    d = book.fill("1", just_inside)
    assert [(t.id, t.index, t.qty) for t in d.changed] == [(1, 0, D("2"))]
    assert book.ordered()[0].entry == (D(40000) + D(just_inside)) / 2


def test_threshold_uses_the_configured_increment():
    book = Book(Side.LONG, risk=Risk(tp_pct=D(1), sl_pct=D(50), tranche_pnl_increment_pct=D(2)))
    book.fill("1", "40000")
    book.fill("1", "39200.1")  # -1.99975 %: joins
    assert len(book.tranches) == 1
    book.fill("1", "38815.6")  # position avg 39600.05 -> -1.98 %: joins
    assert len(book.tranches) == 1
    book.fill("1", "38000")  # position avg ~39253.9 -> -3.19 %: new tranche
    assert len(book.tranches) == 2


def test_threshold_uses_the_whole_positions_pnl_not_the_newest_tranche():
    # Tranche 1 is at the fill price, but the position as a whole is 10 % under water: a new tranche.
    t0, t1 = tranche(1, 0, "100", "10"), tranche(2, 1, "90", "0.001")
    d = apply_entry_fill(
        [t0, t1],
        qty=D("1"),
        price=D("90"),
        now=5,
        risk=RISK,
        rules=RULES,
        new_id=3,
        venue="sim",
        symbol="BTCUSDT",
        side=Side.LONG,
    )
    assert [(t.id, t.index) for t in d.changed] == [(3, 2)]


def test_joining_reprices_tp_and_sl_from_the_new_average_rounded_toward_entry():
    book = Book(Side.LONG)
    book.fill("0.003", "100.3")
    book.fill("0.007", "100.4")  # avg 100.37 -> TP 101.3737 -> 101.3, SL 50.185 -> 50.2
    (t,) = book.ordered()
    assert (t.entry, t.qty, t.tp, t.sl) == (D("100.37"), D("0.010"), D("101.3"), D("50.2"))


# --- pnl and averages -------------------------------------------------------------------------------------------


def test_pnl_pct_long_and_short():
    assert pnl_pct(Side.LONG, D("100"), D("110")) == D(10)
    assert pnl_pct(Side.LONG, D("100"), D("95")) == D(-5)
    assert pnl_pct(Side.SHORT, D("100"), D("110")) == D(-10)
    assert pnl_pct(Side.SHORT, D("100"), D("95")) == D(5)
    assert tranche(1, 0, "45000", "0.1").pnl_pct(D("45450")) == D(1)
    assert tranche(1, 0, "45000", "0.1", side=Side.SHORT).pnl_pct(D("45450")) == D(-1)


def test_realized_pnl_long_and_short():
    assert realized_pnl(Side.LONG, D("44850"), D("45298.5"), D("0.15")) == D("67.275")
    assert realized_pnl(Side.SHORT, D("44850"), D("45298.5"), D("0.15")) == D("-67.275")


def test_average_entry_is_quantity_weighted():
    assert average_entry([(D("0.1"), D("45000")), (D("0.05"), D("44550"))]) == D("44850")
    assert average_entry([(D("3"), D("10"))]) == D("10")
    assert average_entry([(D("1"), D("10")), (D("3"), D("20"))]) == D("17.5")


def test_exit_prices_round_toward_the_entry_for_both_sides():
    assert exit_prices(Side.LONG, D("100.37"), RISK, RULES) == (D("101.3"), D("50.2"))
    # SHORT: TP 99.3663 rounds up to 99.4, SL 150.555 rounds down to 150.5.
    assert exit_prices(Side.SHORT, D("100.37"), RISK, RULES) == (D("99.4"), D("150.5"))


def test_long_tp_is_never_below_its_entry_when_the_tp_distance_is_under_a_tick():
    rules = SymbolRules("LOWUSDT", tick_size=D("0.0001"), step_size=D("1"))
    tp, _ = exit_prices(Side.LONG, D("0.00205"), Risk(tp_pct=D(1), sl_pct=D(50)), rules)
    assert tp >= D("0.00205")


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_exits_under_a_tick_away_are_one_tick_away_on_their_own_side(side):
    rules = SymbolRules("LOWUSDT", tick_size=D("0.0001"), step_size=D("1"))
    entry = D("0.00205")
    tp, sl = exit_prices(side, entry, Risk(tp_pct=D("0.5"), sl_pct=D("0.5")), rules)
    if side is Side.LONG:
        assert (tp, sl) == (D("0.0021"), D("0.0020"))
    else:
        assert (tp, sl) == (D("0.0020"), D("0.0021"))


# --- merging beyond max_tranches ----------------------------------------------------------------------------------


def test_fresh_tranche_merges_into_the_least_losing_older_one():
    # LONG falling: at the fill price the newest existing tranche and the fresh one lose least.
    risk = Risk(tp_pct=D(1), sl_pct=D(50), max_tranches=3)
    book = Book(Side.LONG, risk=risk)
    for qty, price in (("1", "100"), ("1", "94"), ("1", "88")):
        book.fill(qty, price)
    assert [t.index for t in book.ordered()] == [0, 1, 2]
    before = book.total
    d = book.fill("0.5", "82")
    assert d.removed == ()  # the fresh tranche never had orders: nothing to cancel
    (merged,) = d.changed
    assert (merged.id, merged.index, merged.qty) == (3, 2, D("1.5"))
    assert merged.entry == average_entry([(D("1"), D("88")), (D("0.5"), D("82"))]) == D("86")
    assert (merged.tp, merged.sl) == exit_prices(Side.LONG, D("86"), risk, RULES) == (D("86.8"), D("43"))
    assert len(book.tranches) == 3
    assert book.total == before + D("0.5")


def test_fresh_tranche_merges_into_an_older_tranche_in_profit():
    # Tranche 1 is in profit at the fill price, the fresh one is at 0 %, tranche 0 loses: 1 and fresh merge.
    risk = Risk(tp_pct=D(1), sl_pct=D(50), max_tranches=2)
    t0, t1 = tranche(1, 0, "100", "100", risk=risk), tranche(2, 1, "90", "0.1", risk=risk)
    d = apply_entry_fill(
        [t0, t1],
        qty=D("1"),
        price=D("91"),
        now=5,
        risk=risk,
        rules=RULES,
        new_id=3,
        venue="sim",
        symbol="BTCUSDT",
        side=Side.LONG,
    )
    assert d.removed == ()
    (merged,) = d.changed
    assert (merged.id, merged.index, merged.qty) == (2, 1, D("1.1"))
    assert merged.entry == average_entry([(D("0.1"), D("90")), (D("1"), D("91"))])


def test_merge_keeps_the_earliest_hold_deadline():
    risk = Risk(tp_pct=D(1), sl_pct=D(50), max_tranches=2, max_hold_seconds=3600)
    book = Book(Side.LONG, risk=risk)
    book.fill("1", "100")  # now=1
    book.fill("1", "94")  # now=2: tranche 1, deadline 3602
    d = book.fill("1", "88")  # now=3: fresh (deadline 3603) merges into tranche 1
    (merged,) = d.changed
    assert merged.index == 1
    assert merged.deadline == 3602.0


def test_merging_two_older_tranches_keeps_the_fresh_one_and_reports_the_removed():
    risk = Risk(tp_pct=D(1), sl_pct=D(50), max_tranches=3)
    book = Book(Side.LONG, risk=risk)
    for qty, price in (("100", "100"), ("0.1", "80"), ("0.1", "82")):
        book.fill(qty, price)
    assert [(t.index, t.entry) for t in book.ordered()] == [(0, D(100)), (1, D(80)), (2, D(82))]
    before = book.total
    # At 90 tranches 1 (+12.5 %) and 2 (+9.8 %) lose least: they merge; the fresh tranche must survive.
    d = book.fill("1", "90")
    assert [t.index for t in d.removed] == [2]
    assert book.total == before + D("1")
    assert sorted((t.index, t.entry, t.qty) for t in book.ordered()) == [
        (0, D(100), D(100)),
        (1, D(81), D("0.2")),
        (3, D(90), D(1)),
    ]


# --- reductions -------------------------------------------------------------------------------------------------


def three_tranches() -> list[Tranche]:
    return [tranche(1, 0, "100", "0.3"), tranche(2, 1, "94", "0.2"), tranche(3, 2, "88", "0.1")]


def test_reduction_takes_from_the_newest_tranche_first():
    d = apply_reduction(three_tranches(), D("0.05"), RULES)
    assert d.removed == ()
    assert [(t.id, t.qty) for t in d.changed] == [(3, D("0.05"))]


def test_reduction_removes_emptied_tranches_and_shrinks_the_next():
    d = apply_reduction(three_tranches(), D("0.25"), RULES)
    assert [t.id for t in d.removed] == [3]
    assert [(t.id, t.qty) for t in d.changed] == [(2, D("0.05"))]


def test_reduction_of_everything_removes_every_tranche():
    d = apply_reduction(three_tranches(), D("0.6"), RULES)
    assert d.changed == ()
    assert sorted(t.id for t in d.removed) == [1, 2, 3]
    d = apply_reduction(three_tranches(), D("5"), RULES)
    assert sorted(t.id for t in d.removed) == [1, 2, 3]


def test_reduction_of_zero_changes_nothing():
    assert apply_reduction(three_tranches(), D("0"), RULES) == EntryDecision(changed=())


def test_reduction_that_empties_a_tranche_exactly_touches_nothing_else():
    d = apply_reduction(three_tranches(), D("0.1"), RULES)
    assert (d.changed, [t.id for t in d.removed]) == ((), [3])


def test_reduction_keeps_entry_and_exit_levels():
    (t,) = apply_reduction(three_tranches(), D("0.25"), RULES).changed
    orig = three_tranches()[1]
    assert (t.id, t.entry, t.tp, t.sl, t.qty) == (orig.id, orig.entry, orig.tp, orig.sl, D("0.05"))


# --- exits ------------------------------------------------------------------------------------------------------

ALL = {"take_profit": True, "stop_loss": True, "timeout": True}


def held(side: Side) -> Tranche:
    # LONG: TP 45450, SL 22500; SHORT: TP 44550, SL 67500; deadline 1000 + 60.
    return tranche(
        1, 0, "45000", "0.1", side=side, risk=Risk(tp_pct=D(1), sl_pct=D(50), max_hold_seconds=60), now=1000.0
    )


@pytest.mark.parametrize(
    ("side", "mark", "now", "expected"),
    [
        (Side.LONG, "45449.9", 1000, None),
        (Side.LONG, "45450", 1000, ExitReason.TP),
        (Side.LONG, "46000", 1000, ExitReason.TP),
        (Side.LONG, "22500.1", 1000, None),
        (Side.LONG, "22500", 1000, ExitReason.SL),
        (Side.LONG, "20000", 1000, ExitReason.SL),
        (Side.LONG, "45000", 1059.9, None),
        (Side.LONG, "45000", 1060, ExitReason.TIMEOUT),
        (Side.LONG, "45000", 5000, ExitReason.TIMEOUT),
        (Side.LONG, "45450", 1060, ExitReason.TP),  # a price exit wins over the clock
        (Side.SHORT, "44550.1", 1000, None),
        (Side.SHORT, "44550", 1000, ExitReason.TP),
        (Side.SHORT, "40000", 1000, ExitReason.TP),
        (Side.SHORT, "67499.9", 1000, None),
        (Side.SHORT, "67500", 1000, ExitReason.SL),
        (Side.SHORT, "70000", 1000, ExitReason.SL),
        (Side.SHORT, "45000", 1060, ExitReason.TIMEOUT),
        (Side.SHORT, "45450", 1000, None),  # a LONG's TP level means nothing to a SHORT
    ],
)
def test_exit_for_triggers_at_or_through_each_level(side, mark, now, expected):
    assert exit_for(held(side), D(mark), now, **ALL) is expected


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_exit_for_respects_the_flags(side):
    t = held(side)
    through_tp, through_sl = (D("50000"), D("1000")) if side is Side.LONG else (D("1000"), D("99000"))
    assert exit_for(t, through_tp, 1000, take_profit=False, stop_loss=True, timeout=True) is None
    assert exit_for(t, through_sl, 1000, take_profit=True, stop_loss=False, timeout=True) is None
    assert exit_for(t, D("45000"), 9999, take_profit=True, stop_loss=True, timeout=False) is None
    assert exit_for(t, through_tp, 9999, take_profit=False, stop_loss=False, timeout=True) is ExitReason.TIMEOUT


def test_exit_for_without_a_deadline_never_times_out():
    t = tranche(1, 0, "45000", "0.1")
    assert t.deadline is None
    assert exit_for(t, D("45000"), 10**12, **ALL) is None


# --- properties -------------------------------------------------------------------------------------------------

# Fills: quantity on the 0.001 step (0.001 .. 5), price on the 0.1 tick (100.0 .. 100,000.0).
fills = st.lists(
    st.tuples(
        st.integers(1, 5000).map(lambda n: D(n).scaleb(-3)), st.integers(1000, 1_000_000).map(lambda n: D(n).scaleb(-1))
    ),
    min_size=1,
    max_size=25,
)
risks = st.builds(
    Risk,
    tp_pct=st.integers(1, 200).map(lambda n: D(n) / 10),  # 0.1 .. 20 %
    sl_pct=st.integers(1, 99).map(D),
    tranche_pnl_increment_pct=st.integers(1, 100).map(lambda n: D(n) / 10),
    max_tranches=st.integers(1, 6),
)
sides = st.sampled_from(Side)


def run_fills(side: Side, risk: Risk, seq: list[tuple[D, D]]) -> Book:
    book = Book(side, risk=risk)
    for qty, price in seq:
        book.fill(qty, price)
    return book


@PROPS
@given(sides, risks.map(lambda r: Risk(r.tp_pct, r.sl_pct, r.tranche_pnl_increment_pct, max_tranches=10**6)), fills)
def test_without_merges_tranche_quantities_add_up_to_the_fills(side, risk, seq):
    book = Book(side, risk=risk)
    total = D(0)
    for qty, price in seq:
        book.fill(qty, price)
        total += qty
        assert book.total == total


@PROPS
@given(sides, risks, fills)
@example(
    Side.LONG,
    Risk(tp_pct=D(1), sl_pct=D(50), max_tranches=3),
    [(D("100"), D("100")), (D("0.1"), D("80")), (D("0.1"), D("82")), (D("1"), D("90"))],
)
def test_tranche_quantities_always_add_up_to_the_fills(side, risk, seq):
    book = Book(side, risk=risk)
    total = D(0)
    for qty, price in seq:
        book.fill(qty, price)
        total += qty
        assert book.total == total


@PROPS
@given(sides, risks, fills)
def test_tranche_count_never_exceeds_max_tranches(side, risk, seq):
    book = Book(side, risk=risk)
    for qty, price in seq:
        book.fill(qty, price)
        assert 1 <= len(book.tranches) <= risk.max_tranches
        assert len({t.index for t in book.tranches.values()}) == len(book.tranches)


@PROPS
@given(sides, risks, fills)
def test_every_tp_and_sl_is_on_the_tick_and_on_the_right_side_of_its_entry(side, risk, seq):
    book = Book(side, risk=risk)
    for qty, price in seq:
        book.fill(qty, price)
        for t in book.tranches.values():
            assert t.tp % RULES.tick_size == 0 and t.sl % RULES.tick_size == 0
            if side is Side.LONG:
                assert 0 < t.sl < t.entry < t.tp
            else:
                assert t.tp < t.entry < t.sl
            # Rounded toward the entry: never further away than configured.
            assert (t.tp, t.sl) == exit_prices(side, t.entry, risk, RULES)
            assert abs(t.tp - t.entry) <= t.entry * risk.tp_pct / 100
            assert abs(t.sl - t.entry) <= t.entry * risk.sl_pct / 100


@PROPS
@given(sides, risks, fills, st.integers(0, 200_000).map(lambda n: D(n).scaleb(-3)))
def test_an_exit_never_increases_the_position(side, risk, seq, qty):
    book = run_fills(side, risk, seq)
    before = book.total
    ids = set(book.tranches)
    d = apply_reduction(list(book.tranches.values()), qty, RULES)
    assert {t.id for t in d.changed} <= ids and {t.id for t in d.removed} <= ids
    for t in d.changed:
        assert t.qty < book.tranches[t.id].qty
    book.apply(d)
    assert book.total <= before
    assert book.total == max(D(0), before - qty)  # qty on the step: reduced by exactly qty
    assert all(t.qty > 0 for t in book.tranches.values())
