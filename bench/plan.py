"""The benchmark's world, derived deterministically from a ``PlanSpec``: symbols, price paths, tranches, triggers.

Both the simulator process (which puts the positions and TP/SL orders on the exchange) and the runner (which
writes the same tranches and orders into the daemon's store) build the plan from the same spec, so the two
agree without shipping 100,000 rows between processes; ``Plan.fingerprint`` checks that they did.

Price paths are the packaged XRP/USDT 5-minute futures recording (the same file as
``/work/shared/data/XRP_USDT_USDT-5m-futures.json``), four ticks per candle, made cyclic and started at a
different offset per symbol and rescaled to the symbol's price level exactly as ``posmon.sim.paths
.fan_out`` does, but only for the steps a run needs (``fan_out`` would build every symbol's whole loop).

Step 0 is the starting mark. The steps after it are split into *windows* (one per latency run). Every
(symbol, side) holds:

- ``idle_per_side`` idle tranches whose TP lies beyond every mark of the whole path, so they never trigger;
- for each window, some *trigger* tranches whose TP is a record high (LONG) or record low (SHORT) the path
  first reaches at a known step inside the window: that step's frame triggers exactly those tranches;
- optionally one *probe* tranche (LONG) whose TP lies just above the whole path's high and below every idle
  TP: a throughput run spikes one frame's mark to the probe's TP to measure tick-to-order under load.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from posmon.domain.orders import Side, SymbolRules, WorkingType
from posmon.domain.protection import LocalState, OrderRecord, protection_orders
from posmon.domain.tranche import Risk, Tranche, exit_prices
from posmon.sim.markets import market, rules_for
from posmon.sim.paths import DEFAULT_RECORDING, candles_to_ticks, load_candles, rescale

PREFIX = "pm"
VENUE = "aster"
OPENED_AT = 1_700_000_000.0  # a fixed time, so both processes build identical tranches


@dataclass(frozen=True, slots=True)
class Window:
    """``steps`` consecutive price steps of one latency run and how many triggers to plant in them."""

    name: str
    steps: int
    triggers: int


@dataclass(frozen=True, slots=True)
class PlanSpec:
    symbols: int  # symbols holding tranches
    idle_per_side: int  # idle tranches per (symbol, side)
    windows: tuple[Window, ...] = ()
    probes: int = 0  # probe tranches (one per symbol, LONG), for throughput runs
    spare_symbols: int = 0  # listed symbols without tranches, for the REST-call scenarios
    seed: int = 7
    recording: str = DEFAULT_RECORDING
    qty: str = "0.1"  # every tranche's quantity (made-up rules: step 0.001, price ~100: 10 USDT notional)
    tp_pct: str = "1.0"
    sl_pct: str = "50.0"  # the specification's example; keeps exchange-side stops far from every path
    max_triggers_per_key: int = 3

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanSpec:
        data = dict(data)
        data["windows"] = tuple(Window(**w) for w in data.get("windows", ()))
        return cls(**data)

    @property
    def total_steps(self) -> int:
        return 1 + sum(w.steps for w in self.windows)

    @property
    def max_per_key(self) -> int:
        """Tranches a (symbol, side) can hold at most: the daemon's ``max_tranches_per_symbol_side`` must allow it."""
        triggers = self.max_triggers_per_key if self.windows else 0
        return self.idle_per_side + triggers + (1 if self.probes else 0)

    @property
    def risk(self) -> Risk:
        return Risk(tp_pct=Decimal(self.tp_pct), sl_pct=Decimal(self.sl_pct), max_tranches=self.max_per_key)


@dataclass(frozen=True, slots=True)
class Probe:
    tranche_id: int
    symbol: str
    price: str  # the spike that triggers it (its TP), as the wire writes it


