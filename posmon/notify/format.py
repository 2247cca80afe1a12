"""How a notice reads in a chat message and looks as JSON: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posmon.actors.messages import Notice

# Telegram refuses messages longer than 4096 characters.
TELEGRAM_TEXT_LIMIT = 4096


def notice_line(notice: Notice) -> str:
    """One line an operator can act on: what, where, and the actor's own words (which carry the PnL)."""
    where = " ".join(p for p in (notice.venue, notice.symbol, notice.side) if p)
    alarm = "NEEDS A HUMAN: " if notice.needs_human else ""
    return f"{alarm}[{notice.kind}] {where}: {notice.text}"


def batch_text(notices: Sequence[Notice], limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """The notices of one message, one per line, cut to ``limit`` characters with a count of what was cut."""
    lines = [notice_line(n) for n in notices]
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    budget = limit - 32  # room for the "... and N more" line
    kept: list[str] = []
    size = -1
    for line in lines:
        line = line if len(line) <= budget else line[: budget - 3] + "..."
        if size + 1 + len(line) > budget:
            break
        kept.append(line)
        size += 1 + len(line)
    return "\n".join(kept) + f"\n... and {len(lines) - len(kept)} more"


def notice_json(notice: Notice) -> dict[str, Any]:
    """A notice as a JSON object; data values that JSON lacks (Decimal, enums) are sent as strings."""
    return {
        "kind": notice.kind,
        "venue": notice.venue,
        "symbol": notice.symbol,
        "side": notice.side,
        "text": notice.text,
        "needs_human": notice.needs_human,
        "data": {k: _plain(v) for k, v in notice.data.items()},
    }


def webhook_body(notices: Sequence[Notice]) -> dict[str, Any]:
    """One webhook POST: ``text`` for chat-style receivers, ``notices`` for machines (usually a list of one)."""
    return {"text": batch_text(notices, limit=1 << 20), "notices": [notice_json(n) for n in notices]}


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)
