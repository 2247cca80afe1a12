"""The websocket side: raw ``/ws/<stream>``, combined ``/stream?streams=a/b``, mark prices and user data.

Each connection is one small nursery: a reader answering control frames (SUBSCRIBE,
UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET/GET_PROPERTY), a pump per ``SimExchange`` stream
that filters and reshapes frames for this connection's subscriptions, and for a user
stream a watcher that ends it when its listen key expires. The venue's routine
disconnects (24 h age, dropped streams) are reproduced so clients prove they reconnect.
"""

from __future__ import annotations

import collections
from typing import Any

import orjson
import trio
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketState

from posmon.sim.aster import frames
from posmon.sim.aster.sim import AsterSim

MARK_ARRAY_STREAMS = frozenset({"!markPrice@arr", "!markPrice@arr@1s"})
MARK_SUFFIXES = ("@markPrice", "@markPrice@1s")
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


async def raw_endpoint(sim: AsterSim, websocket: WebSocket) -> None:
    """``/ws/<stream>``: a market stream or a listen key, payloads sent as they are."""
    stream = websocket.path_params.get("stream")
    await _serve(sim, websocket, [stream] if stream else [], combined=False)


async def combined_endpoint(sim: AsterSim, websocket: WebSocket) -> None:
    """``/stream?streams=a/b/c``: every payload wrapped as ``{"stream": name, "data": payload}``."""
    names = [n for n in websocket.query_params.get("streams", "").split("/") if n]
    await _serve(sim, websocket, names, combined=True)


async def _serve(sim: AsterSim, websocket: WebSocket, names: list[str], *, combined: bool) -> None:
    keys = [n for n in names if sim.listen_keys.status(n)[0] != "unknown"]
    if len(names) > sim.ws.max_streams:
        await _deny(websocket, -1130, f"Too many streams: {len(names)} > {sim.ws.max_streams}.")
        return
    if len(keys) > 1 or any(not sim.listen_keys.is_live(k) for k in keys):
        await _deny(websocket, -1125, "This listenKey does not exist.")
        return
    # Subscribe and register before accepting: once the client holds an open socket, whatever is published
    # reaches it and ``drop_websockets`` sees it.
    connection = Connection(
        sim, websocket, [n for n in names if n not in keys], keys[0] if keys else None, combined=combined
    )
    sim.attach(connection)
    try:
        await websocket.accept()
        await connection.run()
    finally:
        connection.close_channels()
        sim.detach(connection)
    if websocket.application_state is WebSocketState.CONNECTED and not connection.client_gone:
        await websocket.close(connection.close_code)


async def _deny(websocket: WebSocket, code: int, msg: str) -> None:
    """Refuse the handshake with an HTTP 400 carrying the venue's error body."""
    body = orjson.dumps({"code": code, "msg": msg})
    await websocket.send_denial_response(Response(body, status_code=400, media_type="application/json"))


