"""The websocket plumbing every venue's streams share: one connection opener and the interface they read.

trio-websocket does the protocol; this module maps its connect/handshake failures to ``StreamClosed`` and puts
one deadline around the whole open (connect, handshake and, through ``opening``, the venue's greeting and
subscriptions), so every venue's reader reconnects the same way and no open can hang. trio-websocket's own
``connect_timeout`` is not enough: a handshake answered after it leaves ``open_websocket_url`` stuck for good
(its reader task keeps the connect nursery open; ``python -m bench.ws_handshake_repro``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import trio
from trio_websocket import HandshakeError, open_websocket_url

from posmon.exchange.venue import StreamClosed

MAX_MESSAGE_SIZE = 16 * 2**20  # all-market arrays (Aster's marks, Lighter's market_stats/all) grow with listings


class WebSocketLike(Protocol):
    """The part of ``trio_websocket.WebSocketConnection`` the streams use."""

    async def get_message(self) -> str | bytes: ...

    async def send_message(self, message: str | bytes) -> None: ...

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None: ...


Connector = Callable[[str], AbstractAsyncContextManager[WebSocketLike]]


class Opening:
    """The deadline of one stream's open; ``done()`` lifts it once the stream is ready to read.

    ``waiting_for`` names the step under way, for the message when the deadline passes.
    """

    def __init__(self, scope: trio.CancelScope) -> None:
        self._scope = scope
        self.waiting_for = "connect and handshake"

    def done(self) -> None:
        self._scope.deadline = math.inf


@asynccontextmanager
async def opening(seconds: float, what: str) -> AsyncIterator[Opening]:
    """Everything inside, until ``done()``, must finish within ``seconds``, else ``StreamClosed``.

    Wraps the opener's ``async with`` itself (not just its enter), so a stuck library task inside it is
    cancelled too; the block stays inside the scope while the stream is read, with the deadline lifted.
    """
    with trio.CancelScope(deadline=trio.current_time() + seconds) as scope:
        opened = Opening(scope)
        yield opened
    if scope.cancelled_caught:
        raise StreamClosed(f"{what}: not open within {seconds:g}s ({opened.waiting_for})")


@asynccontextmanager
async def open_websocket(url: str, *, handshake_seconds: float, what: str) -> AsyncIterator[WebSocketLike]:
    """A trio-websocket connection, connected and handshaken within ``handshake_seconds`` or ``StreamClosed``."""
    try:
        async with (
            opening(handshake_seconds, what) as opened,
            open_websocket_url(
                url,
                connect_timeout=handshake_seconds,
                disconnect_timeout=handshake_seconds,
                max_message_size=MAX_MESSAGE_SIZE,
            ) as ws,
        ):
            opened.done()
            yield ws
    except (HandshakeError, OSError) as exc:
        raise StreamClosed(f"{what}: websocket failed ({type(exc).__name__}: {exc})") from exc
