"""What both protocol simulators count and tests read; each venue's counters extend these with its own."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerCounters:
    """Requests per ``"METHOD /path"`` (refused ones too), 503 answers, websockets opened and open now."""

    requests: Counter[str] = field(default_factory=Counter)
    http_503: int = 0
    ws_opened: int = 0
    ws_open: int = 0

    def request(self, method: str, path: str) -> None:
        self.requests[f"{method} {path}"] += 1
