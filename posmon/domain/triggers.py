"""Trigger levels kept ordered so a tick that triggers nothing costs one comparison per kind.

A linear scan over tranches per tick does not scale (10,000 tranches on one
symbol would make every tick 10,000 comparisons). Each exit kind keeps a heap
with the nearest level at the front; removals are lazy (an entry is stale when
its tranche's generation moved on) and the heaps are compacted when stale
entries outnumber live ones.

Tranches whose exit plan moves the stop by price (trailing stop, break-even on a gain) also keep their
``stop_gate`` in a heap of wake-up levels: only a mark that reaches a tranche's gate makes the actor ask
whether its stop moves, so a tick that moves nothing is one comparison here too, whatever the book's size.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from decimal import Decimal
from typing import TypeVar

from posmon.domain.exitplan import stop_gate
from posmon.domain.orders import Side, SymbolRules
from posmon.domain.tranche import ExitReason, Tranche

Level = TypeVar("Level", Decimal, float)  # a heap key: a price level or a deadline


class TriggerBook:
    """The emulated exits of one (symbol, side): which tranches does a mark price trigger?"""

    __slots__ = (
        "_deadlines",
        "_gate_heap",
        "_gen",
        "_next_gen",
        "_rules",
        "_side",
        "_sl",
        "_sl_heap",
        "_timeout",
        "_tp",
        "_tp_heap",
    )

    def __init__(
        self, side: Side, *, take_profit: bool, stop_loss: bool, timeout: bool, rules: SymbolRules | None = None
    ) -> None:
        """``rules``: the symbol's grid, to watch the stop gates of tranches whose plan moves the stop by price
        (None: no gates)."""
        self._side = side
        self._rules = rules
        self._tp = take_profit
        self._sl = stop_loss
        self._timeout = timeout
        # Heap keys are oriented so that "triggered" always reads key <= oriented mark.
        self._tp_heap: list[tuple[Decimal, int, int]] = []
        self._sl_heap: list[tuple[Decimal, int, int]] = []
        self._deadlines: list[tuple[float, int, int]] = []
        # (oriented gate, strict, tranche id, generation): reached when key < oriented mark, or == unless strict.
        self._gate_heap: list[tuple[Decimal, int, int, int]] = []
        self._gen: dict[int, int] = {}
        self._next_gen = 0

    def __len__(self) -> int:
        return len(self._gen)

    def __contains__(self, tranche_id: int) -> bool:
        return tranche_id in self._gen

    def add(self, t: Tranche) -> None:
        """Insert or replace a tranche's levels."""
        self._next_gen += 1
        gen = self._next_gen
        self._gen[t.id] = gen
        # LONG: TP triggers when mark >= tp, SL when mark <= sl. SHORT mirrors both.
        s = self._side.sign
        if self._tp:
            heapq.heappush(self._tp_heap, (s * t.tp, t.id, gen))
        if self._sl:
            heapq.heappush(self._sl_heap, (-s * t.sl, t.id, gen))
        if self._timeout and t.deadline is not None:
            heapq.heappush(self._deadlines, (t.deadline, t.id, gen))
        if self._rules is not None and t.plan:
            gate = stop_gate(t, self._rules)
            if gate is not None:
                heapq.heappush(self._gate_heap, (s * gate, 0, t.id, gen))
        self._maybe_compact()

    def discard(self, tranche_id: int) -> None:
        self._gen.pop(tranche_id, None)

    def next_deadline(self) -> float | None:
        """The earliest live hold deadline, so the actor can wake without a tick."""
        self._prune(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def price_gates(self) -> tuple[Decimal | None, Decimal | None]:
        """The nearest favourable (TP or stop gate) and SL levels, oriented like the heaps: a mark can trigger
        or move something only when ``sign * mark >= tp_gate`` or ``-sign * mark >= sl_gate`` (None: nothing
        watched on that side).

        A stale front entry is nearer than the live one, so it can only cause a spare wake-up, never a missed one.
        """
        tp = self._tp_heap[0][0] if self._tp_heap else None
        if self._gate_heap and (tp is None or self._gate_heap[0][0] < tp):
            tp = self._gate_heap[0][0]
        return tp, (self._sl_heap[0][0] if self._sl_heap else None)

    def pop_gated(self, mark: Decimal) -> Iterator[int]:
        """Yield the tranches whose stop gate ``mark`` reached, nearest first; their gate is consumed (``add``
        sets the next one, ``regate`` watches the same tranche again beyond a mark that moved nothing)."""
        level = self._side.sign * mark
        heap = self._gate_heap
        while heap and (heap[0][0] < level or (heap[0][0] == level and not heap[0][1])):
            _, _, tid, gen = heapq.heappop(heap)
            if self._gen.get(tid) == gen:
                yield tid

    def regate(self, t: Tranche, mark: Decimal) -> None:
        """Watch ``t``'s stop gate again, reached only by a mark strictly beyond ``mark`` (one that moved
        nothing: a gate may be early, and the next move needs a better mark)."""
        gen = self._gen.get(t.id)
        if gen is None or self._rules is None:
            return
        gate = stop_gate(t, self._rules)
        if gate is None:
            return
        s = self._side.sign
        key = max(s * gate, s * mark)
        heapq.heappush(self._gate_heap, (key, int(key == s * mark), t.id, gen))

    def pop_triggered(self, mark: Decimal | None, now: float) -> Iterator[tuple[int, ExitReason]]:
        """Yield and remove every tranche ``mark`` (or the clock) triggers; nearest levels first."""
        if mark is not None:
            s = self._side.sign
            yield from self._pop(self._tp_heap, s * mark, ExitReason.TP)
            yield from self._pop(self._sl_heap, -s * mark, ExitReason.SL)
        yield from self._pop(self._deadlines, now, ExitReason.TIMEOUT)

    def _pop(
        self, heap: list[tuple[Level, int, int]], level: Level, reason: ExitReason
    ) -> Iterator[tuple[int, ExitReason]]:
        while heap and heap[0][0] <= level:
            _, tid, gen = heapq.heappop(heap)
            if self._gen.get(tid) == gen:
                del self._gen[tid]
                yield tid, reason

    def _prune(self, heap: list[tuple[Level, int, int]]) -> None:
        while heap and self._gen.get(heap[0][1]) != heap[0][2]:
            heapq.heappop(heap)

    def _maybe_compact(self) -> None:
        live = len(self._gen)
        for name in ("_tp_heap", "_sl_heap", "_deadlines", "_gate_heap"):
            heap = getattr(self, name)
            if len(heap) > 2 * live + 64:
                kept = [e for e in heap if self._gen.get(e[-2]) == e[-1]]
                heapq.heapify(kept)
                setattr(self, name, kept)
