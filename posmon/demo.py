"""``posmon demo``: a short scripted session on the simulated exchange, narrated as it goes.

Another program opens positions on a few symbols; the recording replays fast;
posmon protects every tranche, takes exits, and at the end the demo prints what
is still protected, what exited why, and the realized PnL.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

import trio

from posmon.actors.messages import Notice
from posmon.config import Settings
from posmon.daemon import run_daemon
from posmon.domain.orders import Side
from posmon.sim.exchange import SimExchange
from posmon.sim.session import build_exchange, replay_paths
from posmon.store.store import Store
from posmon.venues import open_venue


class _DemoRisk(TypedDict):
    tp_pct: Decimal
    sl_pct: Decimal
    tranche_pnl_increment_pct: Decimal
    max_hold_seconds: int


DEMO_RISK: _DemoRisk = {
    "tp_pct": Decimal("0.8"),
    "sl_pct": Decimal("3"),
    "tranche_pnl_increment_pct": Decimal("1.5"),
    "max_hold_seconds": 12,
}
OPENING = (("BTCUSDT", Side.LONG), ("ETHUSDT", Side.SHORT), ("XRPUSDT", Side.LONG))


def demo_settings(settings: Settings, store: Path) -> Settings:
    risk = dataclasses.replace(settings.risk, **DEMO_RISK)
    daemon = dataclasses.replace(settings.daemon, store=str(store))
    sim = dataclasses.replace(settings.sim, symbols=tuple(sorted({*settings.sim.symbols, *(s for s, _ in OPENING)})))
    return dataclasses.replace(settings, risk=risk, risk_symbols={}, daemon=daemon, sim=sim)


async def _narrate(notices: trio.MemoryReceiveChannel[Notice], started: float) -> None:
    async for n in notices:
        flag = "  !! " if n.needs_human else "     "
        print(f"{time.monotonic() - started:6.1f}s{flag}{n.symbol:<9} {n.side:<5} {n.kind:<17} {n.text}", flush=True)


def _how(settings: Settings) -> str:
    if settings.daemon.venue == "aster":
        return "the embedded Aster-protocol simulator, over HTTP and websockets on 127.0.0.1"
    return "the simulated exchange, in-process"


def _summary(store: Store, exchange: SimExchange, venue: str) -> str:
    lines = ["", "=== posmon demo summary ==="]
    open_orders = exchange.engine.open_orders()
    lines.append(f"{'symbol':<9} {'side':<5} {'tr':>2} {'qty':>10} {'entry':>12} {'TP':>12} {'SL':>12}  protected")
    for t in store.open_tranches(venue):
        ids = {o.client_id.split("-")[2][0] for o in open_orders if o.client_id.startswith(f"pm-{t.id}-")}
        prot = "TP+SL on exchange" if {"T", "S"} <= ids else ("closing" if t.closing else f"partial {sorted(ids)}")
        lines.append(
            f"{t.symbol:<9} {t.side.value:<5} {t.index:>2} {t.qty:>10} {t.entry:>12} {t.tp:>12} {t.sl:>12}  {prot}"
        )
    closed = store.closed_tranches(venue)
    reasons = Counter(r["close_reason"] for r in closed)
    pnl = sum((Decimal(r["realized_pnl"]) for r in closed), Decimal(0))
    lines.append(f"exits: {dict(reasons) or 'none'}")
    for r in closed:
        entry = format(Decimal(r["entry"]).quantize(Decimal("0.000001")).normalize(), "f")
        lines.append(
            f"  {r['symbol']:<9} {r['side']:<5} tranche {r['idx']} {r['close_reason']:<8} "
            f"entry {entry} pnl {Decimal(r['realized_pnl']):+.4f}"
        )
    lines.append(f"realized PnL: {pnl:+.4f} USDT over {len(closed)} closed tranches")
    lines.append(f"calls the exchange served: {dict(exchange.calls)}")
    return "\n".join(lines)


async def run_demo(settings: Settings, seconds: float = 20.0) -> None:
    with tempfile.TemporaryDirectory(prefix="posmon-demo-") as tmp:
        settings = demo_settings(settings, Path(tmp) / "demo.sqlite")
        exchange = build_exchange(settings)
        paths = replay_paths(settings)
        exchange.set_marks({s: p[0] for s, p in paths.items()})
        store = Store.open(settings.daemon.store)
        started = time.monotonic()
        print(
            f"posmon demo: replaying {settings.sim.recording} over {', '.join(settings.sim.symbols)} "
            f"for {seconds:.0f}s (TP {DEMO_RISK['tp_pct']}%, SL {DEMO_RISK['sl_pct']}%, "
            f"new tranche at -{DEMO_RISK['tranche_pnl_increment_pct']}%, max hold {DEMO_RISK['max_hold_seconds']}s)"
        )
        try:
            async with trio.open_nursery() as nursery, open_venue(settings, nursery, exchange=exchange) as venue:
                print(f"posmon demo: trading {venue.name} ({_how(settings)})")
                listen_send, listen_recv = trio.open_memory_channel[Notice](1000)
                nursery.start_soon(_narrate, listen_recv, started)
                await nursery.start(
                    lambda task_status: run_daemon(
                        settings, venue, store, notice_listeners=[listen_send], task_status=task_status
                    )
                )
                for symbol, side in OPENING:
                    qty = exchange.entry_qty(symbol, Decimal(1000))
                    assert qty is not None
                    exchange.external_entry(symbol, side, qty)
                nursery.start_soon(exchange.replay, {s: p[1:] for s, p in paths.items()}, 0.01)
                nursery.start_soon(
                    exchange.run_trader, list(settings.sim.symbols), 1.5, settings.sim.seed, Decimal(500)
                )
                await trio.sleep(seconds)
                nursery.cancel_scope.cancel()
            print(_summary(store, exchange, venue.name))
        finally:
            store.close()
