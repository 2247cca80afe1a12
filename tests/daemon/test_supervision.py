"""Supervision: a failing actor is restarted, rebuilt from the store, and its tranches stay protected."""

import logging
from decimal import Decimal as D

import pytest
import trio

from posmon.actors.position import PositionActor
from posmon.actors.supervisor import RestartBudgetExhausted
from posmon.domain.orders import Side
from tests.harness import make_settings, running, settle
from tests.scenario import assert_protected_and_no_orphans


async def test_position_actor_that_raises_is_restarted_and_keeps_protection(
    tmp_path, autojump_clock, monkeypatch, caplog
):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("BTCUSDT", Side.LONG, "0.08", "42300")
        orders_before = {o.client_id for o in h.orders()}
        first = h.daemon.directory.actor("BTCUSDT", Side.LONG)

        real = PositionActor._on_price
        crashes = []

        def on_price_bug(self):
            if not crashes:
                crashes.append(self)
                raise RuntimeError("injected bug")
            return real(self)

        monkeypatch.setattr(PositionActor, "_on_price", on_price_bug)
        with caplog.at_level(logging.ERROR, logger="posmon.actors.supervisor"):
            # The mark runs through tranche 1's TP: the actor crashes on that tick before acting on it.
            h.exchange.set_marks({"BTCUSDT": D("42800")}, trade=False)
            await settle()
            await trio.sleep(1)  # the restart backoff
            await settle()

        assert crashes == [first]
        second = h.daemon.directory.actor("BTCUSDT", Side.LONG)
        assert second is not first
        assert h.metrics.get("actor_restarts", actor="position") == 1
        assert any(
            "position:sim:BTCUSDT:LONG failed" in r.getMessage() and "injected bug" in r.getMessage()
            for r in caplog.records
        )
        # The new incarnation rebuilt the same book and acted on the tick its predecessor died on.
        assert sorted(second.tranches) == sorted(first.tranches)[:1]
        assert [t.index for t in h.store.open_tranches("sim", "BTCUSDT", Side.LONG)] == [0]
        tranche0 = {c for c in orders_before if c.startswith(f"pm-{min(first.tranches)}-")}
        assert {o.client_id for o in h.orders()} == tranche0  # tranche 0's protection untouched, nothing re-placed
        assert_protected_and_no_orphans(h)


async def test_exhausted_restart_budget_stops_the_daemon_loudly(tmp_path, autojump_clock, monkeypatch):
    def always_broken(self):
        raise RuntimeError("permanent bug")

    with pytest.raises(BaseExceptionGroup) as info:
        async with running(make_settings(tmp_path)) as h:
            await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
            monkeypatch.setattr(PositionActor, "_on_price", always_broken)
            for i in range(20):
                h.exchange.set_mark("BTCUSDT", D(45450 + i))  # through the TP: the actor is woken
                await trio.sleep(5)
    assert info.group_contains(RestartBudgetExhausted)


async def test_malformed_price_frames_are_counted_and_skipped(tmp_path, autojump_clock):
    async with running(make_settings(tmp_path)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        for frame in (
            b"not json",
            b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"abc"}',
            b'[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT"}]',
            b'{"e":"markPriceUpdate","E":1,"p":"-5"}',
        ):
            h.exchange.publish_raw_price_frame(frame)
        await settle()
        assert h.metrics.get("price_frames_dropped", venue="sim") == 4
        assert h.store.open_tranches()  # nothing acted on garbage

        h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)  # a good frame still works
        await settle()
        assert h.store.open_tranches() == []
        assert_protected_and_no_orphans(h)
