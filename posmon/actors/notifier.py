"""The notifier: logs every operator notice and fans it out to listeners and notification channels.

Actors hand notices over with ``send_nowait``; the notifier in turn only ever hands them on without waiting
(``send_nowait`` to listener channels, ``offer`` to sinks such as ``posmon.notify.NotifyService``, whose
channels queue, rate-limit and retry on their own tasks), so a slow or dead receiver can never stall it or a
position actor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import trio

from posmon.actors.messages import Notice
from posmon.metrics import Metrics

log = logging.getLogger("posmon.notices")


class NoticeSink(Protocol):
    def offer(self, notice: Notice) -> None: ...


class Notifier:
    def __init__(
        self,
        inbox: trio.MemoryReceiveChannel[Notice],
        listeners: list[trio.MemorySendChannel[Notice]] | None = None,
        *,
        sinks: Sequence[NoticeSink] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.inbox = inbox
        self.listeners = listeners or []
        self.sinks = list(sinks)
        self.metrics = metrics

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for notice in self.inbox:
            level = logging.WARNING if notice.needs_human else logging.INFO
            log.log(
                level,
                "%s%s %s %s: %s",
                "NEEDS A HUMAN: " if notice.needs_human else "",
                notice.venue,
                notice.symbol,
                notice.side,
                notice.text,
                extra=_log_fields(notice),
            )
            if self.metrics is not None:
                self.metrics.inc("notices", kind=notice.kind)
            for sink in self.sinks:
                sink.offer(notice)
            for listener in list(self.listeners):
                try:
                    listener.send_nowait(notice)
                except trio.WouldBlock:
                    log.warning("a notice listener is full; notice dropped for it")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.listeners.remove(listener)


def _log_fields(notice: Notice) -> dict[str, object]:
    """The notice's position and tranche as log-record fields (``posmon.logs``: JSON lines carry them)."""
    fields = {
        "venue": notice.venue,
        "symbol": notice.symbol,
        "side": notice.side,
        "tranche": notice.data.get("tranche_id"),
    }
    return {k: v for k, v in fields.items() if v not in (None, "")}
