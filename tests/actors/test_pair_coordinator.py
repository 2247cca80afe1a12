"""The pair coordinator against in-process leg directories (trio memory channels per (venue, symbol, side)) and a
real store: a leg's exit closes the other leg in the same tick, after the decision is written; a restart catches
an exit that happened while it was down; pair TP on the combined PnL; the imbalance alarm; the entry rule."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal as D

import pytest
import trio
import trio.testing

from posmon.actors.messages import CloseTranches, EntryOutcome, Notice, OpenEntry
from posmon.actors.pairs import (
    ClosePair,
    DirectoriesByVenue,
    LegExited,
    LegFunding,
    LegMark,
    LinkPair,
    OpenPair,
    PairAnswer,
    PairCoordinator,
    ProtectTranches,
    leg_exit_from_notice,
)
from posmon.actors.supervisor import RestartPolicy, supervise
from posmon.domain.exitplan import NO_PLAN
from posmon.domain.orders import OrderRequest, OrderType, Side
from posmon.domain.pairs import Leg, OnLegExit, Pair, PairRules, PairStatus, new_pair
from posmon.domain.tranche import Risk, Tranche
from posmon.metrics import Metrics
from posmon.store.store import Changes, PendingEntry, Store

NOW = 1_700_000_000.0
ASTER = ("aster", "BTCUSDT", Side.LONG)
LIGHTER = ("lighter", "BTC", Side.SHORT)


class FakeLegs:
    """Position actors' inboxes, one memory channel per key; ``taken`` reads what each was sent."""

    def __init__(self, store: Store | None = None) -> None:
        self.channels: dict[tuple[str, str, Side], tuple[trio.MemorySendChannel, trio.MemoryReceiveChannel]] = {}
        self.store = store
        self.pair_at_send: list[Pair | None] = []  # the stored pair when an entry was sent (decided first?)
        self.unreachable: set[str] = set()

    def inbox(self, venue: str, symbol: str, side: Side) -> trio.MemorySendChannel:
        if venue in self.unreachable:
            raise KeyError(venue)
        if self.store is not None:
            self.pair_at_send.append(self.store.pair(1))
        key = (venue, symbol, side)
        if key not in self.channels:
            self.channels[key] = trio.open_memory_channel(math.inf)
        return self.channels[key][0]

    def taken(self, key: tuple[str, str, Side]) -> list:
        if key not in self.channels:
            return []
        out = []
        while True:
            try:
                out.append(self.channels[key][1].receive_nowait())
            except trio.WouldBlock:
                return out


def tranche(tid: int, key: tuple[str, str, Side], qty: str = "0.150") -> Tranche:
    venue, symbol, side = key
    return Tranche(tid, venue, symbol, side, 0, D("100"), D(qty), D("110"), D("90"), NOW, None, 0)


def open_pair(rules: PairRules | None = None, pair_id: int = 1, a=(11,), b=(12,)) -> Pair:
    p = new_pair(
        pair_id,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=a),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=b),
        rules,
    )
    legs = tuple(replace(leg, filled_qty=leg.target_qty, entry=D(100), entry_done=True) for leg in p.legs)
    return replace(p, legs=legs, status=PairStatus.OPEN)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "posmon.sqlite", clock=lambda: NOW)
    yield s
    s.close()


def stored(store: Store, pair: Pair) -> None:
    store.apply(
        Changes(
            tranches=[tranche(t, ASTER) for t in pair.legs[0].tranche_ids]
            + [tranche(t, LIGHTER) for t in pair.legs[1].tranche_ids],
            pairs=[pair],
        )
    )


async def started(nursery, store, legs):
    notices_send, notices = trio.open_memory_channel[Notice](math.inf)
    coordinator, inbox = PairCoordinator.create(legs, store, notices_send, trio.current_time)
    await nursery.start(coordinator.run)
    return coordinator, inbox, notices


def drained(recv) -> list:
    out = []
    while True:
        try:
            out.append(recv.receive_nowait())
        except trio.WouldBlock:
            return out