@dataclass(slots=True)
class Plan:
    spec: PlanSpec
    symbols: list[str]  # traded, then spare
    spare: list[str]
    rules: dict[str, SymbolRules]
    paths: dict[str, list[Decimal]]  # symbol -> mark at each step
    tranches: list[Tranche] = field(default_factory=list)  # as the daemon protects them (seq 1)
    orders: list[OrderRecord] = field(default_factory=list)  # their TP and SL, LIVE
    trigger_step: dict[int, int] = field(default_factory=dict)  # tranche id -> step whose frame triggers it
    window_of_step: dict[int, str] = field(default_factory=dict)
    window_range: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (first, last) step
    probes: list[Probe] = field(default_factory=list)
    candidates: dict[str, int] = field(default_factory=dict)  # window -> trigger candidates found

    @property
    def traded(self) -> list[str]:
        return self.symbols[: self.spec.symbols]

    def positions(self) -> Iterator[tuple[str, Side, Decimal]]:
        """(symbol, side, quantity held) of every position the tranches make up."""
        held: dict[tuple[str, Side], Decimal] = defaultdict(Decimal)
        for t in self.tranches:
            held[(t.symbol, t.side)] += t.qty
        for (symbol, side), qty in held.items():
            yield symbol, side, qty

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for t in self.tranches:
            h.update(f"{t.id}|{t.symbol}|{t.side.value}|{t.qty}|{t.tp}|{t.sl};".encode())
        for tid, step in sorted(self.trigger_step.items()):
            h.update(f"{tid}@{step};".encode())
        return h.hexdigest()[:16]

    def price_text(self, symbol: str, step: int) -> str:
        return format(self.paths[symbol][step], "f")


def symbol_names(n: int, spare: int) -> tuple[list[str], list[str]]:
    """Made-up names (the simulator gives them tick 0.01, step 0.001, base price 100)."""
    traded = [f"S{i:04d}USDT" for i in range(n)]
    spares = [f"X{i:03d}USDT" for i in range(spare)]
    return traded, spares


def _paths(symbols: list[str], steps: int, seed: int, recording: str) -> dict[str, list[Decimal]]:
    """The first ``steps`` marks of ``fan_out(ticks, price_levels(symbols), seed)`` for each symbol."""
    ticks = candles_to_ticks(load_candles(recording))
    cycle = [*ticks, *ticks[-2:0:-1]]
    used: set[int] = set()
    offsets: dict[str, int] = {}
    for symbol in sorted(symbols):  # the same offsets fan_out gives (seed and names only)
        offset = random.Random(f"{seed}:{symbol}").randrange(len(cycle))
        if len(used) < len(cycle):
            while offset in used:
                offset = (offset + 1) % len(cycle)
        used.add(offset)
        offsets[symbol] = offset
    n = len(cycle)
    out = {}
    for symbol in symbols:
        m = market(symbol)
        k = offsets[symbol]
        out[symbol] = rescale([cycle[(k + i) % n] for i in range(steps)], m.base_price, m.rules.tick_size)
    return out


def _entry_for_tp(side: Side, level: Decimal, risk: Risk, tick: Decimal) -> Decimal:
    """An entry whose TP (tp_pct away, rounded toward the entry) lands on or just inside ``level``."""
    factor = 1 + side.sign * risk.tp_pct / 100
    return (level / factor / tick).to_integral_value(ROUND_HALF_UP) * tick


