"""Raises ``stream_down`` when a venue's price stream has been silent too long, and ``stream_restored`` after.

It reads the price router's own gauges from ``Metrics`` (``price_last_frame``, stamped with trio's clock, and
``price_stream_up``) instead of hooking the router: the router stays unaware of notifications, and a router
stuck inside a reconnect loop is seen exactly as Prometheus sees it. REST polling keeps exits working while
the stream is down, but an operator should know the daemon is on its fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from posmon.actors.messages import Notice
from posmon.metrics import Metrics
from posmon.notify.kinds import NoticeKind

log = logging.getLogger(__name__)


class StreamWatchdog:
    def __init__(
        self,
        metrics: Metrics,
        notices: trio.MemorySendChannel[Notice],
        venues: Sequence[str],
        *,
        down_after: float,
        check_every: float = 1.0,
    ) -> None:
        self.metrics = metrics
        self.notices = notices
        self.venues = list(venues)
        self.down_after = down_after
        self.check_every = min(check_every, down_after / 4)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        since = trio.current_time()  # a stream that never sent a frame is silent since we started watching
        down: set[str] = set()
        task_status.started()
        while True:
            ages = {dict(labels).get("venue", ""): age for (_, labels), age in self.metrics.last_frame_ages().items()}
            silent_for = trio.current_time() - since
            for venue in self.venues:
                silent = ages.get(venue, silent_for)
                if venue not in down and silent > self.down_after:
                    down.add(venue)
                    connected = (
                        "connected but silent" if self.metrics.get("price_stream_up", venue=venue) else "disconnected"
                    )
                    self._raise(
                        Notice(
                            NoticeKind.STREAM_DOWN,
                            venue,
                            "",
                            "",
                            f"price stream {connected} for {silent:.0f}s; exits run on REST mark "
                            "prices until it is back",
                            True,
                            {"silent_seconds": round(silent, 1)},
                        )
                    )
                elif venue in down and silent <= self.down_after:
                    down.discard(venue)
                    self._raise(Notice(NoticeKind.STREAM_RESTORED, venue, "", "", "price stream is back", False, {}))
            await trio.sleep(self.check_every)

    def _raise(self, notice: Notice) -> None:
        try:
            self.notices.send_nowait(notice)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("notice %s for %s dropped: the notifier is not taking notices", notice.kind, notice.venue)
