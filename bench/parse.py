"""``python -m bench.parse``: what one hot frame costs to parse, field by field (before) and typed (msgspec, now).

In-process micro-benchmark on real-shaped inputs built from the packaged XRP/USDT recording (the same prices the
benchmark's plan fans out over its symbols):

- ``aster_marks_doc``: a 1,008-symbol ``!markPrice@arr`` frame with every field the doc lists (e, E, s, p, i, P,
  r, T); ``aster_marks_sim``: the same with only e, E, s, p (what the benchmark's simulator sends);
- ``lighter_market_stats``: a 1,008-market ``update/market_stats`` (``market_stats:all``) frame, shaped as
  posmon's Lighter simulator writes it;
- ``aster_open_orders``: the start-up ``openOrders`` answer (20,000 orders, the simulator's order objects);
- ``aster_position_risk``: a whole-account ``positionRisk`` answer (1,008 symbols x 2 sides, half of them open).

Three figures per input, each the best of several batches (the machine is shared: the minimum is the least
disturbed): ``before_ms``, the field-by-field path as it was (orjson + a regex per number: ``fields.plain_decimal``
switched off), ``by_field_ms``, the field-by-field path today (it now reads plain numbers fast too, and still
decides every frame the typed path does not take) and ``typed_ms``, the entry point the daemon calls (msgspec
structs). Every input is checked to give the same result on all three paths before it is timed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson

from bench.plan import symbol_names
from posmon.domain.orders import OrderSide, OrderState, OrderStatus, OrderType
from posmon.exchange import fields
from posmon.exchange.aster import codec as aster
from posmon.exchange.lighter import codec as lighter
from posmon.exchange.lighter.markets import Market, MarketTable
from posmon.sim.aster.orders import order_json
from posmon.sim.paths import candles_to_ticks, fan_out, load_candles

EVENT_MS = 1_700_000_000_123
SYMBOLS = 1_000
SPARE = 8  # 1,008 symbols in a frame, as in the benchmark's plan


def mark_paths(n_symbols: int, steps: int) -> dict[str, list[Decimal]]:
    """Each symbol's first ``steps`` marks: the recording rescaled to price level 100, tick 0.01, per-symbol offset."""
    traded, spare = symbol_names(max(n_symbols - SPARE, 1), min(SPARE, n_symbols - 1))
    ticks = candles_to_ticks(load_candles())
    paths = fan_out(ticks, {s: (Decimal(100), Decimal("0.01")) for s in traded + spare}, seed=1)
    return {s: p[:steps] for s, p in paths.items()}


def aster_mark_frame(paths: dict[str, list[Decimal]], step: int, *, doc_fields: bool = True) -> bytes:
    items = []
    for s, path in paths.items():
        p = format(path[step], "f")
        entry: dict[str, Any] = {"e": "markPriceUpdate", "E": EVENT_MS + step, "s": s, "p": p}
        if doc_fields:
            entry |= {"i": p, "P": p, "r": "0.00010000", "T": EVENT_MS - EVENT_MS % 3_600_000 + 3_600_000}
        items.append(entry)
    return orjson.dumps(items)


def lighter_markets(paths: dict[str, list[Decimal]]) -> MarketTable:
    return MarketTable.of(
        [Market(market_id=i, symbol=s, size_decimals=3, price_decimals=2) for i, s in enumerate(paths)]
    )


def lighter_stats_frame(paths: dict[str, list[Decimal]], step: int) -> bytes:
    """``update/market_stats`` for every market, each entry as ``posmon.sim.lighter.views.market_stats`` writes it."""
    stats = {}
    for i, (s, path) in enumerate(paths.items()):
        mark = path[step]
        price = format(mark, "f")
        stats[str(i)] = {
            "symbol": s, "market_id": i, "index_price": price, "mark_price": price, "last_trade_price": price,
            "open_interest": "0", "current_funding_rate": "0.0000", "funding_rate": "0.0000",
            "funding_timestamp": EVENT_MS - EVENT_MS % 3_600_000 + 3_600_000, "daily_base_token_volume": 0,
            "daily_quote_token_volume": 0, "daily_price_low": float(mark), "daily_price_high": float(mark),
            "daily_price_change": 0,
        }  # fmt: skip
    return orjson.dumps(
        {"channel": "market_stats:all", "market_stats": stats, "type": "update/market_stats", "timestamp": EVENT_MS}
    )


def open_orders_answer(paths: dict[str, list[Decimal]], count: int) -> bytes:
    """``count`` resting TP limits and SL stop-markets over the symbols, as the Aster simulator answers them."""
    symbols = list(paths)
    orders = []
    for n in range(count):
        s = symbols[n % len(symbols)]
        mark = paths[s][0]
        tp = n % 2 == 0
        state = OrderState(
            client_id=f"pm-{n // 2}-{'tp' if tp else 'sl'}-1",
            order_id=str(10_000_000 + n),
            symbol=s,
            side=OrderSide.SELL,
            position_side="LONG",
            type=OrderType.LIMIT if tp else OrderType.STOP_MARKET,
            status=OrderStatus.NEW,
            qty=Decimal("1.234"),
            filled_qty=Decimal(0),
            avg_price=Decimal(0),
            price=(mark * Decimal("1.5")).quantize(Decimal("0.01")) if tp else None,
            stop_price=None if tp else (mark / 2).quantize(Decimal("0.01")),
            reduce_only=False,
        )
        orders.append(order_json(state, None, None))
    return orjson.dumps(orders)