@pytest.mark.parametrize(
    ("exited", "other", "tid", "other_tid"),
    [(ASTER, LIGHTER, 11, 12), (LIGHTER, ASTER, 12, 11)],
    ids=["aster-sl-closes-lighter", "lighter-sl-closes-aster"],
)
async def test_a_leg_stopped_out_closes_the_other_leg_in_the_same_tick(
    store, nursery, autojump_clock, exited, other, tid, other_tid
):
    stored(store, open_pair())
    legs = FakeLegs(store)
    coordinator, inbox, notices = await started(nursery, store, legs)
    at = trio.current_time()
    inbox.send_nowait(LegExited(*exited, tid, "SL"))
    await trio.testing.wait_all_tasks_blocked()
    assert trio.current_time() == at  # no time passed: sent in the turn that heard the exit
    assert legs.taken(other) == [CloseTranches((other_tid,), "PAIR")]
    assert legs.taken(exited) == []
    (pair,) = legs.pair_at_send  # decided and written before the close was sent
    assert pair.status is PairStatus.CLOSING and pair.close_reason == "LEG_SL"
    (notice,) = drained(notices)
    assert notice.kind == "pair_leg_exit" and f"tranche {tid} exited by SL" in notice.text
    # The other leg's close fills: the pair is closed, nothing more is sent.
    inbox.send_nowait(LegExited(*other, other_tid, "PAIR"))
    await trio.testing.wait_all_tasks_blocked()
    assert store.open_pairs() == [] and store.pair(1).status is PairStatus.CLOSED
    assert legs.taken(other) == [] and legs.taken(exited) == []
    assert [n.kind for n in drained(notices)] == ["pair_leg_exit", "pair_closed"]
    assert coordinator.views() == []


async def test_a_liquidated_leg_closes_the_other_and_asks_for_a_human(store, nursery, autojump_clock):
    stored(store, open_pair())
    legs = FakeLegs()
    _, inbox, notices = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*LIGHTER, 12, "LIQUIDATION"))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
    assert store.open_pairs()[0].close_reason == "LEG_LIQUIDATION"
    (notice,) = drained(notices)
    assert notice.needs_human and "LIQUIDATION" in notice.text


async def test_protect_option_sends_a_tight_stop_instead_of_a_close(store, nursery, autojump_clock):
    stored(store, open_pair(PairRules(on_leg_exit=OnLegExit.PROTECT, protect_stop_pct=D("0.3"))))
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*ASTER, 11, "TP"))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(LIGHTER) == [ProtectTranches((12,), D("0.3"), "PAIR")]


async def test_an_exit_from_another_key_or_an_unpaired_tranche_is_ignored(store, nursery, autojump_clock):
    stored(store, open_pair())
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    inbox.send_nowait(LegExited("aster", "ETHUSDT", Side.LONG, 11, "SL"))  # not the leg's key
    inbox.send_nowait(LegExited(*ASTER, 99, "SL"))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(LIGHTER) == [] and store.open_pairs()[0].status is PairStatus.OPEN


async def test_a_leg_exit_while_down_is_caught_at_start_up_and_sent_once(store, autojump_clock):
    stored(store, open_pair())
    # While the coordinator was down, Aster's leg hit its SL (its position actor closed the tranche).
    store.apply(Changes(tranches=[replace(tranche(11, ASTER), exit_qty=D("0.150"))], closed=[(11, "SL", NOW)]))
    legs = FakeLegs()
    async with trio.open_nursery() as nursery:
        _, _, notices = await started(nursery, store, legs)
        assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]
        assert "while posmon was down" in drained(notices)[0].text
        assert store.open_pairs()[0].status is PairStatus.CLOSING
        nursery.cancel_scope.cancel()
    # Restarted again: Lighter's tranche is closing now (its actor took the close): nothing is sent twice.
    store.db.execute("UPDATE tranches SET status = 'closing', close_reason = 'PAIR' WHERE id = 12")
    async with trio.open_nursery() as nursery:
        await started(nursery, store, legs)
        assert legs.taken(LIGHTER) == []
        nursery.cancel_scope.cancel()
    # A close that never reached Lighter's actor (its tranche still plainly open) is sent again.
    store.db.execute("UPDATE tranches SET status = 'open', close_reason = NULL WHERE id = 12")
    async with trio.open_nursery() as nursery:
        await started(nursery, store, legs)
        assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]
        nursery.cancel_scope.cancel()
    # Its close filled while down: the pair is closed at start-up.
    store.apply(Changes(closed=[(12, "PAIR", NOW)]))
    async with trio.open_nursery() as nursery:
        coordinator, _, _ = await started(nursery, store, legs)
        assert store.pair(1).status is PairStatus.CLOSED and coordinator.views() == []
        assert legs.taken(LIGHTER) == [] and legs.taken(ASTER) == []
        nursery.cancel_scope.cancel()


