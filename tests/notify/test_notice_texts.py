"""Notices name a tranche by the id that ``posmon status`` lists and ``posmon close --tranche`` takes.

They used to say ``tranche 0``, ``tranche 1``: the tranche's place in its position, which no command accepts.
"""

from __future__ import annotations

import trio

from posmon.actors.messages import Notice
from posmon.domain.orders import Side
from tests.harness import drain, make_settings, running


async def test_opened_and_exit_notices_name_the_tranche_id_that_status_and_close_use(tmp_path, autojump_clock):
    send, notices = trio.open_memory_channel[Notice](100)
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=10.0, instant_tp_enabled=False)
    async with running(settings, notices=send) as h:
        for _ in range(5):  # ids and per-position indexes part ways, as on any daemon that has traded before
            h.store.allocate_tranche_id()
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")  # SL 40500
        await h.entry("BTCUSDT", Side.LONG, "0.05", "42700")  # down 5 %: a second tranche
        first, second = sorted((await h.daemon.control.status()).tranches, key=lambda t: t.index)
        assert (first.index, second.index) == (0, 1) and first.id > 1 and second.id > 1
        await h.mark("BTCUSDT", "40000")  # the first tranche's SL
        texts = [(n.kind, n.text) for n in drain(notices)]

    assert ("tranche_opened", f"tranche {first.id} 0.1 @ 45000 TP 45450.0 SL 40500.0") in texts
    assert any(kind == "tranche_opened" and text.startswith(f"tranche {second.id} 0.05 @") for kind, text in texts)
    assert ("exit", f"tranche {first.id} closed by SL, realized PnL -500.0000") in texts
    assert not any(text.startswith(("tranche 0 ", "tranche 1 ")) for _, text in texts)
