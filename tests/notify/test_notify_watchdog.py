"""The stream watchdog: a price stream silent for longer than ``stream_down_seconds`` raises one notice."""

from __future__ import annotations

import trio
import trio.testing

from posmon.actors.messages import Notice
from posmon.metrics import Metrics
from posmon.notify.watchdog import StreamWatchdog


async def test_a_stream_silent_past_the_limit_raises_down_once_then_restored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics(strict=True)
    send, recv = trio.open_memory_channel[Notice](100)
    async with trio.open_nursery() as nursery:
        metrics.set("price_last_frame", trio.current_time(), venue="aster")
        metrics.set("price_stream_up", 0, venue="aster")
        await nursery.start(StreamWatchdog(metrics, send, ["aster"], down_after=30).run)
        with trio.move_on_after(29.9):
            assert await recv.receive() is None  # nothing while the silence is within the limit
        with trio.fail_after(1.5):
            down = await recv.receive()
        assert (down.kind, down.venue, down.needs_human) == ("stream_down", "aster", True)
        assert "disconnected" in down.text and down.data["silent_seconds"] > 30
        with trio.move_on_after(120):
            assert await recv.receive() is None  # still down: no repeat
        metrics.set("price_last_frame", trio.current_time(), venue="aster")
        with trio.fail_after(1.5):
            up = await recv.receive()
        assert (up.kind, up.venue, up.needs_human) == ("stream_restored", "aster", False)
        nursery.cancel_scope.cancel()


async def test_a_stream_that_never_sent_a_frame_counts_from_start(autojump_clock: trio.testing.MockClock) -> None:
    send, recv = trio.open_memory_channel[Notice](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(StreamWatchdog(Metrics(strict=True), send, ["lighter"], down_after=10).run)
        with trio.fail_after(11.5):
            notice = await recv.receive()
        assert notice.kind == "stream_down" and notice.venue == "lighter"
        nursery.cancel_scope.cancel()
