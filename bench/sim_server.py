"""The simulator process: posmon's Aster-protocol simulator on loopback, driven by the runner over stdin.

``python -m bench.sim_server`` serves an ``AsterSim`` (hypercorn, trio) in front of a ``SimExchange`` seeded from a
``bench.plan`` and publishes mark-price frames on command. It runs in its own process so that its CPU (matching,
JSON, HTTP and websocket serving) does not count against the daemon, which gets the other core.

Timestamps are ``time.monotonic_ns()`` (one system-wide clock, so the daemon process can be compared):

- a mark frame is *written* when the simulator's websocket handler hands it to the server for the daemon's
  ``!markPrice@arr@1s`` connection (the ASGI ``websocket.send``; the bytes go to the socket from there);
- a request is *received* when the server calls the application for it (its head has been read).

Both come from a thin ASGI wrapper around ``create_app``; the simulator itself is unchanged. Rate limits are set
far above anything a run sends (``RateLimitConfig(10**9, 10**9)``), so neither the simulator's 429s nor the
gateway's token buckets (sized from the published limits) pace the daemon: the figures show its own speed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import trio
from hypercorn.trio import serve

from bench.plan import Plan, PlanSpec, build_plan
from bench.proto import ChildChannel
from posmon.domain.orders import OrderState, Side
from posmon.exchange.errors import Rejected
from posmon.logs import configure
from posmon.sim.aster import AsterSim, RateLimitConfig, create_app
from posmon.sim.exchange import SimExchange
from posmon.sim.serving import hypercorn_config

log = logging.getLogger("bench.sim")
UNLIMITED = RateLimitConfig(weight_per_minute=10**9, orders_per_minute=10**9)
CLIENT_ID = re.compile(rb"pm-(\d+)-([TSC])(\d+)")
MUTATING = frozenset({"POST", "DELETE", "PUT"})


class Recorder:
    """What the wrapper saw while ``on``: mark frames written and trading requests received."""

    def __init__(self) -> None:
        self.on = False
        self.mark_connections = 0
        self.writes: list[tuple[int, int, int]] = []  # (E, t before the send, t after it)
        self.requests: list[list[Any]] = []  # [t, method, path, query + body]
        self.gets = 0

    def reset(self) -> None:
        self.writes, self.requests, self.gets = [], [], 0


def _event_ms(text: str) -> int:
    """The ``E`` of a mark array frame (``[{"e":"markPriceUpdate","E":123,...``) without parsing it all."""
    i = text.find('"E":')
    if i < 0:
        return -1
    j = i + 4
    k = j
    while k < len(text) and text[k].isdigit():
        k += 1
    return int(text[j:k]) if k > j else -1


def instrument(app: Any, rec: Recorder) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            t = time.monotonic_ns()
            if not rec.on:
                await app(scope, receive, send)
                return
            method = scope["method"]
            if method not in MUTATING:
                rec.gets += 1
                await app(scope, receive, send)
                return
            chunks = [scope.get("query_string", b""), b"&"]

            async def receive_body() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                return message

            # Recorded on arrival, its body filled in once read (the list may be collected and reset meanwhile).
            row: list[Any] = [t, method, scope["path"], b""]
            rec.requests.append(row)
            try:
                await app(scope, receive_body, send)
            finally:
                row[3] = b"".join(chunks)
        elif kind == "websocket" and "markPrice" in scope.get("path", ""):
            rec.mark_connections += 1
            log.info("mark-price websocket opened: %s", scope.get("path"))

            async def send_frame(message: dict[str, Any]) -> None:
                if message["type"] == "websocket.send" and rec.on and message.get("text"):
                    before = time.monotonic_ns()
                    await send(message)
                    rec.writes.append((_event_ms(message["text"]), before, time.monotonic_ns()))
                else:
                    await send(message)

            await app(scope, receive, send_frame)
        else:
            await app(scope, receive, send)

    return wrapped


class BenchSim:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.exchange = SimExchange(plan.rules, hedge_mode=True, clock=time.time)
        self.sim = AsterSim(self.exchange, limits=UNLIMITED)
        self.exchange.stall_prices(True)  # frames are published below, with known event times
        self.rec = Recorder()
        self.current: dict[str, str] = {s: plan.price_text(s, 0) for s in plan.symbols}
        self.step = 0
        self.last_e = 0
        self.published: list[tuple[int, int, int]] = []  # (E, label, t)
        self.idle_rate = 1.0
        self._idle_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    # ---- setup ---------------------------------------------------------------------------------------------------

    def seed(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        plan = self.plan
        self.exchange.set_marks({s: plan.paths[s][0] for s in plan.symbols}, trade=False)
        positions = 0
        for symbol, side, qty in plan.positions():
            self.exchange.external_entry(symbol, side, qty)
            positions += 1
        requests = [o.request for o in plan.orders]
        ids: dict[str, str] = {}  # client id -> the exchange's order id, which posmon recorded when it placed them
        for i in range(0, len(requests), 2000):
            for result in self.exchange.place_orders(requests[i : i + 2000]):
                if isinstance(result, Rejected):
                    raise RuntimeError(f"seeding refused: {result}")
                if isinstance(result, OrderState):
                    ids[result.client_id] = result.order_id
        self.sim.orders.sync()
        return {
            "positions": positions,
            "orders": len(requests),
            "seconds": time.perf_counter() - t0,
            "exchange_ids": ids,
        }

    async def serve(self, nursery: trio.Nursery) -> tuple[str, str]:
        self._nursery = nursery
        app = instrument(create_app(self.sim), self.rec)
        binds = await nursery.start(partial(serve, app, hypercorn_config(self.sim, "127.0.0.1", 0), mode="asgi"))
        rest_url = binds[0]
        return rest_url, "ws://" + rest_url.removeprefix("http://")

    # ---- frames --------------------------------------------------------------------------------------------------

    def publish(self, label: int) -> None:
        e = max(int(time.time() * 1000), self.last_e + 1)
        self.last_e = e
        frame = orjson.dumps([{"e": "markPriceUpdate", "E": e, "s": s, "p": p} for s, p in self.current.items()])
        self.published.append((e, label, time.monotonic_ns()))
        self.exchange.publish_raw_price_frame(frame)

    def move_to(self, step: int, *, engine: bool) -> None:
        plan = self.plan
        for s in plan.traded:
            self.current[s] = plan.price_text(s, step)
        if engine:
            self.exchange.set_marks({s: plan.paths[s][step] for s in plan.traded}, trade=False)
        self.step = step

    async def _idle(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self._idle_scope = scope
            task_status.started()
            while True:
                self.publish(-1)
                await trio.sleep(1 / self.idle_rate)

    async def start_idle(self) -> None:
        assert self._nursery is not None
        if self._idle_scope is None:
            await self._nursery.start(self._idle)

    def stop_idle(self) -> None:
        if self._idle_scope is not None:
            self._idle_scope.cancel()
            self._idle_scope = None

    async def run_steps(self, first: int, last: int, rate: float, engine: bool) -> dict[str, Any]:
        """Frames for steps ``first..last`` at ``rate`` per second (every symbol in every frame)."""
        self.stop_idle()
        start = trio.current_time() + 1 / rate
        slip = 0.0
        for i, step in enumerate(range(first, last + 1)):
            due = start + i / rate
            await trio.sleep_until(due)
            slip = max(slip, trio.current_time() - due)
            self.move_to(step, engine=engine)
            self.publish(step)
        await self.start_idle()
        return {"slip_max_s": slip}

    async def run_rate(self, fps: float, frames: int, probes: dict[int, int]) -> dict[str, Any]:
        """``frames`` frames at ``fps`` replaying the path; frame k spikes the probe ``probes[k]`` to its TP."""
        self.stop_idle()
        by_id = {p.tranche_id: p for p in self.plan.probes}
        cycle = self.plan.spec.total_steps - 1
        start = trio.current_time() + 0.01
        slip, late = 0.0, 0
        for k in range(frames):
            due = start + k / fps
            now = trio.current_time()
            if now < due:
                await trio.sleep_until(due)
            else:
                late += 1
                await trio.lowlevel.checkpoint()
            slip = max(slip, trio.current_time() - due)
            self.move_to(1 + k % cycle if cycle > 0 else 0, engine=False)
            probe = by_id.get(probes.get(k, -1))
            if probe is not None:
                self.current[probe.symbol] = probe.price
            self.publish(k)
        finished = trio.current_time()
        await self.start_idle()
        return {
            "slip_max_s": slip,
            "late_frames": late,
            "publish_seconds": finished - start,
            "events": [e for e, _, _ in self.published[-frames:]],
        }

    def collect(self) -> dict[str, Any]:
        requests = []
        for t, method, path, raw in self.rec.requests:
            ids = [f"pm-{m[0].decode()}-{m[1].decode()}{m[2].decode()}" for m in CLIENT_ID.findall(raw)]
            requests.append([t, method, path, ids])
        out = {"published": self.published, "writes": self.rec.writes, "requests": requests, "gets": self.rec.gets}
        self.published = []
        self.rec.reset()
        return out


async def main() -> None:
    configure("WARNING")
    log.setLevel(logging.INFO)
    channel = ChildChannel()
    bench: BenchSim | None = None
    async with trio.open_nursery() as nursery:
        async for msg in channel.commands():
            ident, cmd = msg.get("id"), msg.get("cmd")
            try:
                answer = await handle(bench, cmd, msg, nursery)
                if cmd == "init":
                    bench = answer.pop("_bench")
                elif cmd == "quit":
                    channel.send({"id": ident})
                    break
            except Exception as exc:  # the runner reports it and stops
                channel.send({"id": ident, "error": f"{type(exc).__name__}: {exc}"})
                continue
            channel.send({"id": ident, **answer})
        nursery.cancel_scope.cancel()


async def handle(bench: BenchSim | None, cmd: str, msg: dict[str, Any], nursery: trio.Nursery) -> dict[str, Any]:
    if cmd == "init":
        t0 = time.perf_counter()
        plan = build_plan(PlanSpec.from_json(msg["spec"]))
        built = time.perf_counter() - t0
        b = BenchSim(plan)
        seeded = b.seed()
        rest_url, ws_url = await b.serve(nursery)
        b.idle_rate = msg.get("idle_rate", 1.0)
        await b.start_idle()
        return {
            "_bench": b,
            "rest_url": rest_url,
            "ws_url": ws_url,
            "fingerprint": plan.fingerprint(),
            "plan_seconds": built,
            **seeded,
        }
    if cmd == "quit":
        return {}
    assert bench is not None, "init first"
    if cmd == "record":
        bench.rec.reset()
        bench.published = []
        bench.rec.on = bool(msg["on"])
        return {}
    if cmd == "steps":
        return await bench.run_steps(msg["first"], msg["last"], msg["rate"], msg.get("engine", True))
    if cmd == "rate":
        return await bench.run_rate(msg["fps"], msg["frames"], {int(k): v for k, v in msg["probes"].items()})
    if cmd == "collect":
        return bench.collect()
    if cmd == "counters":
        return {
            "requests": dict(bench.sim.counters.requests),
            "ws_frames_sent": bench.sim.counters.ws_frames_sent,
            "rate_limited": bench.sim.counters.rate_limited,
            "mark_connections": bench.rec.mark_connections,
        }
    if cmd == "entry":
        state = bench.exchange.external_entry(msg["symbol"], Side(msg["side"]), Decimal(msg["qty"]))
        return {"status": state.status.value}
    if cmd == "marks":
        prices = {s: Decimal(p) for s, p in msg["prices"].items()}
        bench.exchange.set_marks(prices, trade=msg.get("trade", False))
        if msg.get("publish", True):  # else only the exchange's mark moves (and what it triggers there)
            bench.current.update({s: format(p, "f") for s, p in prices.items()})
            bench.publish(-2)
        return {}
    if cmd == "book":
        symbol = msg["symbol"]
        orders = [[o.client_id, o.type.value, format(o.qty, "f")] for o in bench.exchange.engine.open_orders(symbol)]
        positions = {p.side.value: format(p.qty, "f") for p in bench.exchange.engine.positions() if p.symbol == symbol}
        return {"orders": orders, "positions": positions}
    raise ValueError(f"unknown command {cmd!r}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)