class Connection:
    """One websocket connection: its subscriptions, its tasks, and how it ended."""

    def __init__(
        self, sim: AsterSim, websocket: WebSocket, streams: list[str], listen_key: str | None, *, combined: bool
    ) -> None:
        self.sim = sim
        self.websocket = websocket
        self.subscriptions: list[str] = list(dict.fromkeys(streams))
        self.listen_key = listen_key
        self.combined = combined
        self.close_code = CLOSE_NORMAL
        self.client_gone = False
        self._scope = trio.CancelScope()
        self._incoming: collections.deque[float] = collections.deque()
        self._prices = sim.exchange.open_price_stream()
        self._user = sim.exchange.open_user_stream() if listen_key is not None else None

    def close_channels(self) -> None:
        self._prices.close()
        if self._user is not None:
            self._user.close()

    def drop(self, code: int) -> None:
        """Close from the server side with ``code`` (``AsterSim.drop_websockets`` and the tasks below)."""
        self.close_code = code
        self._scope.cancel()

    async def run(self) -> None:
        with self._scope:
            with trio.move_on_after(self.sim.ws.max_connection_age) as age:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read)
                    nursery.start_soon(self._pump_prices)
                    if self.listen_key is not None and self._user is not None:
                        nursery.start_soon(self._pump_user, self.listen_key, self._user)
                        nursery.start_soon(self._watch_key, self.listen_key)
            if age.cancelled_caught:
                self.close_code = CLOSE_GOING_AWAY  # the venue's routine 24-hour disconnect

    async def _send(self, payload: bytes | str) -> None:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")
        await self.websocket.send_text(text)
        self.sim.counters.ws_frames_sent += 1

    async def _send_data(self, stream: str, data: Any) -> None:
        await self._send(orjson.dumps({"stream": stream, "data": data} if self.combined else data))

    # ---- client -> server ---------------------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.client_gone = True
                self._scope.cancel()
                return
            now = trio.current_time()
            self._incoming.append(now)
            while self._incoming and self._incoming[0] <= now - 1.0:
                self._incoming.popleft()
            if len(self._incoming) > self.sim.ws.max_incoming_per_second:
                self.drop(CLOSE_POLICY)  # the venue drops a connection sending over 10 messages a second
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            await self._send(orjson.dumps(self._control(text)))

    def _control(self, text: str) -> dict[str, Any]:
        """The answer to one control frame, in the shapes the venue's docs list."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return {"code": 3, "msg": f"Invalid JSON: {exc}"}
        if not isinstance(request, dict):
            return {"code": 3, "msg": "Invalid JSON: expected an object"}
        request_id = request.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int) or request_id < 0:
            return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer", "id": request_id}
        method = request.get("method")
        params = request.get("params", [])
        if not isinstance(params, list):
            return {"code": 2, "msg": "Invalid request: params must be a list", "id": request_id}
        if method == "SUBSCRIBE":
            names = [n for n in params if isinstance(n, str)]
            merged = list(dict.fromkeys(self.subscriptions + names))
            if len(merged) > self.sim.ws.max_streams:
                return {
                    "code": 2,
                    "msg": f"Invalid request: at most {self.sim.ws.max_streams} streams",
                    "id": request_id,
                }
            self.subscriptions = merged
            return {"result": None, "id": request_id}
        if method == "UNSUBSCRIBE":
            self.subscriptions = [n for n in self.subscriptions if n not in params]
            return {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            keys = [self.listen_key] if self.listen_key is not None else []
            return {"result": self.subscriptions + keys, "id": request_id}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(method, params, request_id)
        if method is None:
            return {"code": 2, "msg": "Invalid request: missing field `method`", "id": request_id}
        return {
            "code": 2,
            "msg": f"Invalid request: unknown variant {method}, expected one of `SUBSCRIBE`, "
            "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
            "id": request_id,
        }

    def _property(self, method: str, params: list[Any], request_id: int) -> dict[str, Any]:
        if not params or not isinstance(params[0], str):
            return {"code": 2, "msg": "Invalid request: property name must be a string", "id": request_id}
        if params[0] != "combined":
            return {"code": 0, "msg": "Unknown property", "id": request_id}
        if method == "GET_PROPERTY":
            return {"result": self.combined, "id": request_id}
        if len(params) != 2 or not isinstance(params[1], bool):
            return {"code": 1, "msg": "Invalid value type: expected Boolean", "id": request_id}
        self.combined = params[1]
        return {"result": None, "id": request_id}

    # ---- server -> client ---------------------------------------------------------------------------------------

    async def _pump_prices(self) -> None:
        async for frame in self._prices:
            if self.subscriptions:
                await self._send_prices(frame)
        self.drop(CLOSE_GOING_AWAY)  # SimExchange.drop_streams: the venue dropped the connection

    async def _send_prices(self, frame: bytes) -> None:
        updates = frames.mark_updates(frame, self.sim.funding_rate, self.sim.funding_interval_ms)
        if updates is None:  # not a mark frame (a test's malformed one): every subscriber gets it as it is
            await self._send(frame)
            return
        by_symbol = {u["s"].lower(): u for u in updates}
        for stream in list(self.subscriptions):
            if stream in MARK_ARRAY_STREAMS:
                await self._send_data(stream, updates)
                continue
            for suffix in MARK_SUFFIXES:
                if stream.endswith(suffix):
                    update = by_symbol.get(stream[: -len(suffix)])
                    if update is not None:
                        await self._send_data(stream, update)
                    break

    async def _pump_user(self, key: str, channel: trio.MemoryReceiveChannel[bytes]) -> None:
        async for frame in channel:
            await self.sim.user_stream_flowing()  # stall_user_stream: frames wait here, in order
            if not self.sim.listen_keys.is_live(key):
                continue  # no events after expiry; the watcher closes the connection
            self.sim.orders.sync()
            event = frames.user_event(frame, self.sim.orders, self.sim.exchange.engine)
            copies = 1
            if self.sim.user_duplicates > 0:
                self.sim.user_duplicates -= 1
                copies = 2
            for _ in range(copies):
                if event is None:
                    await self._send(frame)
                else:
                    await self._send_data(key, event)
        self.drop(CLOSE_GOING_AWAY)

    async def _watch_key(self, key: str) -> None:
        """End the stream when its key expires (``listenKeyExpired`` first) or is deleted."""
        keys = self.sim.listen_keys
        while True:
            state, expires = keys.status(key)
            if state == "expired":
                await self._send_data(key, {"e": "listenKeyExpired", "E": self.sim.now_ms()})
                self.drop(CLOSE_NORMAL)
                return
            if state != "live":
                self.drop(CLOSE_NORMAL)
                return
            changed = keys.changed
            wait = min(max(expires - self.sim.now(), 0.0), self.sim.ws.recheck_interval)
            with trio.move_on_after(wait):
                await changed.wait()
