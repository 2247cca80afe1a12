"""A frame that triggers several exits decides them all in one transaction, and each cancel leaves only after
its tranche's close is written (decide, persist, act)."""

from decimal import Decimal as D

from posmon.domain.orders import Side
from posmon.sim.venue import SimVenue
from tests.harness import make_settings, new_exchange, running, settle


class CheckingVenue(SimVenue):
    """Records, at each cancel call, whether the store already holds the close it acts on."""

    def __init__(self, exchange, **kw):
        super().__init__(exchange, **kw)
        self.store = None
        self.cancels: list[tuple[str, tuple[str, ...], set[str]]] = []

    async def cancel_orders(self, symbol, client_ids):
        rows = self.store.db["tranches"].rows_where("symbol = ? AND status = 'closing'", [symbol])
        closing = {r["close_reason"] for r in rows}
        self.cancels.append((symbol, tuple(client_ids), closing))
        return await super().cancel_orders(symbol, client_ids)


async def test_one_frames_exits_are_decided_in_one_transaction_before_any_cancel_leaves(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    venue = CheckingVenue(exchange)
    async with running(settings, exchange, venue=venue) as h:
        venue.store = h.store
        for symbol, first, second in (("BTCUSDT", "45000", "42300"), ("ETHUSDT", "3000", "2820")):
            await h.entry(symbol, Side.LONG, "0.1", first)
            await h.entry(symbol, Side.LONG, "0.08", second)  # -6 %: a second tranche with a lower TP

        writes: list[list[str]] = []
        apply_many = h.store.apply_many

        def recording(decisions):
            writes.append([e.kind for c in decisions for e in c.events])
            apply_many(decisions)

        h.store.apply_many = recording
        # One frame runs through all four tranches' TPs (their limits do not trade): four instant closes.
        h.exchange.set_marks({"BTCUSDT": D("45460"), "ETHUSDT": D("3031")}, trade=False)
        await settle()

        deciding = [w for w in writes if "close_started" in w]
        assert len(deciding) == 1, writes  # one commit for the frame, not one per tranche
        assert deciding[0].count("close_started") == 4
        # Every cancel reached the venue after its tranches were written as closing.
        assert {s for s, _, _ in venue.cancels} == {"BTCUSDT", "ETHUSDT"}
        assert all(reasons == {"TP"} for _, _, reasons in venue.cancels[:2])
        assert sorted(r["close_reason"] for r in h.store.closed_tranches("sim")) == ["TP"] * 4
        assert exchange.engine.position("BTCUSDT", Side.LONG) is None
        assert exchange.engine.position("ETHUSDT", Side.LONG) is None