async def test_pair_tp_on_the_combined_pnl_closes_both_legs(store, nursery, autojump_clock):
    stored(store, open_pair(PairRules(tp_quote=D("0.5"))))
    legs = FakeLegs()
    _, inbox, notices = await started(nursery, store, legs)
    inbox.send_nowait(LegMark("aster", "BTCUSDT", D("106")))  # long +0.9 alone: no verdict with one mark
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(ASTER) == []
    inbox.send_nowait(LegMark("lighter", "BTC", D("102")))  # short -0.3: combined +0.6
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
    assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]
    assert store.open_pairs()[0].close_reason == "PAIR_TP"
    (notice,) = drained(notices)
    assert notice.kind == "pair_exit" and "combined PnL 0.6000" in notice.text
    # More marks close nothing twice.
    inbox.send_nowait(LegMark("lighter", "BTC", D("101")))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(ASTER) == [] and legs.taken(LIGHTER) == []


async def test_views_show_legs_pnl_funding_and_a_stale_leg(store, nursery, autojump_clock):
    stored(store, open_pair())
    coordinator, inbox, _ = await started(nursery, store, FakeLegs())
    inbox.send_nowait(LegMark("lighter", "BTC", D("99")))
    inbox.send_nowait(LegFunding("lighter", "BTC", Side.SHORT, D("-0.02")))
    await trio.sleep(1)
    inbox.send_nowait(LegMark("aster", "BTCUSDT", D("99")))
    await trio.testing.wait_all_tasks_blocked()
    (view,) = coordinator.views()
    assert [leg.pnl for leg in view.legs] == [D("-0.150"), D("0.15000") - D("0.02")]
    assert view.pnl == D("-0.02000") and view.legs[1].funding == D("-0.02")
    assert store.open_pairs()[0].legs[1].funding == D("-0.02")  # persisted
    assert not view.legs[0].stale and not view.legs[1].stale
    await trio.sleep(30)  # Lighter's stream went quiet: its leg is stale, Aster's not far behind
    inbox.send_nowait(LegMark("aster", "BTCUSDT", D("99")))
    await trio.testing.wait_all_tasks_blocked()
    (view,) = coordinator.views()
    assert view.legs[1].stale and not view.legs[0].stale


async def test_an_imbalance_past_the_limit_raises_one_notice(store, nursery, autojump_clock):
    stored(store, open_pair(PairRules(max_leg_imbalance_pct=D(5)), a=(11, 13)))
    _, inbox, notices = await started(nursery, store, FakeLegs())
    inbox.send_nowait(LegExited(*ASTER, 13, "TP", D("0.015")))  # a part of the Aster leg: legs differ by 10 %
    await trio.testing.wait_all_tasks_blocked()
    kinds = [n.kind for n in drained(notices)]
    assert kinds == ["pair_leg_exit", "pair_imbalance"]
    assert store.open_pairs()[0].legs[0].filled_qty == D("0.135")
    inbox.send_nowait(LegFunding("aster", "BTCUSDT", Side.LONG, D("0.01")))
    inbox.send_nowait(LegMark("aster", "BTCUSDT", D("100")))
    await trio.testing.wait_all_tasks_blocked()
    assert drained(notices) == []  # once per breach


async def test_auto_rebalance_trims_the_larger_leg(store, nursery, autojump_clock):
    from posmon.actors.pairs import TrimTranche

    stored(store, open_pair(PairRules(max_leg_imbalance_pct=D(5), auto_rebalance=True), a=(11, 13)))
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*ASTER, 13, "TP", D("0.015")))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(LIGHTER) == [TrimTranche(12, D("0.01500"), "PAIR")]


def entries_for(pair: Pair) -> tuple[tuple[OpenEntry, OpenEntry], tuple[PendingEntry, PendingEntry]]:
    risk = Risk(tp_pct=D(1), sl_pct=D(2), plan=NO_PLAN)
    out, pending = [], []
    for leg in pair.legs:
        (tid,) = leg.tranche_ids
        req = OrderRequest(
            f"pm-{tid}-E1", leg.symbol, leg.side.opening_order_side, leg.side.value, OrderType.MARKET, leg.target_qty
        )
        out.append(OpenEntry(req, tid, risk))
        pending.append(PendingEntry(req.client_id, tid, leg.venue, leg.symbol, leg.side, leg.target_qty, risk))
    return (out[0], out[1]), (pending[0], pending[1])


