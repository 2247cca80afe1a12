"""Summaries of py-spy profiles (``py-spy record --format raw``: one ``frame;frame;...;frame count`` per line).

``python -m bench.profile FILE [N]`` prints the functions that cost the most, by own time (the leaf of the
sample) and by total time (anywhere on the stack), as percentages of the samples taken while the process was on
CPU (py-spy records no idle samples unless asked), so 10 % means a tenth of the CPU the process used.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, so samples of one function on many lines add up."""
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = m["file"]
    short = "/".join(Path(path).parts[-2:]) if "site-packages" in path or "posmon" in path else Path(path).name
    return f"{m['func']} ({short})"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([_name(f) for f in stack.split(";")], int(count)))
    return stacks


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    stacks = load(path)
    total = sum(c for _, c in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    return {
        "samples": total,
        "own": [(f, round(100 * c / total, 1)) for f, c in own.most_common(top)],
        "total": [(f, round(100 * c / total, 1)) for f, c in inclusive.most_common(top)],
    }


def main(argv: list[str]) -> None:
    s = summarize(Path(argv[0]), int(argv[1]) if len(argv) > 1 else 25)
    print(f"{s['samples']} samples while the process was on CPU (py-spy leaves idle samples out)")
    for title in ("own", "total"):
        print(f"\n-- by {title} time --")
        for f, pct in s[title]:
            print(f"{pct:6.1f}%  {f}")


if __name__ == "__main__":
    main(sys.argv[1:])
