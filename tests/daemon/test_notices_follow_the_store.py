"""A notice goes out once the decision it reports is written: whoever reads the store (``status``, ``history``,
the demo's narration) when a notice arrives finds what it says. With the store's group commit a turn's writes
land a scheduling round later; a notice sent at decision time would arrive before them."""

from __future__ import annotations

from decimal import Decimal as D

import trio

from posmon.actors.messages import Notice
from posmon.domain.orders import Side
from posmon.notify.kinds import NoticeKind
from tests.harness import make_settings, running, settle


async def test_every_notice_finds_its_tranche_already_in_the_store(tmp_path, autojump_clock):
    send, notices = trio.open_memory_channel[Notice](100)
    seen: list[tuple[str, int, str | None]] = []
    async with running(make_settings(tmp_path), notices=send) as h:

        async def check() -> None:
            # Runs as soon as a notice is delivered, before the actor or the store's writer run again.
            async for n in notices:
                tid = n.data["tranche_id"]
                if n.kind in (NoticeKind.TRANCHE_OPENED, NoticeKind.EXIT) and tid is not None:
                    open_ids = {t.id for t in h.store.open_tranches("sim")}
                    closed = {r["id"]: r["close_reason"] for r in h.store.closed_tranches("sim")}
                    seen.append((n.kind, tid, "open" if tid in open_ids else closed.get(tid)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(check)
            await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
            [t] = h.store.open_tranches("sim")
            h.exchange.set_mark("BTCUSDT", t.tp + D(50))  # through the TP: posmon closes it at market
            await settle()
            nursery.cancel_scope.cancel()

    assert seen == [(NoticeKind.TRANCHE_OPENED, t.id, "open"), (NoticeKind.EXIT, t.id, "TP")]
