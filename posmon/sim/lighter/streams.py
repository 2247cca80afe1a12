"""The websocket at ``/stream``: subscribe/unsubscribe, ping/pong, market stats and account pushes.

One connection is a nursery: a writer draining the connection's outbox (snapshots, hub updates,
pongs, errors all go through it, so their order is the order they were queued), a pinger, and the
reader in the connection's own task, which also enforces the venue's 2-minute idle limit.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import trio
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from posmon.sim.lighter import views
from posmon.sim.lighter.errors import LighterError
from posmon.sim.lighter.sim import LighterSim

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
INVALID_CHANNEL = 30005
INVALID_MESSAGE = 30003
SNAPSHOT_TRADES = 50


async def endpoint(sim: LighterSim, websocket: WebSocket) -> None:
    connection = Connection(sim, websocket)
    sim.attach(connection)
    try:
        await websocket.accept()
        await connection.run()
    except WebSocketDisconnect:
        connection.client_gone = True
    finally:
        sim.hub.forget(connection.outbox)
        sim.detach(connection)
    if websocket.application_state is WebSocketState.CONNECTED and not connection.client_gone:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(connection.close_code)


class Connection:
    """One client: its outbox and subscriptions."""

    def __init__(self, sim: LighterSim, websocket: WebSocket) -> None:
        self.sim = sim
        self.websocket = websocket
        self.outbox, self._inbox = sim.hub.open_outbox()
        self.client_gone = False
        self.close_code = CLOSE_NORMAL
        self._scope = trio.CancelScope()

    def drop(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Close from the server side with ``code`` (``LighterSim.drop_websockets``)."""
        self.close_code = code
        self._scope.cancel()

    def send(self, message: dict[str, Any]) -> None:
        self.outbox.send_nowait(message)

    async def run(self) -> None:
        self.send({"session_id": str(id(self)), "type": "connected"})
        with self._scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write)
                if self.sim.ws.ping_interval is not None:
                    nursery.start_soon(self._ping, self.sim.ws.ping_interval)
                await self._read()
                nursery.cancel_scope.cancel()

    async def _write(self) -> None:
        async for message in self._inbox:
            await self.websocket.send_text(orjson.dumps(message).decode())
            self.sim.counters.ws_messages_sent += 1

    async def _ping(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            self.send({"type": "ping"})

    async def _read(self) -> None:
        while True:
            with trio.move_on_after(self.sim.ws.idle_timeout):
                event = await self.websocket.receive()
                if event["type"] == "websocket.disconnect":
                    self.client_gone = True
                    return
                self._handle(event.get("text") or (event.get("bytes") or b"").decode("utf-8", "replace"))
                continue
            return  # idle for too long: the venue closes the connection

    def _handle(self, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(INVALID_MESSAGE, "message is not JSON")
            return
        if not isinstance(message, dict):
            self._error(INVALID_MESSAGE, "message must be a JSON object")
            return
        kind = message.get("type")
        if kind == "ping":
            self.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            self._subscribe(str(message.get("channel", "")), message.get("auth"))
        elif kind == "unsubscribe":
            channel = str(message.get("channel", ""))
            self.sim.hub.unsubscribe(channel, self.outbox)
            self.send({"channel": channel.replace("/", ":", 1), "type": "unsubscribed"})
        else:
            self._error(INVALID_MESSAGE, f"unknown message type {kind!r}")

    def _subscribe(self, channel: str, auth: Any) -> None:
        name, _, arg = channel.partition("/")
        sim = self.sim
        snapshot: dict[str, Any] | None = None
        try:
            if name == "market_stats":
                snapshot = self._market_stats(arg)
            elif name in ("account_all", "account_all_orders"):
                account = int(arg) if arg.isdigit() else -1
                if account != sim.account_index:
                    raise LighterError(INVALID_CHANNEL, f"account {arg!r} not found")
                if name == "account_all_orders":
                    sim.check_auth(auth if isinstance(auth, str) else None, account)
                    sim.flush()
                    snapshot = sim.account_orders_message(sim.account.open_orders(), update=False)
                else:
                    sim.flush()
                    trades = list(sim.account.trades)[-SNAPSHOT_TRADES:]
                    snapshot = sim.account_all_message(None, trades, update=False)
        except LighterError as exc:
            self._error(exc.code, exc.message)
            return
        if snapshot is None:
            self._error(INVALID_CHANNEL, f"Invalid Channel: {channel!r}")
            return
        self.send(snapshot)
        sim.hub.subscribe(channel, self.outbox)

    def _market_stats(self, arg: str) -> dict[str, Any] | None:
        sim = self.sim
        now = sim.now_ms()
        if arg == "all":
            stats = {
                str(m.market_id): views.market_stats(sim.account, m, now, sim.funding_rate, sim.funding_interval_ms)
                for m in sim.markets.values()
            }
            return {"channel": "market_stats:all", "market_stats": {k: v for k, v in stats.items() if v is not None},
                    "type": "subscribed/market_stats"}  # fmt: skip
        if not arg.isdigit() or int(arg) not in sim.markets:
            return None
        payload = views.market_stats(sim.account, sim.markets[int(arg)], now, sim.funding_rate, sim.funding_interval_ms)
        return {"channel": f"market_stats:{arg}", "market_stats": payload or {}, "type": "subscribed/market_stats"}

    def _error(self, code: int, message: str) -> None:
        self.send({"error": {"code": code, "message": message}, "type": "error"})
