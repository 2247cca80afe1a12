"""PNG plots of a trade history for ``posmon report``: the equity curve and the PnL per exit reason.

matplotlib is an optional extra (``pip install 'posmon[report]'``) so the daemon stays lean: it is imported
here, only when a plot is drawn, with the Agg backend (no display needed). ``PlotsUnavailable`` says how to
install it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posmon.analytics import equity_curve, group_by
from posmon.store.history import ClosedTranche

INSTALL_HINT = "install the report extra for the PNG plots: pip install 'posmon[report]'"
EQUITY_PNG = "equity.png"
REASONS_PNG = "pnl_by_exit_reason.png"


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotsUnavailable(INSTALL_HINT) from exc
    return plt


def write_plots(history: Sequence[ClosedTranche], out_dir: Path) -> list[Path]:
    """Write ``equity.png`` and ``pnl_by_exit_reason.png`` into ``out_dir`` (created); their paths."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    equity, reasons = out_dir / EQUITY_PNG, out_dir / REASONS_PNG

    points = equity_curve(history)
    fig, ax = plt.subplots(figsize=(8, 4))
    try:
        if points:
            times = [dt.datetime.fromtimestamp(t, dt.UTC) for t, _ in points]
            # From 0 just before the first close, so the first tranche's PnL shows as a step like the others.
            ax.step([times[0], *times], [0.0, *(float(v) for _, v in points)], where="post")
            fig.autofmt_xdate()
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title("Equity curve: cumulative net PnL of closed tranches")
        ax.set_xlabel("closed at (UTC)")
        ax.set_ylabel("net PnL (quote)")
        fig.tight_layout()
        fig.savefig(equity, format="png")
    finally:
        plt.close(fig)

    groups = group_by(history, "exit_reason")
    fig, ax = plt.subplots(figsize=(8, 4))
    try:
        values = [float(g.net_pnl) for g in groups]
        ax.bar([g.key for g in groups], values, color=["tab:green" if v >= 0 else "tab:red" for v in values])
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title("Net PnL per exit reason")
        ax.set_ylabel("net PnL (quote)")
        fig.tight_layout()
        fig.savefig(reasons, format="png")
    finally:
        plt.close(fig)
    return [equity, reasons]
