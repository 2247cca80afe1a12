"""Mark-price paths made from a real market recording instead of invented random walks.

A candle becomes four ticks, a path is rescaled to any symbol's price level, and
one recording is fanned out over many symbols at different offsets so they do
not move in lockstep.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from decimal import Decimal
from importlib import resources

DEFAULT_RECORDING = "XRP_USDT_USDT-5m-futures.json"

Candle = tuple[int, Decimal, Decimal, Decimal, Decimal]  # (open time ms, open, high, low, close)


def load_candles(name: str = DEFAULT_RECORDING) -> list[Candle]:
    """Candles of a packaged recording (``[ts_ms, open, high, low, close, volume]`` rows); volume dropped."""
    if not name.endswith(".json"):
        name += ".json"
    text = (resources.files("posmon.sim") / "data" / name).read_text(encoding="utf-8")
    rows = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    return [(int(ts), Decimal(o), Decimal(h), Decimal(lo), Decimal(c)) for ts, o, h, lo, c, *_ in rows]


def candles_to_ticks(candles: Sequence[Candle]) -> list[Decimal]:
    """Four ticks per candle: open, the extreme met first, the other extreme, close.

    A rising candle is taken to visit its low before its high, a falling one its
    high before its low: the usual backtesting assumption, and the one that makes
    the path continuous with the close.
    """
    ticks: list[Decimal] = []
    for _, open_, high, low, close in candles:
        first, second = (low, high) if close >= open_ else (high, low)
        ticks.extend((open_, first, second, close))
    return ticks


def rescale(ticks: Sequence[Decimal], base: Decimal, tick_size: Decimal) -> list[Decimal]:
    """Scale the path so its first tick is ``base``, on the tick grid, never at or below zero."""
    if not ticks:
        return []
    if ticks[0] <= 0 or base <= 0 or tick_size <= 0:
        raise ValueError("rescale needs a positive first tick, base and tick size")
    factor = base / ticks[0]
    return [max((t * factor / tick_size).to_integral_value() * tick_size, tick_size) for t in ticks]


def fan_out(
    ticks: Sequence[Decimal],
    symbols: Mapping[str, tuple[Decimal, Decimal]],
    seed: int | str,
) -> dict[str, list[Decimal]]:
    """Give each symbol (base price, tick size) its own rescaled view of one recording.

    The recording is made cyclic by appending it backwards (forward then back, so
    there is no jump where it wraps); each symbol starts at its own offset in that
    loop and gets the whole loop, so ``replay(..., loop=True)`` never jumps
    either. Offsets depend on the seed and the symbol names only, and are
    distinct while there are fewer symbols than ticks in the loop.
    """
    cycle = [*ticks, *ticks[-2:0:-1]]
    if not cycle:
        return {s: [] for s in symbols}
    used: set[int] = set()
    offsets: dict[str, int] = {}
    for symbol in sorted(symbols):
        offset = random.Random(f"{seed}:{symbol}").randrange(len(cycle))
        if len(used) < len(cycle):
            while offset in used:
                offset = (offset + 1) % len(cycle)
        used.add(offset)
        offsets[symbol] = offset
    out: dict[str, list[Decimal]] = {}
    for symbol, (base, tick_size) in symbols.items():
        k = offsets[symbol]
        out[symbol] = rescale(cycle[k:] + cycle[:k], base, tick_size)
    return out
