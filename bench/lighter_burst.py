"""Lighter: a burst of simultaneous stop-outs, from the price frame to the closes' transactions, signing included.

``python -m bench.lighter_burst [--smoke] [--positions 50] [--bursts 5] [--sign-threads N]`` (and the
``lighter_burst`` phase of ``python -m bench``). Two processes on 127.0.0.1:

- **the simulator** (a child: ``python -m bench.lighter_burst --serve-sim N``): posmon's Lighter protocol simulator
  (``LighterSim`` served by hypercorn) listing N made-up markets, unlimited tier (no 429s, no taker delay), behind
  a thin ASGI wrapper that stamps each ``market_stats/all`` frame as it is written (the ASGI ``websocket.send``)
  and each ``sendTx`` / ``sendTxBatch`` as it arrives (the server calling the application), with the client order
  indexes and nonces of the transactions it carries. Driven over stdin/stdout (``bench/proto.py``);
- **the daemon**, in this process: the real daemon started as ``posmon run`` starts it (``open_venue`` with the
  simulator's URLs: ``LighterVenue`` over HTTP and websockets, transactions signed by lighter-sdk's Go signer,
  ``run_daemon``), its venue wrapped to stamp each price frame reaching the router and each gateway call to
  ``place_orders``. During a burst this process does nothing else (it waits on an event the wrapper sets).

All stamps are ``time.monotonic_ns()``, one system-wide clock, so the two processes' stamps compare directly.

A burst: another program opens N LONG positions (one per market) at 100; the daemon adopts each as a tranche with
its SL 1 % below (Lighter: emulated exits, posmon holds TP/SL itself); one frame then moves every mark to 98, through
every SL at once, and each actor sends a bounded reduce-only MARKET close. Per close: **price -> tx**, from the
simulator writing that frame to the simulator receiving the request that carries the close's transaction; also
from the frame reaching the daemon's router, and the requests used (sendTx vs sendTxBatch, batch sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trio

from bench.proto import ROOT, Child, ChildChannel, Interference

N_FULL, BURSTS_FULL = 50, 5
N_SMOKE, BURSTS_SMOKE = 5, 1
ENTRY, STOP, SL_PCT = Decimal("100"), Decimal("98"), 1.0  # SL at 99: one move to 98 crosses every one
QTY = Decimal("0.5")
TX_PATHS = ("/api/v1/sendTx", "/api/v1/sendTxBatch")
TARGET_P50_MS = 10.0  # the tick-to-close target, applied to a 50-close burst (signing included)


def markets(n: int) -> tuple[Any, ...]:
    from posmon.sim.lighter import LighterMarket

    return tuple(
        LighterMarket(i, f"B{i:02d}", 3, 2, Decimal("0.001"), Decimal("10"), ENTRY, default_imf=500) for i in range(n)
    )


# ---- the simulator (child process) --------------------------------------------------------------------------------


class Stamps:
    def __init__(self) -> None:
        self.frames: list[int] = []  # ns when a market_stats/all update was written
        self.txs: list[dict[str, Any]] = []  # one per sendTx/sendTxBatch request


def _txs_of(path: str, body: bytes) -> list[dict[str, int]]:
    form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    infos = [form.get("tx_info", "")] if path.endswith("sendTx") else json.loads(form.get("tx_infos") or "[]")
    out = []
    for info in infos:
        with contextlib.suppress(ValueError, TypeError):
            tx = json.loads(info)
            out.append({"coi": int(tx.get("ClientOrderIndex", 0)), "nonce": int(tx["Nonce"])})
    return out


def instrument(app: Any, st: Stamps) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in TX_PATHS:
            t = time.monotonic_ns()
            chunks: list[bytes] = []
            status: list[int] = []

            async def receive_body() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                return message

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            await app(scope, receive_body, send_status)
            txs = _txs_of(scope["path"], b"".join(chunks))
            st.txs.append({"t_ns": t, "path": scope["path"], "txs": txs, "status": status[0] if status else None})
        elif scope["type"] == "websocket":

            async def send_frame(message: dict[str, Any]) -> None:
                text = message.get("text") if message["type"] == "websocket.send" else None
                if text and '"update/market_stats"' in text and '"market_stats:all"' in text:
                    st.frames.append(time.monotonic_ns())
                await send(message)

            await app(scope, receive, send_frame)
        else:
            await app(scope, receive, send)

    return wrapped


async def serve_sim(n: int) -> None:
    from posmon.domain.orders import Side
    from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim

    channel = ChildChannel()
    mk = markets(n)
    exchange = build_exchange(mk)
    st = Stamps()

    class StampedSim(LighterSim):
        def create_app(self) -> Any:
            return instrument(super().create_app(), st)

    sim = StampedSim(exchange, markets=mk)
    symbols = [m.symbol for m in mk]
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)
        channel.event("serving", rest_url=rest_url, ws_url=ws_url)
        async for msg in channel.commands():
            ident, cmd = msg.get("id"), msg.get("cmd")
            if cmd == "open":  # reset the marks, then another program opens a LONG on every market
                exchange.set_marks({s: ENTRY for s in symbols})
                for s in symbols:
                    sim.external_entry(s, Side.LONG, QTY)
                channel.send({"id": ident})
            elif cmd == "marks":
                exchange.set_marks({s: Decimal(msg["price"]) for s in symbols})
                channel.send({"id": ident, "t_ns": time.monotonic_ns()})
            elif cmd == "stamps":
                requests = dict(sim.counters.requests)
                channel.send({"id": ident, "frames": st.frames, "txs": st.txs, "requests": requests})
                st.frames, st.txs = [], []
            elif cmd == "positions":
                held = [p for p in exchange.positions() if p.qty]
                channel.send({"id": ident, "open": len(held), "next_nonce": sim.next_nonce(sim.account_index, 3)})
            else:
                channel.send({"id": ident, "error": f"unknown command {cmd!r}"})
        nursery.cancel_scope.cancel()


# ---- the daemon (this process) ------------------------------------------------------------------------------------


class StampedVenue:
    """Delegates to the real ``LighterVenue``; stamps price frames reaching the router and ``place_orders`` calls."""

    def __init__(self, inner: Any, expected: int, *, paced: bool = False) -> None:
        self._inner = inner
        self.name = inner.name
        # As the Aster bench's simulator publishes 1e9/min: the gateway's token buckets pace nothing, so the figure
        # is the daemon's own speed (paced=True keeps the tier's budget: reads between bursts then delay exits).
        self._limits = (
            inner.limits if paced else replace(inner.limits, weight_per_minute=10**9, orders_per_minute=10**9)
        )
        self.frames: list[int] = []
        self.calls: list[tuple[int, int, int]] = []  # (called ns, answered ns, orders)
        self.expected = expected
        self.signing: list[tuple[int, float]] = []  # (txs, ms) per LighterRest.sign_many call (this branch on)
        rest = getattr(inner, "rest", None)
        if rest is not None and hasattr(rest, "sign_many"):
            inner_sign_many = rest.sign_many

            async def sign_many(calls: Any) -> Any:
                t = time.monotonic_ns()
                try:
                    return await inner_sign_many(calls)
                finally:
                    self.signing.append((len(calls), (time.monotonic_ns() - t) / 1e6))

            rest.sign_many = sign_many
        self.placed = 0
        self.done = trio.Event()

    @property
    def limits(self) -> Any:
        return self._limits

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def parse_price_frame(self, frame: bytes) -> Any:
        t = time.monotonic_ns()
        marks = self._inner.parse_price_frame(frame)
        if marks:
            self.frames.append(t)
        return marks

    async def place_orders(self, orders: Sequence[Any]) -> Any:
        t = time.monotonic_ns()
        try:
            return await self._inner.place_orders(orders)
        finally:
            self.calls.append((t, time.monotonic_ns(), len(orders)))
            self.placed += len(orders)
            if self.placed >= self.expected:
                self.done.set()

    def reset(self) -> None:
        self.frames, self.calls, self.placed, self.done = [], [], 0, trio.Event()
        self.signing = []


def _config(work: Path, rest_url: str, ws_url: str) -> Path:
    from posmon.sim.lighter import credentials as cred

    path = work / "config.toml"
    path.write_text(f"""[daemon]