def build_plan(spec: PlanSpec) -> Plan:
    traded, spare = symbol_names(spec.symbols, spec.spare_symbols)
    symbols = traded + spare
    steps = spec.total_steps
    plan = Plan(spec, symbols, spare, rules_for(symbols), _paths(symbols, steps, spec.seed, spec.recording))
    first = 1
    for w in spec.windows:
        plan.window_range[w.name] = (first, first + w.steps - 1)
        for s in range(first, first + w.steps):
            plan.window_of_step[s] = w.name
        first += w.steps
    risk, qty = spec.risk, Decimal(spec.qty)
    rng = random.Random(f"bench-plan-{spec.seed}")
    book: dict[tuple[str, Side], list[tuple[Decimal, int | None]]] = defaultdict(list)  # key -> (entry, trigger)

    # Idle tranches: TP beyond every mark of the path (LONG above the high, SHORT below the low).
    for symbol in traded:
        path, tick = plan.paths[symbol], plan.rules[symbol].tick_size
        high, low = max(path), min(path)
        for j in range(spec.idle_per_side):
            book[(symbol, Side.LONG)].append(
                ((high * Decimal(1 + 0.001 * (j + 1)) / tick).to_integral_value() * tick, None)
            )
            book[(symbol, Side.SHORT)].append(
                ((low * Decimal(1 - 0.001 * (j + 1)) / tick).to_integral_value() * tick, None)
            )

    # Trigger tranches: every record high/low of a path is a level first reached at a known step.
    by_window: dict[str, list[tuple[int, str, Side, Decimal]]] = defaultdict(list)
    for symbol in traded:
        path, rules = plan.paths[symbol], plan.rules[symbol]
        for side in (Side.LONG, Side.SHORT):
            oriented = [side.sign * p for p in path]  # "reached" reads oriented mark >= oriented TP
            running = list(itertools.accumulate(oriented, max))
            for i in range(1, steps):
                if oriented[i] <= running[i - 1]:
                    continue  # not a record: reached before
                entry = _entry_for_tp(side, path[i], risk, rules.tick_size)
                tp = exit_prices(side, entry, risk, rules)[0]
                step = bisect.bisect_left(running, side.sign * tp)  # the first step the path reaches the TP
                if step == 0 or step >= steps:
                    continue
                by_window[plan.window_of_step[step]].append((step, symbol, side, entry))
    per_key: dict[tuple[str, Side], int] = defaultdict(int)
    for w in spec.windows:
        found = by_window.get(w.name, [])
        plan.candidates[w.name] = len(found)
        rng.shuffle(found)
        # Spread the triggers over the window: the first candidate of every step, then the second, ...
        rank: dict[int, int] = defaultdict(int)
        ranked = []
        for cand in found:
            ranked.append((rank[cand[0]], cand))
            rank[cand[0]] += 1
        ranked.sort(key=lambda rc: (rc[0], rc[1][0]))
        taken = 0
        for _, (step, symbol, side, entry) in ranked:
            if taken >= w.triggers:
                break
            if per_key[(symbol, side)] >= spec.max_triggers_per_key:
                continue
            per_key[(symbol, side)] += 1
            book[(symbol, side)].append((entry, step))
            taken += 1

    # Probe tranches: LONG, TP just above the whole path's high (below every idle TP of the symbol).
    probe_keys = traded[: spec.probes]
    for symbol in probe_keys:
        tick = plan.rules[symbol].tick_size
        book[(symbol, Side.LONG)].append(
            ((max(plan.paths[symbol]) * Decimal("0.999") / tick).to_integral_value() * tick, -1)
        )

    next_id = 1
    for symbol in traded:
        rules = plan.rules[symbol]
        path = plan.paths[symbol]
        high, low = max(path), min(path)
        for side in (Side.LONG, Side.SHORT):
            for index, (entry, trigger) in enumerate(book[(symbol, side)]):
                tp, sl = exit_prices(side, entry, risk, rules)
                t = Tranche(
                    id=next_id,
                    venue=VENUE,
                    symbol=symbol,
                    side=side,
                    index=index,
                    entry=entry,
                    qty=qty,
                    tp=tp,
                    sl=sl,
                    opened_at=OPENED_AT,
                )
                t, tp_order, sl_order = protection_orders(
                    t, prefix=PREFIX, working_type=WorkingType.MARK_PRICE, hedge_mode=True
                )
                plan.tranches.append(t)
                plan.orders += [
                    dataclasses.replace(tp_order, state=LocalState.LIVE),
                    dataclasses.replace(sl_order, state=LocalState.LIVE),
                ]
                # Stops must never trigger on the exchange during a run.
                assert (sl < low) if side is Side.LONG else (sl > high), (symbol, side, sl, low, high)
                if trigger is None:
                    assert side.sign * (tp - (high if side is Side.LONG else low)) > 0, (symbol, side, tp)
                elif trigger == -1:
                    assert tp > high, (symbol, tp, high)
                    plan.probes.append(Probe(t.id, symbol, format(tp, "f")))
                else:
                    plan.trigger_step[t.id] = trigger
                next_id += 1
    # A probe's spike must trigger its own tranche and nothing else of its symbol.
    lowest_idle_tp: dict[str, Decimal] = {}
    probe_ids = {p.tranche_id for p in plan.probes}
    for t in plan.tranches:
        if t.side is Side.LONG and t.id not in plan.trigger_step and t.id not in probe_ids:
            lowest_idle_tp[t.symbol] = min(lowest_idle_tp.get(t.symbol, t.tp), t.tp)
    for p in plan.probes:
        assert Decimal(p.price) < lowest_idle_tp.get(p.symbol, Decimal("Infinity")), p
    return plan


def next_tranche_id(plan: Plan) -> int:
    return len(plan.tranches) + 1
