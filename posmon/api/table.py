"""The status answer as text an operator reads at a glance: header, stream health, one row per tranche."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any


def _seconds(value: Any) -> float | None:
    """Times and durations arrive as JSON numbers (parsed into ``Decimal`` by the client)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return float(value)


def _utc(ts: Any) -> str:
    seconds = _seconds(ts)
    return "-" if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def duration(seconds: Any) -> str:
    """``3725`` -> ``1h02m05s``; None -> ``-``."""
    value = _seconds(seconds)
    if value is None:
        return "-"
    total = max(0, round(value))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _num(value: Any, *, places: int | None = None, significant: int = 10) -> str:
    """A decimal string made readable: averages carry 28 digits, an operator needs ten (``--json`` keeps all)."""
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return _cell(value)
    if value is None or not d.is_finite():
        return _cell(value)
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-places)) + 0  # + 0: no "-0.0000"
        return format(d, "f")
    if not d or d.adjusted() - int(d.as_tuple().exponent) < significant:  # finite: the exponent is an int
        return str(value)  # short enough: as the daemon wrote it (tick-formatted)
    text = format(round(d, max(0, significant - 1 - d.adjusted())), "f")  # integer digits are never rounded
    return text.rstrip("0").rstrip(".") if "." in text else text


def grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


_COLUMNS = (
    "ID",
    "SYMBOL",
    "SIDE",
    "QTY",
    "ENTRY",
    "MARK",
    "TP",
    "SL",
    "uPnL",
    "OPENED (UTC)",
    "REMAINING",
    "EXITS",
    "LIVE",
    "STATE",
)


def exits_live(t: Mapping[str, Any]) -> str:
    """``yes`` when both exits would fire now; else ``NO`` and the legs that would not (``NO: SL MISSING``)."""
    if "exits_live" not in t:
        return "-"
    if t["exits_live"]:
        return "yes"
    legs = t.get("exit_orders") or {}
    down = [f"{leg.upper()} {state}" for leg, state in legs.items() if state not in ("LIVE", "WATCHED")]
    return "NO: " + ", ".join(down) if down else "NO"


def plan_cell(t: Mapping[str, Any]) -> str:
    """The exit plan's state in short (``TP 2/3 TRAIL BE``); ``-`` for one TP and one SL."""
    plan = t.get("plan")
    return str(plan.get("summary") or "-") if isinstance(plan, Mapping) else "-"


def _with_instruments(
    headers: Sequence[str], rows: list[list[str]], tranches: Sequence[Mapping[str, Any]]
) -> tuple[Sequence[str], list[list[str]]]:
    """An INSTRUMENT column after SYMBOL (the unified name, ``BTC/USDT:USDT``) when any tranche has one."""
    if not any(t.get("instrument") for t in tranches):
        return headers, rows
    at = list(headers).index("SYMBOL") + 1
    named = [[*r[:at], _cell(t.get("instrument")), *r[at:]] for r, t in zip(rows, tranches, strict=True)]
    return (*headers[:at], "INSTRUMENT", *headers[at:]), named


def render_status(status: Mapping[str, Any]) -> str:
    state = "running" if status.get("running") else "NOT RUNNING"
    out = [f"posmon on {status.get('venue', '?')}: {state} since {_utc(status.get('started_at'))} UTC", ""]
    streams = status.get("streams") or []
    for s in streams:
        age = _seconds(s.get("last_frame_age_seconds"))
        seen = "no frame yet" if age is None else f"last frame {age:.1f} s ago"
        out.append(f"stream {s.get('name', '?'):<6} {'up' if s.get('up') else 'DOWN':<4}  {seen}")
    accounts = status.get("accounts") or []
    if len(accounts) > 1:  # several venue accounts: each one's state (one venue: the first line says it)
        for a in accounts:
            out.append(f"account {a.get('venue', '?'):<8} {a.get('state', '?'):<11} {a.get('detail', '')}")
    if streams or len(accounts) > 1:
        out.append("")
    tranches = status.get("tranches") or []
    if tranches:
        rows = [
            [
                _cell(t.get("id")),
                _cell(t.get("symbol")),
                _cell(t.get("side")),
                _num(t.get("qty")),
                _num(t.get("entry")),
                _num(t.get("mark")),
                _num(t.get("tp")),
                _num(t.get("sl")),
                _num(t.get("unrealized_pnl"), places=4),
                _utc(t.get("opened_at")),
                duration(t.get("remaining_seconds")) if t.get("max_hold_seconds") else "no limit",
                _cell(t.get("exits")),
                exits_live(t),
                f"closing ({t['closing']})" if t.get("closing") else "open",
            ]
            for t in tranches
        ]
        columns = list(_COLUMNS)
        if any(t.get("plan") for t in tranches):  # a column only where some tranche has an exit plan
            for t, r in zip(tranches, rows, strict=True):
                r.insert(_COLUMNS.index("SL") + 1, plan_cell(t))
            columns.insert(_COLUMNS.index("SL") + 1, "PLAN")
        if len(accounts) > 1:  # which venue each tranche is on
            for t, r in zip(tranches, rows, strict=True):
                r.insert(1, _cell(t.get("venue")))
            columns.insert(1, "VENUE")
        out.append(grid(*_with_instruments(columns, rows, tranches)))
    else:
        out.append("no open tranches")
    unmonitored = status.get("unmonitored") or []
    if unmonitored:
        out += ["", "not monitored (stopped by the operator): " + ", ".join(map(str, unmonitored))]
    pairs = status.get("pairs") or []
    if pairs:
        out += ["", render_pairs({"pairs": pairs})]
    return "\n".join(out)


_PAIR_COLUMNS = ("PAIR", "STATUS", "VENUE", "SYMBOL", "SIDE", "QTY", "ENTRY", "MARK", "PNL", "FUNDING", "LEG")


def render_pairs(answer: Mapping[str, Any]) -> str:
    """Hedge pairs: one row per leg (its PnL with funding, STALE when its venue's streams are down), then the
    pair's combined PnL and imbalance."""
    pairs = answer.get("pairs") or []
    if not pairs:
        return "no open pairs"
    rows, notes = [], []
    for p in pairs:
        for leg in p.get("legs") or []:
            rows.append(
                [
                    _cell(p.get("id")),
                    _cell(p.get("status")),
                    _cell(leg.get("venue")),
                    _cell(leg.get("symbol")),
                    _cell(leg.get("side")),
                    _num(leg.get("qty")),
                    _num(leg.get("entry")),
                    _num(leg.get("mark")),
                    _num(leg.get("pnl"), places=4),
                    _num(leg.get("funding"), places=4),
                    "STALE" if leg.get("stale") else "live",
                ]
            )
        alarm = " (over the limit)" if p.get("imbalance_breached") else ""
        notes.append(
            f"pair {p.get('id')}: combined PnL {_num(p.get('pnl'), places=4)}, imbalance "
            f"{_num(p.get('imbalance_pct'), places=2)} %{alarm}"
            + (f", closing: {p['close_reason']}" if p.get("close_reason") else "")
        )
    return "\n".join([grid(list(_PAIR_COLUMNS), rows), *notes])
