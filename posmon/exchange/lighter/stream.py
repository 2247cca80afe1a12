"""Lighter's websocket (``<ws_url>/stream``) as ``FrameStream``s: mark prices and the account's orders/positions.

Protocol: the server greets with ``{"type":"connected"}``; the client subscribes with
``{"type":"subscribe","channel":"market_stats/all"}`` (private channels carry ``"auth": <token>``); the
server sends ``{"type":"ping"}`` and expects ``{"type":"pong"}``, and drops a connection that sent nothing
for 2 minutes, so a ping of our own goes out every ``ws_ping_seconds``.

Both streams hand raw bytes to the daemon (parsing is the venue's ``parse_*_frame``) and end with
``StreamClosed`` on any disconnect, so the readers reconnect and, for the account, reconcile. The account
stream also ends shortly before its auth token's deadline, so the next connection subscribes with a fresh one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import orjson
import trio
from trio_websocket import ConnectionClosed

from posmon.exchange.events import MalformedMessage
from posmon.exchange.lighter.codec import frame_type, load_json
from posmon.exchange.venue import FrameStream, StreamClosed
from posmon.exchange.websocket import Connector, WebSocketLike, open_websocket, opening

__all__ = ["Connector", "LighterFrames", "WebSocketLike", "open_lighter_stream", "open_websocket"]

log = logging.getLogger(__name__)

PING = orjson.dumps({"type": "ping"}).decode()
PONG = orjson.dumps({"type": "pong"}).decode()


class LighterFrames:
    """``FrameStream`` over one subscribed connection: answers pings, ends with ``StreamClosed``."""

    def __init__(self, ws: WebSocketLike, what: str) -> None:
        self._ws = ws
        self.what = what
        self._ended: str | None = None

    async def receive(self) -> bytes:
        if self._ended is not None:
            raise StreamClosed(self._ended)
        try:
            message = await self._ws.get_message()
        except ConnectionClosed as exc:
            raise StreamClosed(self._ended or f"{self.what} closed ({exc.reason})") from exc
        frame = message.encode() if isinstance(message, str) else message
        if b'"ping"' in frame and _type_of(frame) == "ping":
            await self.send(PONG)
        return frame  # pings too: the reader's staleness watchdog counts them as life

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except ConnectionClosed as exc:
            raise StreamClosed(f"{self.what} closed while sending ({exc.reason})") from exc

    async def end(self, reason: str) -> None:
        """End the stream from outside: the reader's next ``receive`` raises ``StreamClosed``."""
        self._ended = reason
        await self._ws.aclose(1000, "posmon: " + reason[:100])


def _type_of(frame: bytes) -> str | None:
    try:
        data = load_json(frame, "frame")
        return frame_type(data) if isinstance(data, dict) else None
    except MalformedMessage:
        return None


@asynccontextmanager
async def open_lighter_stream(
    url: str,
    channels: Sequence[str],
    *,
    what: str,
    handshake_seconds: float,
    ping_seconds: float,
    auth: str | None = None,
    end_at: float | None = None,
    clock: Callable[[], float] | None = None,
    connect: Connector | None = None,
) -> AsyncIterator[FrameStream]:
    """Connect, wait for ``connected``, subscribe to ``channels``, keep pinging; ``end_at`` (epoch) ends it."""
    opener = connect or functools.partial(open_websocket, handshake_seconds=handshake_seconds, what=what)
    # One deadline for the whole open: connect, handshake, the server's greeting and our subscriptions.
    async with opening(handshake_seconds, what) as opened, opener(url) as ws:
        frames = LighterFrames(ws, what)
        opened.waiting_for = "no 'connected' greeting"
        while (kind := _type_of(await frames.receive())) != "connected":
            log.debug("%s: %r before 'connected'", what, kind)
        opened.waiting_for = "subscribing"
        for channel in channels:
            message = {"type": "subscribe", "channel": channel}
            if auth is not None:
                message["auth"] = auth
            await frames.send(orjson.dumps(message).decode())
        opened.done()
        log.info("lighter: %s connected (%s)", what, ", ".join(channels))
        tasks: list[Callable[[], Awaitable[None]]] = [functools.partial(_keep_pinging, frames, ping_seconds)]
        if end_at is not None and clock is not None:
            tasks.append(functools.partial(_end_at, frames, end_at - clock()))
        async with _running(tasks):
            yield frames


async def _keep_pinging(frames: LighterFrames, interval: float) -> None:
    """Send something at least every ``interval`` (the server drops a connection silent for 2 minutes)."""
    while True:
        await trio.sleep(interval)
        try:
            await frames.send(PING)
        except StreamClosed:
            return  # the reader sees the close itself


async def _end_at(frames: LighterFrames, delay: float) -> None:
    await trio.sleep(max(delay, 0.0))
    log.info("lighter: %s auth token about to expire; reconnecting with a fresh one", frames.what)
    await frames.end("auth token about to expire")


@asynccontextmanager
async def _running(tasks: Sequence[Callable[[], Awaitable[None]]]) -> AsyncIterator[None]:
    """Run ``tasks`` in a nursery of our own while the body runs; cancel them when it ends.

    The body's own exception (``StreamClosed`` above all) comes out bare, not wrapped in an exception group,
    so callers can keep catching it by type.
    """
    try:
        async with trio.open_nursery() as nursery:
            for task in tasks:
                nursery.start_soon(task)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        sole = group.exceptions[0] if len(group.exceptions) == 1 else None
        if sole is None or isinstance(sole, BaseExceptionGroup):
            raise
        raise sole  # noqa: B904 -- the group is the context; the exception keeps its own cause
