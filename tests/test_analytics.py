"""The report's numbers on a hand-built history (tests/store/history_fixtures.py): worked by hand below."""

from __future__ import annotations

from decimal import Decimal as D

from posmon.analytics import Group, duration, equity_curve, render_summary, summarize, win_rate
from posmon.domain.orders import Side
from posmon.store.history import ClosedTranche
from tests.store.history_fixtures import ROWS, T0


def history() -> list[ClosedTranche]:
    out = []
    for tid, symbol, side, entry, qty, exit_price, fee, reason, opened_at, closed_at in ROWS:
        pnl = side.sign * (D(exit_price) - D(entry)) * D(qty)
        out.append(
            ClosedTranche(
                tid, "sim", symbol, side, 0, D(entry), D(exit_price), D(qty), reason, pnl, D(fee), opened_at, closed_at
            )
        )
    return out


def merged(tid: int, at: float) -> ClosedTranche:
    """A tranche folded into another: closed without an exit, so not a trade."""
    return ClosedTranche(tid, "sim", "BTCUSDT", Side.LONG, 1, D("44000"), None, D(0), "MERGED", D(0), D(0), T0, at)


def test_summary_numbers_of_a_hand_built_history():
    s = summarize([*history(), merged(9, T0 + 50)])
    # nets: +43.2 (BTC TP), -91.9 (BTC SL), +28.8 (ETH TP), -11.2 (ETH TIMEOUT)
    assert (s.trades, s.wins, s.losses) == (4, 2, 2)
    assert s.win_rate == D("0.5")
    assert (s.realized_pnl, s.fees, s.net_pnl) == (D("-25"), D("6.1"), D("-31.1"))
    assert s.average_hold_seconds == (600 + 1200 + 2000 + 3600) / 4
    assert s.largest_loss is not None and (s.largest_loss.id, s.largest_loss.net_pnl) == (2, D("-91.9"))
    assert s.by_symbol == [Group("ETHUSDT", 2, 1, D("17.6")), Group("BTCUSDT", 2, 1, D("-48.7"))]
    assert s.by_reason == [
        Group("TP", 2, 2, D("72.0")),
        Group("TIMEOUT", 1, 0, D("-11.2")),
        Group("SL", 1, 0, D("-91.9")),
    ]


def test_win_rate_counts_only_trades_and_a_break_even_is_no_win():
    even = ClosedTranche(5, "sim", "X", Side.LONG, 0, D(1), D(1), D(1), "MANUAL", D(0), D(0), T0, T0 + 1)
    assert win_rate([merged(9, T0)]) is None
    assert win_rate([history()[0], even, merged(9, T0)]) == D("0.5")


def test_no_loss_means_no_largest_loss_and_an_empty_history_reports_none():
    s = summarize([history()[0]])
    assert s.largest_loss is None and s.win_rate == 1
    empty = summarize([])
    assert (empty.trades, empty.win_rate, empty.average_hold_seconds, empty.net_pnl) == (0, None, None, 0)
    assert "win rate: n/a" in render_summary(empty)


def test_equity_curve_accumulates_net_pnl_in_closing_order():
    points = equity_curve(list(reversed(history())))
    assert points == [
        (T0 + 600, D("43.2")),
        (T0 + 1300, D("-48.7")),
        (T0 + 2200, D("-19.9")),
        (T0 + 3900, D("-31.1")),
    ]


def test_rendered_summary_states_the_figures():
    text = render_summary(summarize(history()))
    assert "closed trades: 4 (2 won, 2 lost)" in text
    assert "win rate: 50.0 %" in text
    assert "net PnL: -31.1000" in text
    assert "average hold: 30m50s" in text
    assert "largest loss: -91.9000 (tranche 2, BTCUSDT SHORT, SL)" in text


def test_duration_reads_like_a_clock():
    assert (duration(42), duration(125), duration(3725)) == ("42.0s", "2m05s", "1h02m05s")
