"""What a trade history says: win rate, PnL by symbol and by exit reason, hold times, the worst loss, the
equity curve. Pure functions of closed tranches (``posmon.store.history.ClosedTranche``), so they are checked
on hand-built histories; ``posmon report`` prints them and ``posmon.plots`` draws them.

A *trade* is a closed tranche whose exits closed some quantity at a price (a tranche merged into another, or
forgotten by ``stop``, is not one). A win is a trade whose net PnL (after fees) is above 0; a trade at exactly
0 is neither a win nor a loss but counts in the win rate's denominator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from posmon.store.history import ClosedTranche

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Group:
    """Totals of the trades sharing a key (a symbol, an exit reason)."""

    key: str
    trades: int
    wins: int
    net_pnl: Decimal


@dataclass(frozen=True, slots=True)
class Summary:
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None  # wins / trades in [0, 1]; None without trades
    realized_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    average_hold_seconds: float | None
    largest_loss: ClosedTranche | None  # the trade with the most negative net PnL; None when none lost
    by_symbol: list[Group]
    by_reason: list[Group]


def trades(history: Iterable[ClosedTranche]) -> list[ClosedTranche]:
    """The closed tranches that exited some quantity at a price."""
    return [t for t in history if t.qty > 0]


def win_rate(history: Iterable[ClosedTranche]) -> Decimal | None:
    done = trades(history)
    if not done:
        return None
    return Decimal(sum(1 for t in done if t.net_pnl > 0)) / Decimal(len(done))


def group_by(history: Iterable[ClosedTranche], key: str) -> list[Group]:
    """Trades grouped by ``key`` (``"symbol"`` or ``"exit_reason"``), largest net PnL first (ties by key)."""
    groups: dict[str, list[ClosedTranche]] = {}
    for t in trades(history):
        groups.setdefault(str(getattr(t, key)), []).append(t)
    out = [
        Group(k, len(ts), sum(1 for t in ts if t.net_pnl > 0), sum((t.net_pnl for t in ts), ZERO))
        for k, ts in groups.items()
    ]
    return sorted(out, key=lambda g: (-g.net_pnl, g.key))


def equity_curve(history: Sequence[ClosedTranche]) -> list[tuple[float, Decimal]]:
    """(closed_at, cumulative net PnL) after each closed tranche, in closing order."""
    total, points = ZERO, []
    for t in sorted(history, key=lambda t: (t.closed_at, t.id)):
        total += t.net_pnl
        points.append((t.closed_at, total))
    return points


def summarize(history: Sequence[ClosedTranche]) -> Summary:
    done = trades(history)
    losers = [t for t in done if t.net_pnl < 0]
    realized = sum((t.realized_pnl for t in history), ZERO)
    fees = sum((t.fees for t in history), ZERO)
    return Summary(
        trades=len(done),
        wins=sum(1 for t in done if t.net_pnl > 0),
        losses=len(losers),
        win_rate=win_rate(done),
        realized_pnl=realized,
        fees=fees,
        net_pnl=realized - fees,
        average_hold_seconds=sum(t.hold_seconds for t in done) / len(done) if done else None,
        largest_loss=min(losers, key=lambda t: (t.net_pnl, t.closed_at)) if losers else None,
        by_symbol=group_by(done, "symbol"),
        by_reason=group_by(done, "exit_reason"),
    )


def duration(seconds: float) -> str:
    """``3725`` -> ``1h02m05s``; under a minute ``42.0s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def render_summary(s: Summary) -> str:
    """The report's text: what ``posmon report`` prints."""
    lines = [
        f"closed trades: {s.trades} ({s.wins} won, {s.losses} lost)",
        "win rate: " + ("n/a" if s.win_rate is None else f"{s.win_rate * 100:.1f} %"),
        f"realized PnL: {s.realized_pnl:+.4f}  fees: {s.fees:.4f}  net PnL: {s.net_pnl:+.4f}",
        "average hold: " + ("n/a" if s.average_hold_seconds is None else duration(s.average_hold_seconds)),
    ]
    if s.largest_loss is None:
        lines.append("largest loss: none")
    else:
        t = s.largest_loss
        lines.append(f"largest loss: {t.net_pnl:+.4f} (tranche {t.id}, {t.symbol} {t.side.value}, {t.exit_reason})")
    for title, groups in (("PnL by symbol", s.by_symbol), ("PnL by exit reason", s.by_reason)):
        lines.append(f"{title}:")
        if not groups:
            lines.append("  (no trades)")
        for g in groups:
            lines.append(f"  {g.key:<18} {g.trades:>5} trades  {g.wins:>5} won  net {g.net_pnl:+.4f}")
    return "\n".join(lines)