venue = "lighter"
store = "{work / "posmon.sqlite"}"
hedge_mode = false
log_level = "ERROR"
stale_stream_seconds = 600.0

[risk]
tp_pct = 20.0
sl_pct = {SL_PCT}

[api]
enabled = false

[lighter]
rest_url = "{rest_url}"
ws_url = "{ws_url}"
account_index = {cred.DEFAULT_ACCOUNT_INDEX}
api_key_index = {cred.DEFAULT_API_KEY_INDEX}
chain_id = {cred.DEFAULT_CHAIN_ID}
tier = "premium"
""")
    return path


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _summary(ms: Sequence[float]) -> dict[str, Any]:
    if not ms:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "count": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(_pct(ms, 0.9), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


async def _call(child: Child, cmd: str, **args: Any) -> dict[str, Any]:
    return await trio.to_thread.run_sync(lambda: child.call(cmd, **args))


async def _until(check: Any, limit_s: float) -> None:
    """Poll ``check`` (set-up only, never during a burst) until it holds; ``TooSlowError`` after ``limit_s``."""
    with trio.fail_after(limit_s):
        while not await check():  # noqa: ASYNC110 -- the state lives in another process: nothing to wait on
            await trio.sleep(0.05)


async def run_bursts(
    child: Child,
    work: Path,
    rest_url: str,
    ws_url: str,
    n: int,
    bursts: int,
    sign_threads: int | None,
    paced: bool = False,
) -> dict[str, Any]:
    from posmon.config import load_settings
    from posmon.daemon import run_daemon
    from posmon.logs import configure
    from posmon.metrics import Metrics
    from posmon.sim.lighter import credentials as cred
    from posmon.store.store import Store
    from posmon.venues import open_venue

    env = {"POSMON_LIGHTER_API_PRIVATE_KEY": cred.DEFAULT_API_PRIVATE_KEY}
    settings = load_settings(_config(work, rest_url, ws_url), env=env)
    configure(settings.daemon.log_level)
    store = Store.open(settings.daemon.store)
    samples: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    bursts_out: list[dict[str, Any]] = []
    sim_requests: dict[str, int] = {}
    threads: Any = None
    try:
        async with trio.open_nursery() as nursery, open_venue(settings, nursery, env=env) as venue:
            rest = venue.rest  # type: ignore[attr-defined]
            if sign_threads is not None and hasattr(rest, "sign_threads"):
                rest.sign_threads = sign_threads
            # Before parallel signing the adapter signed one transaction at a time (a thread hop each).
            threads = rest.sign_threads if hasattr(rest, "sign_threads") else "1 (one hop per tx)"
            timed = StampedVenue(venue, n, paced=paced)
            await nursery.start(
                lambda task_status: run_daemon(settings, timed, store, metrics=Metrics(), task_status=task_status)
            )  # type: ignore[arg-type]
            for b in range(bursts):
                await _call(child, "open")

                async def adopted() -> bool:
                    return len(store.open_tranches(venue="lighter")) >= n

                await _until(adopted, 60)
                await _call(child, "marks", price=str(ENTRY))  # every actor holds a mark before the move
                await trio.sleep(0.5)
                await _call(child, "stamps")  # forget the set-up's frames and requests
                timed.reset()
                interference = Interference([child.pid])
                moved = await _call(child, "marks", price=str(STOP))
                with trio.move_on_after(30):
                    await timed.done.wait()
                await trio.sleep(0.3)  # the last request reaches the simulator's log

                async def flat() -> bool:
                    return (await _call(child, "positions"))["open"] == 0

                await _until(flat, 30)
                got = await _call(child, "stamps")
                sim_requests = got["requests"]
                bursts_out.append(_burst(b, n, moved["t_ns"], got, timed, interference.result(), samples, requests))
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    to_tx = [s["frame_to_tx_ms"] for s in samples]
    router_to_tx = [s["router_to_tx_ms"] for s in samples if s["router_to_tx_ms"] is not None]
    return {
        "positions": n,
        "bursts": bursts,
        "sign_threads": threads,
        "rate_limits": "the tier's (premium)" if paced else "unlimited (the gateway paces nothing)",
        "sim_requests_total": sim_requests,
        "price_to_tx": _summary(to_tx),
        "router_to_tx": _summary(router_to_tx),
        "per_burst": bursts_out,
        "requests_per_burst": round(len(requests) / max(1, bursts), 2),
        "batch_sizes": sorted(len(r["txs"]) for r in requests),
        "missing": sum(b["missing"] for b in bursts_out),
    }


def _burst(
    index: int,
    n: int,
    moved_ns: int,
    got: dict[str, Any],
    timed: StampedVenue,
    load: dict[str, float],
    samples: list[dict[str, Any]],
    requests: list[dict[str, Any]],
) -> dict[str, Any]:
    # The stamps were cleared just before the move: the first frame written since is the move's (the marks are
    # published by the simulator's price pump after set_marks returns, so it is written after moved_ns).
    written = got["frames"][0] if got["frames"] else moved_ns
    arrived = timed.frames[0] if timed.frames else None
    seen: set[int] = set()
    mine = []
    for r in got["txs"]:
        if r["status"] != 200:
            continue
        requests.append(r)
        for tx in r["txs"]:
            if tx["coi"] and tx["coi"] not in seen:
                seen.add(tx["coi"])
                row = {
                    "frame_to_tx_ms": (r["t_ns"] - written) / 1e6,
                    "router_to_tx_ms": (r["t_ns"] - arrived) / 1e6 if arrived is not None else None,
                }
                samples.append(row)
                mine.append(row["frame_to_tx_ms"])
    gateway = [(c - arrived) / 1e6 for c, _, _ in timed.calls] if arrived is not None else []
    nonces = [tx["nonce"] for r in got["txs"] for tx in r["txs"]]
    return {
        "burst": index,
        "closes": len(seen),
        "missing": n - len(seen),
        "frame_to_tx": _summary(mine),
        "frame_to_router_ms": round((arrived - written) / 1e6, 2) if arrived is not None else None,
        "router_to_first_gateway_call_ms": round(min(gateway), 2) if gateway else None,
        "venue_calls": [{"orders": k, "ms_in_place_orders": round((a - c) / 1e6, 2)} for c, a, k in timed.calls],
        "requests": [{"path": r["path"].rsplit("/", 1)[1], "txs": len(r["txs"])} for r in got["txs"]],
        "signing_ms": [{"txs": k, "ms": round(ms, 2)} for k, ms in timed.signing],
        "nonces_consecutive": nonces == list(range(nonces[0], nonces[0] + len(nonces))) if nonces else None,
        "machine_load": load,
    }


async def _main(n: int, bursts: int, sign_threads: int | None, paced: bool, log_dir: Path) -> dict[str, Any]:
    child = Child("lighter-sim", ["-m", "bench.lighter_burst", "--serve-sim", str(n)], log_dir / "sim.log")
    try:
        ev = await trio.to_thread.run_sync(lambda: child.wait_event("serving", 60))
        if ev is None:
            raise RuntimeError(f"the Lighter simulator did not start; see {log_dir / 'sim.log'}")
        return await run_bursts(child, log_dir, ev["rest_url"], ev["ws_url"], n, bursts, sign_threads, paced)
    finally:
        await trio.to_thread.run_sync(child.close)


def run(*, smoke: bool = False, positions: int | None = None, bursts: int | None = None,
        sign_threads: int | None = None, paced: bool = False) -> dict[str, Any]:  # fmt: skip
    """One measurement (the ``lighter_burst`` phase of ``python -m bench``); returns its figures."""
    n = positions or (N_SMOKE if smoke else N_FULL)
    k = bursts or (BURSTS_SMOKE if smoke else BURSTS_FULL)
    with tempfile.TemporaryDirectory(prefix="posmon-lburst-") as work:
        started = time.monotonic()
        out = trio.run(_main, n, k, sign_threads, paced, Path(work))
    out["duration_s"] = round(time.monotonic() - started, 1)
    out["loadavg_1m_at_start"] = os.getloadavg()[0]
    return out


def table(r: dict[str, Any]) -> str:
    p, q = r["price_to_tx"], r["router_to_tx"]
    sizes = r["batch_sizes"]
    lines = [
        f"Lighter burst: {r['positions']} stop-outs in one frame x {r['bursts']} bursts (signing included; "
        f"sign threads {r['sign_threads']}; rate limits {r['rate_limits']})",
        f"  frame written -> close tx received: p50 {p['p50_ms']} / p90 {p['p90_ms']} / max {p['max_ms']} ms "
        f"({p['count']} closes, {r['missing']} missing)",
        f"  frame at router -> close tx received: p50 {q['p50_ms']} / max {q['max_ms']} ms",
        f"  requests per burst {r['requests_per_burst']}; txs per request {sizes[:1]}..{sizes[-1:]}",
        "  others CPU per burst: " + ", ".join(f"{b['machine_load']['others_cpu_pct']}%" for b in r["per_burst"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lighter_burst", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help=f"{N_SMOKE} positions, {BURSTS_SMOKE} burst")
    parser.add_argument("--positions", type=int, help=f"stop-outs per burst (default {N_FULL})")
    parser.add_argument("--bursts", type=int, help=f"bursts (default {BURSTS_FULL})")
    parser.add_argument("--sign-threads", type=int, help="the adapter's signing threads (default: its own)")
    parser.add_argument("--paced", action="store_true", help="keep the premium tier's rate budget in the gateway")
    parser.add_argument("--serve-sim", type=int, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.serve_sim is not None:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(serve_sim, args.serve_sim)
        return
    for value, name in (
        (args.positions, "--positions"),
        (args.bursts, "--bursts"),
        (args.sign_threads, "--sign-threads"),
    ):
        if value is not None and value < 1:
            parser.exit(2, f"{name} must be >= 1, got {value}\n")
    if args.positions is not None and args.positions > 100:
        parser.exit(2, f"--positions at most 100 (one market each), got {args.positions}\n")
    out = run(
        smoke=args.smoke, positions=args.positions, bursts=args.bursts, sign_threads=args.sign_threads, paced=args.paced
    )
    print(table(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