async def test_open_persists_pair_and_entries_first_then_unwinds_a_lone_fill(store, nursery, autojump_clock):
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    legs = FakeLegs(store)
    _, inbox, notices = await started(nursery, store, legs)
    reply_send, reply = trio.open_memory_channel[PairAnswer](1)
    entries, pending = entries_for(pair)
    inbox.send_nowait(OpenPair(pair, entries, pending, reply_send))
    await trio.testing.wait_all_tasks_blocked()
    (a_entry,), (b_entry,) = legs.taken(ASTER), legs.taken(LIGHTER)
    assert a_entry.entry.client_id == "pm-11-E1" and b_entry.entry.client_id == "pm-12-E1"
    # Both were written before either was sent.
    assert [p.status for p in legs.pair_at_send] == [PairStatus.OPENING, PairStatus.OPENING]
    assert [e.client_id for e in store.pending_entries("lighter", "BTC", Side.SHORT)] == ["pm-12-E1"]
    # Aster fills, Lighter rejects: Aster's leg is unwound in full, the pair ends broken.
    a_entry.reply_to.send_nowait(EntryOutcome(tranche(11, ASTER)))
    b_entry.reply_to.send_nowait(EntryOutcome(None, "rejected: insufficient margin"))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
    assert legs.taken(LIGHTER) == []
    answer = reply.receive_nowait()
    assert answer.pair.status is PairStatus.BROKEN and answer.error == "ENTRY_REJECTED"
    assert [n.kind for n in drained(notices)] == ["pair_entry_failed"]
    # The unwind fills: the pair is closed with nothing left on either venue.
    inbox.send_nowait(LegExited(*ASTER, 11, "PAIR"))
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.CLOSED


async def test_open_with_both_filled_answers_an_open_pair(store, nursery, autojump_clock):
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    reply_send, reply = trio.open_memory_channel[PairAnswer](1)
    inbox.send_nowait(OpenPair(pair, *entries_for(pair), reply_send))
    await trio.testing.wait_all_tasks_blocked()
    for key, tid in ((ASTER, 11), (LIGHTER, 12)):
        (entry,) = legs.taken(key)
        entry.reply_to.send_nowait(EntryOutcome(tranche(tid, key)))
    await trio.testing.wait_all_tasks_blocked()
    answer = reply.receive_nowait()
    assert answer.error is None and answer.pair.status is PairStatus.OPEN
    assert [leg.filled_qty for leg in store.open_pairs()[0].legs] == [D("0.150"), D("0.150")]


async def test_link_and_close_a_pair_by_hand(store, nursery, autojump_clock):
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    reply_send, reply = trio.open_memory_channel[PairAnswer](4)
    inbox.send_nowait(LinkPair(open_pair(), reply_send))
    inbox.send_nowait(LinkPair(open_pair(pair_id=2), reply_send))  # the same tranches again: refused
    inbox.send_nowait(ClosePair(1, reply_to=reply_send))
    await trio.testing.wait_all_tasks_blocked()
    linked, refused, closed = drained(reply)
    assert linked.pair.status is PairStatus.OPEN and "already belong" in refused.error
    assert closed.pair.status is PairStatus.CLOSING
    assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
    assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]


async def test_an_unreachable_leg_is_a_notice_for_a_human(store, nursery, autojump_clock):
    stored(store, open_pair())
    legs = FakeLegs()
    legs.unreachable.add("lighter")
    _, inbox, notices = await started(nursery, store, legs)
    inbox.send_nowait(LegExited(*ASTER, 11, "SL"))
    await trio.testing.wait_all_tasks_blocked()
    kinds = {n.kind: n for n in drained(notices)}
    assert kinds["pair_leg_unreachable"].needs_human


def test_directories_by_venue_and_exit_notices_feed_the_coordinator():
    class Directory:
        def inbox(self, symbol, side):
            return (symbol, side)

    assert DirectoriesByVenue({"lighter": Directory()}).inbox("lighter", "BTC", Side.SHORT) == ("BTC", Side.SHORT)
    notice = Notice(
        "exit", "aster", "BTCUSDT", "LONG", "tranche 11 closed by SL", data={"tranche_id": 11, "reason": "SL"}
    )
    assert leg_exit_from_notice(notice) == LegExited("aster", "BTCUSDT", Side.LONG, 11, "SL")
    assert leg_exit_from_notice(replace(notice, kind="tranche_opened")) is None