def position_risk_answer(paths: dict[str, list[Decimal]]) -> bytes:
    """Both sides of every symbol (hedge mode), every other one open, keys as the Aster simulator writes them."""
    rows = []
    for n, (s, path) in enumerate(paths.items()):
        mark = format(path[0], "f")
        for side, amount in (("LONG", "1.5" if n % 2 else "0"), ("SHORT", "-2.25" if n % 2 else "0")):
            rows.append({
                "symbol": s, "positionAmt": amount, "entryPrice": mark if amount != "0" else "0",
                "breakEvenPrice": mark, "markPrice": mark, "unRealizedProfit": "0", "liquidationPrice": "0",
                "leverage": "20", "maxNotionalValue": "1000000", "marginType": "cross", "isolatedMargin": "0",
                "isAutoAddMargin": "false", "positionSide": side, "notional": "0", "isolatedWallet": "0",
                "updateTime": EVENT_MS,
            })  # fmt: skip
    return orjson.dumps(rows)


@contextmanager
def regex_numbers() -> Iterator[None]:
    """The number checks as they were before the fast path (a regex and a digit walk for every number)."""
    saved = fields.plain_decimal
    fields.plain_decimal = lambda value: None  # type: ignore[assignment]
    try:
        yield
    finally:
        fields.plain_decimal = saved  # type: ignore[assignment]


def best_ms(fns: list[Callable[[], object]], *, batches: int, per_batch: int) -> list[float]:
    """Each function's fastest batch, as ms per call; batches alternate between the functions so that a busy
    moment of the (shared) machine falls on all of them alike. Garbage collection stays on, as in the daemon."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()
    for _ in range(batches):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(per_batch):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t0) / per_batch)
    return [round(b * 1000, 4) for b in best]


def _same(a: list[Any], b: list[Any]) -> bool:
    """Equal, Decimal exponents included (``Decimal("1.50") == Decimal("1.5")`` would hide a difference)."""
    return repr(a) == repr(b)


def measure(*, smoke: bool = False) -> dict[str, Any]:
    n_symbols = 40 if smoke else SYMBOLS + SPARE
    n_orders = 200 if smoke else 20_000
    batches, per_batch = (2, 3) if smoke else (15, 5)
    paths = mark_paths(n_symbols, 2)
    markets = lighter_markets(paths)
    inputs: dict[str, tuple[int, bytes, Callable[[], list[Any]], Callable[[], list[Any]]]] = {}
    for name, doc in (("aster_marks_doc", True), ("aster_marks_sim", False)):
        frame = aster_mark_frame(paths, 1, doc_fields=doc)
        inputs[name] = (
            n_symbols,
            frame,
            lambda f=frame: aster.parse_price_frame(f),
            lambda f=frame: aster.parse_price_frame_by_field(f),
        )
    stats = lighter_stats_frame(paths, 1)
    inputs["lighter_market_stats"] = (
        n_symbols,
        stats,
        lambda: lighter.parse_price_frame(stats, markets, 0.0),
        lambda: lighter.parse_price_frame_by_field(stats, markets, 0.0),
    )
    orders = open_orders_answer(paths, n_orders)
    inputs["aster_open_orders"] = (
        n_orders,
        orders,
        lambda: aster.parse_orders(orders),
        lambda: aster.parse_orders(aster.load_json(orders, "open orders answer")),
    )
    risk = position_risk_answer(paths)
    inputs["aster_position_risk"] = (
        2 * n_symbols,
        risk,
        lambda: aster.parse_positions(risk),
        lambda: aster.parse_positions(aster.load_json(risk, "positionRisk answer")),
    )
    out: dict[str, Any] = {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "gc_enabled": gc.isenabled(),
    }
    for name, (items, data, typed, by_field) in inputs.items():
        calls = max(1, per_batch * 1008 // max(items, 1008))  # about as many items per batch for every input
        with regex_numbers():
            before_result = by_field()
        result = typed()
        if not (_same(result, by_field()) and _same(result, before_result)):
            raise AssertionError(f"{name}: the typed path and the field-by-field path disagree")

        def before_path(by_field: Callable[[], list[Any]] = by_field) -> None:
            with regex_numbers():
                by_field()

        before, by, new = best_ms([before_path, by_field, typed], batches=batches, per_batch=calls)
        out[name] = {
            "items": items,
            "bytes": len(data),
            "before_ms": before,
            "by_field_ms": by,
            "typed_ms": new,
            "speedup": round(before / new, 2) if new else None,
            "typed_us_per_item": round(new * 1000 / items, 3),
        }
    return out


def table(figures: dict[str, Any]) -> list[str]:
    """The rows ``bench/report.py`` prints (and ``python -m bench.parse`` too)."""
    from bench.report import _grid

    rows = [
        [name, f["items"], f["before_ms"], f["by_field_ms"], f["typed_ms"], f"{f['speedup']:g}x"]
        for name, f in figures.items()
        if isinstance(f, dict)
    ]
    return [
        "Parsing one input in-process (best of several batches; before = orjson + a regex per number):",
        *_grid(["input", "items", "before ms", "by field ms", "typed ms", "before/typed"], rows),
        f"  load average {figures['load_average_1m']} on {figures['cpu_count']} cores while measuring",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.parse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes (seconds)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(smoke=args.smoke)
    print(json.dumps(figures, indent=2) if args.json else "\n".join(table(figures)))


if __name__ == "__main__":
    main()
