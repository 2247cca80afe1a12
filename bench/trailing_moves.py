"""How often a trailing stop moves on real recordings: the cancel-replace rate Aster would see per tranche.

posmon trails with its own STOP_MARKET (``domain.exitplan``): every move is one new stop placed and the old one
cancelled, paced by ``trailing_min_step_pct``. This replays real price recordings through ``moved_stop`` (as the
position actor does, woken only at ``stop_gate``) and counts the moves per hour a trailing tranche is held.

A tranche is opened at the first tick of every hour of a recording, LONG and SHORT, trailing at once
(``trailing_activation_pct`` 0: the busiest case) and held until its stop is hit or the recording ends. Prices are
rescaled to a BTC-like level (45,000 on a 0.1 tick, Aster's BTCUSDT grid). Candles become four ticks each (open,
the extreme met first, the other, close), so candle recordings undercount the moves a 1 s mark stream would make
inside a candle; the trade recording is tick by tick.

    .venv/bin/python -m bench.trailing_moves [--data ../shared/data] [--json FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from posmon.domain.exitplan import make_plan, moved_stop, stop_gate
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import Risk, Tranche, new_tranche

RULES = SymbolRules("BTCUSDT", tick_size=Decimal("0.1"), step_size=Decimal("0.001"), min_qty=Decimal("0.001"))
BASE = Decimal(45000)
CALLBACKS = ("0.5", "1")
MIN_STEPS = ("0", "0.1", "0.25")
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Recording:
    name: str
    resolution: str
    ticks: list[tuple[float, Decimal]]  # (seconds, price), rescaled


def _rescaled(ticks: list[tuple[float, Decimal]]) -> list[tuple[float, Decimal]]:
    factor = BASE / ticks[0][1]
    tick = RULES.tick_size
    return [(t, max((p * factor).quantize(tick), tick)) for t, p in ticks]


def _candles(path: Path, seconds: float) -> list[tuple[float, Decimal]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        rows = json.load(f, parse_float=Decimal, parse_int=Decimal)
    out: list[tuple[float, Decimal]] = []
    for ts, o, h, lo, c, *_ in rows:
        first, second = (lo, h) if c >= o else (h, lo)
        t0 = int(ts) / 1000
        out += [(t0 + seconds * i / 4, Decimal(p)) for i, p in enumerate((o, first, second, c))]
    return out


def _trades(path: Path) -> list[tuple[float, Decimal]]:
    with gzip.open(path, "rt") as f:
        rows = json.load(f, parse_float=Decimal, parse_int=Decimal)
    return [(int(r[0]) / 1000, Decimal(r[4])) for r in rows]


def recordings(data: Path) -> list[Recording]:
    found = []
    for name, resolution, load in (
        ("XRP_USDT_USDT-5m-futures.json", "5m candles", lambda p: _candles(p, 300)),
        ("UNITTEST_BTC-1m.json", "1m candles", lambda p: _candles(p, 60)),
        ("XRP_ETH-trades.json.gz", "trades", _trades),
    ):
        path = data / name
        if path.exists():
            found.append(Recording(name, resolution, _rescaled(load(path))))
    return found


def _opened(side: Side, price: Decimal, callback: str, step: str) -> Tranche:
    plan = make_plan(trailing_activation_pct=0, trailing_callback_pct=callback, trailing_min_step_pct=step)
    risk = Risk(tp_pct=Decimal(50), sl_pct=Decimal(10), plan=plan)
    return new_tranche(
        id=1,
        venue="bench",
        symbol="BTCUSDT",
        side=side,
        index=0,
        qty=Decimal(1),
        price=price,
        now=0.0,
        risk=risk,
        rules=RULES,
    )


def _run(
    ticks: Sequence[tuple[float, Decimal]], start: int, side: Side, callback: str, step: str
) -> tuple[float, list[float]]:
    """(hours held, times of the moves) of one tranche opened at ``ticks[start]``."""
    t = _opened(side, ticks[start][1], callback, step)
    s = side.sign
    gate = stop_gate(t, RULES)
    moves: list[float] = []
    for at, mark in ticks[start + 1 :]:
        if s * (t.sl - mark) >= 0:  # the stop is hit
            return (at - ticks[start][0]) / HOUR, moves
        if gate is not None and s * (mark - gate) >= 0:
            moved = moved_stop(t, mark, RULES)
            if moved is not None:
                t = moved
                moves.append(at)
                gate = stop_gate(t, RULES)
            else:  # as the actor's regate: only a better mark looks again
                gate = mark + s * Decimal("1e-9")
    return (ticks[-1][0] - ticks[start][0]) / HOUR, moves


def _max_in_an_hour(moves: list[float]) -> int:
    best, lo = 0, 0
    for hi, at in enumerate(moves):
        while at - moves[lo] >= HOUR:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def measure(rec: Recording) -> list[dict[str, object]]:
    ticks = rec.ticks
    starts, hour = [], None
    for i, (at, _) in enumerate(ticks[:-1]):
        if hour is None or at - hour >= HOUR:
            starts.append(i)
            hour = at
    rows: list[dict[str, object]] = []
    for callback in CALLBACKS:
        for step in MIN_STEPS:
            held = 0.0
            total = 0
            burst = 0
            per: list[float] = []
            for side in Side:
                for i in starts:
                    hours, moves = _run(ticks, i, side, callback, step)
                    held += hours
                    total += len(moves)
                    burst = max(burst, _max_in_an_hour(moves))
                    if hours >= 0.25:
                        per.append(len(moves) / hours)
            rows.append(
                {
                    "recording": rec.name,
                    "resolution": rec.resolution,
                    "callback_pct": callback,
                    "min_step_pct": step,
                    "tranches": 2 * len(starts),
                    "mean_hours_held": round(held / (2 * len(starts)), 2),
                    "moves_per_hour": round(total / held, 2) if held else 0.0,
                    "p95_moves_per_hour": round(statistics.quantiles(per, n=20)[-1], 1) if len(per) >= 20 else None,
                    "max_moves_in_one_hour": burst,
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.trailing_moves", description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "data", help="the recordings")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    recs = recordings(args.data)
    if not recs:
        print(f"no recordings found in {args.data}", file=sys.stderr)
        return 2
    rows = [row for rec in recs for row in measure(rec)]
    head = [*("recording", "resolution", "callback_pct", "min_step_pct", "tranches", "mean_hours_held")]
    head += ["moves_per_hour", "p95_moves_per_hour", "max_moves_in_one_hour"]
    print(" | ".join(head))
    for row in rows:
        print(" | ".join(str(row[k]) for k in head))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