async def test_an_opening_pair_restarted_settles_from_the_entries_the_store_recorded(store, autojump_clock):
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    _, pending = entries_for(pair)
    store.apply(Changes(pairs=[pair], entries_added=list(pending)))
    # While the coordinator was down Aster's entry filled (its tranche) and Lighter's was rejected.
    store.apply(
        Changes(tranches=[tranche(11, ASTER)], entries_ended=[("pm-11-E1", "FILLED"), ("pm-12-E1", "REJECTED")])
    )
    legs = FakeLegs()
    async with trio.open_nursery() as nursery:
        await started(nursery, store, legs)
        assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
        assert store.pair(1).status is PairStatus.BROKEN
        nursery.cancel_scope.cancel()


async def test_an_opening_pair_whose_replies_were_lost_is_settled_by_the_poll(store, nursery, autojump_clock):
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    _, pending = entries_for(pair)
    store.apply(Changes(pairs=[pair], entries_added=list(pending)))
    legs = FakeLegs()
    coordinator, _, _ = await started(nursery, store, legs)
    assert store.pair(1).status is PairStatus.OPENING  # nothing ended yet
    # Both entries fill after the restart; their restored actors have no reply channel to the coordinator.
    store.apply(
        Changes(
            tranches=[tranche(11, ASTER), tranche(12, LIGHTER, "0.12345")],
            entries_ended=[("pm-11-E1", "FILLED"), ("pm-12-E1", "FILLED")],
        )
    )
    await trio.sleep(coordinator.entry_poll_seconds + 0.1)
    assert store.pair(1).status is PairStatus.OPEN
    from posmon.actors.pairs import TrimTranche

    assert legs.taken(ASTER) == [TrimTranche(11, D("0.027"), "PAIR")]  # trimmed to Lighter's partial fill


async def test_an_entry_filling_after_its_partner_exited_is_closed(store, nursery, autojump_clock):
    pair = new_pair(
        1,
        Leg(*ASTER, D("0.150"), D("0.001"), tranche_ids=(11,)),
        Leg(*LIGHTER, D("0.15000"), D("0.00001"), tranche_ids=(12,)),
    )
    legs = FakeLegs()
    _, inbox, _ = await started(nursery, store, legs)
    inbox.send_nowait(OpenPair(pair, *entries_for(pair)))
    await trio.testing.wait_all_tasks_blocked()
    (a_entry,), (b_entry,) = legs.taken(ASTER), legs.taken(LIGHTER)
    a_entry.reply_to.send_nowait(EntryOutcome(tranche(11, ASTER)))
    await trio.testing.wait_all_tasks_blocked()
    inbox.send_nowait(LegExited(*ASTER, 11, "LIQUIDATION"))  # before Lighter's entry ended
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]  # a no-op there: no tranche yet
    b_entry.reply_to.send_nowait(EntryOutcome(tranche(12, LIGHTER)))
    await trio.testing.wait_all_tasks_blocked()
    assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]  # now it holds one: closed
    assert store.pair(1).legs[1].filled_qty == D("0.150")


async def test_a_router_slot_feeds_the_newest_mark_without_a_backlog(store, nursery, autojump_clock):
    from posmon.actors.pairs import LegMarkSlot
    from posmon.exchange.events import MarkPrice

    stored(store, open_pair(PairRules(tp_quote=D("0.5"), sl_quote=D(1))))
    legs = FakeLegs()
    coordinator, inbox, _ = await started(nursery, store, legs)
    aster, lighter = LegMarkSlot("aster", inbox), LegMarkSlot("lighter", inbox)
    lighter.put(MarkPrice("BTC", D("102"), NOW), trio.current_time())
    # Three frames before the coordinator runs: it sees only the newest (at 90 the pair's SL would have fired).
    for price in ("90", "95", "106"):
        aster.put(MarkPrice("BTCUSDT", D(price), NOW), trio.current_time())
    await trio.testing.wait_all_tasks_blocked()
    assert [leg.mark for leg in coordinator.views()[0].legs] == [D("106"), D("102")]
    assert legs.taken(ASTER) == [CloseTranches((11,), "PAIR")]
    assert store.open_pairs()[0].close_reason == "PAIR_TP"  # combined +0.6 >= 0.5


