"""The price-stream hang the large-store start-up shows, reduced to trio-websocket alone, and a fix.

``python -m bench.ws_handshake_repro``: a loopback websocket server answers the handshake after 1 s; the client's
connect timeout is 0.5 s. ``open_websocket_url`` (trio-websocket 0.12, as posmon's
``posmon.exchange.aster.stream.open_websocket`` uses it) raises nothing and never returns: its reader task, already
started, keeps the connect nursery open and, once its one-message queue is full, stops reading the socket, so not
even the server closing the connection frees it. ``guarded`` enforces the handshake deadline with a cancel scope
around the whole ``async with`` (well nested, so the reader task is cancelled too) and fails in time.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import HandshakeError, open_websocket_url, serve_websocket

LATE_S, TIMEOUT_S, GIVE_UP_S = 1.0, 0.5, 5.0


@asynccontextmanager
async def plain(url: str, handshake_s: float) -> AsyncIterator[Any]:
    async with open_websocket_url(url, connect_timeout=handshake_s, disconnect_timeout=handshake_s) as ws:
        yield ws


@asynccontextmanager
async def guarded(url: str, handshake_s: float) -> AsyncIterator[Any]:
    """What ``open_websocket`` in posmon/exchange/aster/stream.py could do (StreamClosed in place of TimeoutError)."""
    with trio.CancelScope(deadline=trio.current_time() + handshake_s) as scope:
        async with open_websocket_url(url, connect_timeout=handshake_s, disconnect_timeout=handshake_s) as ws:
            scope.deadline = math.inf  # connected: the deadline was for the handshake only
            yield ws
    if scope.cancelled_caught:
        raise TimeoutError(f"no websocket handshake within {handshake_s}s")


async def _late_server(request: Any) -> None:
    await trio.sleep(LATE_S)
    try:
        ws = await request.accept()
        for _ in range(50):
            await ws.send_message("x" * 100_000)
        await trio.sleep(60)
    except Exception:  # the client went away: nothing to do
        return


async def main() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(_late_server, "127.0.0.1", 0, ssl_context=None, task_status=task_status)
        )
        url = f"ws://127.0.0.1:{server.port}/"
        for name, opener in (("trio-websocket open_websocket_url", plain), ("guarded", guarded)):
            t0 = time.monotonic()
            outcome = f"still inside after {GIVE_UP_S:.0f}s: HANGS"
            with trio.move_on_after(GIVE_UP_S):
                try:
                    async with opener(url, TIMEOUT_S):
                        outcome = "connected"
                except (HandshakeError, OSError, TimeoutError) as exc:
                    outcome = f"{type(exc).__name__} after {time.monotonic() - t0:.2f}s"
            print(f"{name}: handshake answered after {LATE_S}s, connect timeout {TIMEOUT_S}s -> {outcome}")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
