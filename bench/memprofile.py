"""Where a tranche's resident memory goes: real ``PositionActor`` state loaded from a seeded store, measured.

``python -m bench.memprofile [TRANCHES]`` (default 20,000) seeds a store from a ``bench.plan`` (1,000 symbols),
builds one ``PositionActor`` per (symbol, side) and lets each load its tranches and orders from the store exactly
as a starting daemon does (``_load``), then reports

- tracemalloc's net allocation per tranche, by allocation site;
- a census of the objects reachable from the actors, by type (``sys.getsizeof``), per tranche.

No network, no trio run: it isolates what the design keeps per idle tranche from everything else a process holds.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from bench.plan import PlanSpec, build_plan
from bench.runner import seed_store
from posmon.actors.position import ActorConfig, ActorLinks, PositionActor
from posmon.actors.price_slot import PriceSlot
from posmon.domain.orders import WorkingType
from posmon.metrics import Metrics
from posmon.store.store import Store


def census(roots: list[Any], *, skip_shared: bool = True) -> tuple[Counter[str], Counter[str]]:
    """Bytes and counts by type of every object reachable from ``roots`` (each counted once); ``skip_shared``:
    do not follow shared services (the store, metrics, channels, price slots), to isolate per-tranche state."""
    seen: set[int] = set()
    size: Counter[str] = Counter()
    count: Counter[str] = Counter()
    stack = list(roots)
    skip = (type, type(sys), type(census))
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        name = type(obj).__name__
        size[name] += sys.getsizeof(obj)
        count[name] += 1
        if skip_shared and isinstance(
            obj, Store | Metrics | trio.MemorySendChannel | trio.MemoryReceiveChannel | PriceSlot
        ):
            continue  # shared services, not per-tranche state
        stack.extend(gc.get_referents(obj))
    return size, count


def measure(tranches: int) -> dict[str, Any]:
    symbols = 1000
    per_side = max(1, tranches // (2 * symbols))
    plan = build_plan(PlanSpec(symbols=symbols, idle_per_side=per_side))
    work = Path(tempfile.mkdtemp(prefix="posmon-memprofile-"))
    seed_store(work / "posmon.sqlite", plan)
    store = Store.open(work / "posmon.sqlite")
    metrics = Metrics()
    keys = sorted({(t.symbol, t.side) for t in plan.tranches})
    links = []
    for _ in keys:
        send, recv = trio.open_memory_channel[Any](0)
        gw_send, _gw_recv = trio.open_memory_channel[Any](0)
        n_send, _n_recv = trio.open_memory_channel[Any](0)
        links.append(
            ActorLinks(
                inbox=recv,
                self_send=send,
                slot=PriceSlot(send),
                gateway=gw_send,
                notices=n_send,
                store=store,
                metrics=metrics,
                clock=lambda: 0.0,
            )
        )
    gc.collect()
    tracemalloc.start(8)
    before = tracemalloc.take_snapshot()
    actors = []
    for (symbol, side), link in zip(keys, links, strict=True):
        cfg = ActorConfig(
            venue="aster",
            symbol=symbol,
            side=side,
            rules=plan.rules[symbol],
            risk=plan.spec.risk,
            instant_tp=True,
            working_type=WorkingType.MARK_PRICE,
            hedge_mode=True,
            prefix="pm",
        )
        actor = PositionActor(cfg, link)
        actor._load()  # what run() does first
        actors.append(actor)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    n = sum(len(a.tranches) for a in actors)
    diff = after.compare_to(before, "lineno")
    net = sum(d.size_diff for d in diff)
    sites = [
        (str(d.traceback[0]).replace(str(Path.cwd()) + "/", ""), round(d.size_diff / n, 1))
        for d in diff[:15]
        if d.size_diff > 0
    ]
    size, count = census(actors)
    types = [(name, round(b / n, 1), round(count[name] / n, 2)) for name, b in size.most_common(15)]
    store.close()
    return {
        "tranches": n,
        "actors": len(actors),
        "bytes_per_tranche_tracemalloc": round(net / n, 1),
        "bytes_per_tranche_census": round(sum(size.values()) / n, 1),
        "by_site": sites,
        "by_type": types,
    }


def main(argv: list[str]) -> None:
    out = measure(int(argv[0]) if argv else 20_000)
    print(
        f"{out['tranches']:,} tranches in {out['actors']:,} actors: "
        f"{out['bytes_per_tranche_tracemalloc']:,} B/tranche allocated (tracemalloc), "
        f"{out['bytes_per_tranche_census']:,} B/tranche reachable from the actors (getsizeof census)"
    )
    print("\nby allocation site (bytes per tranche):")
    for site, b in out["by_site"]:
        print(f"  {b:8.1f}  {site}")
    print("\nby type (bytes per tranche, objects per tranche):")
    for name, b, c in out["by_type"]:
        print(f"  {b:8.1f}  {c:6.2f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
