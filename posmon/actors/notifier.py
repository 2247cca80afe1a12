"""The notifier: where operator-facing notices go (logs now; chat and webhooks plug in here).

Actors hand notices over with ``send_nowait`` so a slow receiver can never
stall a position actor.
"""

from __future__ import annotations

import logging

import trio

from posmon.actors.messages import Notice

log = logging.getLogger("posmon.notices")


class Notifier:
    def __init__(self, inbox: trio.MemoryReceiveChannel[Notice],
                 listeners: list[trio.MemorySendChannel[Notice]] | None = None) -> None:
        self.inbox = inbox
        self.listeners = listeners or []

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for notice in self.inbox:
            level = logging.WARNING if notice.needs_human else logging.INFO
            log.log(level, "%s%s %s %s: %s", "NEEDS A HUMAN: " if notice.needs_human else "", notice.venue,
                    notice.symbol, notice.side, notice.text)
            for listener in list(self.listeners):
                try:
                    listener.send_nowait(notice)
                except trio.WouldBlock:
                    log.warning("a notice listener is full; notice dropped for it")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.listeners.remove(listener)
