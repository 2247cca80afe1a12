"""Counters and gauges the actors keep for operators and tests.

One instance per daemon, passed to every actor (no globals). Plain dict
updates: all actors run on one trio thread, so no locking is needed.
"""

from __future__ import annotations

from collections import Counter

Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(name: str, labels: dict[str, object]) -> Key:
    return name, tuple(sorted((k, str(v)) for k, v in labels.items()))


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[Key] = Counter()
        self.gauges: dict[Key, float] = {}

    def inc(self, name: str, n: int = 1, **labels: object) -> None:
        self.counters[_key(name, labels)] += n

    def set(self, name: str, value: float, **labels: object) -> None:
        self.gauges[_key(name, labels)] = value

    def get(self, name: str, **labels: object) -> float:
        """A counter's or gauge's value; with no labels, the sum over every label set of a counter."""
        if labels:
            key = _key(name, labels)
            return self.counters.get(key, self.gauges.get(key, 0))
        total = sum(v for (n, _), v in self.counters.items() if n == name)
        return total or sum(v for (n, _), v in self.gauges.items() if n == name)
