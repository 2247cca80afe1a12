"""Notifications from the running daemon: a real exit reaches a loopback webhook with its realized PnL."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import trio

from posmon.domain.orders import Side
from tests.harness import make_settings, running, settle
from tests.notify.test_notify_http import Receiver, serve_receiver, wait_for


async def test_a_take_profit_exit_reaches_the_webhook_with_its_pnl(tmp_path, autojump_clock):
    hook = Receiver()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, hook)
        settings = dataclasses.replace(make_settings(tmp_path), notify={"webhook_url": url + "/posmon"})
        async with running(settings) as h:
            await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # TP 45450
            h.exchange.set_marks({"BTCUSDT": D("45500")}, trade=False)
            await settle()
            await wait_for(lambda: len(hook.hits) == 1)
            assert h.metrics.get("notify_sent", channel="webhook") == 1
        nursery.cancel_scope.cancel()
    [notice] = hook.hits[0].body["notices"]
    assert (notice["kind"], notice["venue"], notice["symbol"], notice["side"]) == ("exit", "sim", "BTCUSDT", "LONG")
    assert D(notice["data"]["pnl"]) == (D("45500") - D("45000")) * D("0.1")
    assert "realized PnL 50" in hook.hits[0].body["text"]
