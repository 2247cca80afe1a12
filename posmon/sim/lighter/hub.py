"""Fan-out of websocket messages to the connections subscribed to each channel.

Channels are named as clients subscribe to them (``market_stats/all``, ``account_all/7``); each
connection owns an unbounded memory channel, so publishing never blocks the simulator.
"""

from __future__ import annotations

import math
from typing import Any

import trio

Message = dict[str, Any]


class Hub:
    """Subscribers per channel name."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[trio.MemorySendChannel[Message]]] = {}

    @staticmethod
    def open_outbox() -> tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]]:
        return trio.open_memory_channel[Message](math.inf)

    def subscribe(self, channel: str, outbox: trio.MemorySendChannel[Message]) -> None:
        self._subscribers.setdefault(channel, set()).add(outbox)

    def unsubscribe(self, channel: str, outbox: trio.MemorySendChannel[Message]) -> None:
        self._subscribers.get(channel, set()).discard(outbox)

    def forget(self, outbox: trio.MemorySendChannel[Message]) -> None:
        for subscribers in self._subscribers.values():
            subscribers.discard(outbox)

    def has_subscribers(self, channel: str) -> bool:
        return bool(self._subscribers.get(channel))

    def publish(self, channel: str, message: Message) -> None:
        for outbox in list(self._subscribers.get(channel, ())):
            try:
                outbox.send_nowait(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers[channel].discard(outbox)
