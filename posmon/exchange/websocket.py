"""The websocket plumbing every venue's streams share: one connection opener and the interface they read.

trio-websocket does the protocol; this module only maps its connect/handshake failures to ``StreamClosed``,
so every venue's reader reconnects the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from trio_websocket import HandshakeError, open_websocket_url

from posmon.exchange.venue import StreamClosed

MAX_MESSAGE_SIZE = 16 * 2**20  # all-market arrays (Aster's marks, Lighter's market_stats/all) grow with listings


class WebSocketLike(Protocol):
    """The part of ``trio_websocket.WebSocketConnection`` the streams use."""

    async def get_message(self) -> str | bytes: ...

    async def send_message(self, message: str | bytes) -> None: ...

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None: ...


Connector = Callable[[str], AbstractAsyncContextManager[WebSocketLike]]


@asynccontextmanager
async def open_websocket(url: str, *, handshake_seconds: float, what: str) -> AsyncIterator[WebSocketLike]:
    """A trio-websocket connection whose connect/handshake failures surface as ``StreamClosed``."""
    try:
        async with open_websocket_url(url, connect_timeout=handshake_seconds, disconnect_timeout=handshake_seconds,
                                      max_message_size=MAX_MESSAGE_SIZE) as ws:
            yield ws
    except (HandshakeError, OSError) as exc:
        raise StreamClosed(f"{what}: websocket failed ({type(exc).__name__}: {exc})") from exc