class _FailsOnce(FakeLegs):
    """A leg directory whose first look-up crashes the coordinator (a bug, not a missing key)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def inbox(self, venue: str, symbol: str, side: Side) -> trio.MemorySendChannel:
        if not self.failed:
            self.failed = True
            raise RuntimeError("boom")
        return super().inbox(venue, symbol, side)


async def test_a_supervised_restart_serves_the_same_inbox_and_resends_the_close_it_had_decided(
    store, nursery, autojump_clock
):
    stored(store, open_pair())
    legs = _FailsOnce()
    notices_send, _ = trio.open_memory_channel[Notice](math.inf)
    coordinator, inbox = PairCoordinator.create(legs, store, notices_send, trio.current_time)
    metrics = Metrics()
    await nursery.start(supervise, "pairs", lambda: coordinator.run, RestartPolicy(backoff=0.5), metrics)
    inbox.send_nowait(LegExited(*ASTER, 11, "SL"))  # decided and written, then the send crashes the coordinator
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.CLOSING and legs.taken(LIGHTER) == []
    await trio.sleep(1)  # the supervisor's backoff: the next incarnation restores and sends the decided close
    assert legs.taken(LIGHTER) == [CloseTranches((12,), "PAIR")]
    assert metrics.get("actor_restarts") == 1
    inbox.send_nowait(LegExited(*LIGHTER, 12, "PAIR"))  # the same inbox, served by the new incarnation
    await trio.testing.wait_all_tasks_blocked()
    assert store.pair(1).status is PairStatus.CLOSED and coordinator.views() == []


async def test_a_partial_exit_notice_lowers_the_leg_and_a_trim_of_the_pairs_own_is_not_counted_twice(
    store, nursery, autojump_clock
):
    stored(store, open_pair(PairRules(auto_rebalance=True)))
    legs = FakeLegs()
    coordinator, inbox, _ = await started(nursery, store, legs)
    notice = Notice(
        "partial_exit", *ASTER[:2], "LONG", "level 1", data={"tranche_id": 11, "reason": "TP", "qty": "0.05"}
    )
    exit_ = leg_exit_from_notice(notice)
    assert exit_ == LegExited(*ASTER, 11, "TP", D("0.05"), partial=True)
    inbox.send_nowait(exit_)
    await trio.testing.wait_all_tasks_blocked()
    [trim] = legs.taken(LIGHTER)  # the larger leg trimmed to the smaller, its tranche kept
    assert (trim.tranche_id, trim.qty, trim.reason) == (12, D("0.05"), "PAIR")
    # The trim fills on Lighter and its partial exit comes back: already counted when decided.
    inbox.send_nowait(LegExited(*LIGHTER, 12, "PAIR", D("0.05"), partial=True))
    await trio.testing.wait_all_tasks_blocked()
    [view] = coordinator.views()
    assert [leg.qty for leg in view.legs] == [D("0.1"), D("0.1")] and view.status == "open"
    assert [leg.tranche_ids for leg in view.legs] == [(11,), (12,)]


async def test_a_leg_reduced_while_the_coordinator_was_down_is_rebalanced_at_start_up(store, autojump_clock):
    stored(store, open_pair(PairRules(auto_rebalance=True)))
    # While down: a ladder level closed 0.05 of Aster's tranche (it holds 0.100 now, the pair thinks 0.150).
    store.apply(Changes(tranches=[replace(tranche(11, ASTER, "0.100"), exit_qty=D("0.05"))]))
    legs = FakeLegs()
    async with trio.open_nursery() as nursery:
        _, _, notices = await started(nursery, store, legs)
        [trim] = legs.taken(LIGHTER)
        assert (trim.tranche_id, trim.qty) == (12, D("0.05"))
        assert [leg.filled_qty for leg in store.open_pairs()[0].legs] == [D("0.100"), D("0.10000")]
        assert [n.kind for n in drained(notices)] == ["pair_imbalance"]
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:  # restarted again: nothing more to do
        await started(nursery, store, legs)
        assert legs.taken(LIGHTER) == [] and legs.taken(ASTER) == []
        nursery.cancel_scope.cancel()
