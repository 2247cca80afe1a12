"""A hand-built trade history written through ``Store.apply`` as the position actor writes it (no tests here)."""

from __future__ import annotations

from decimal import Decimal as D

from posmon.domain.orders import Side
from posmon.domain.tranche import Tranche, booked_exit
from posmon.store.store import Changes, Store

T0 = 1_765_000_000.0  # 2025-12-06T05:46:40Z

# (id, symbol, side, entry, qty, exit price, fee, reason, opened_at, closed_at)
ROWS = [
    (1, "BTCUSDT", Side.LONG, "45000", "0.1", "45450", "1.8", "TP", T0, T0 + 600),  # +45 - 1.8 = +43.2
    (2, "BTCUSDT", Side.SHORT, "45000", "0.1", "45900", "1.9", "SL", T0 + 100, T0 + 1300),  # -90 - 1.9 = -91.9
    (3, "ETHUSDT", Side.LONG, "3000", "1", "3030", "1.2", "TP", T0 + 200, T0 + 2200),  # +30 - 1.2 = +28.8
    (4, "ETHUSDT", Side.LONG, "3000", "1", "2990", "1.2", "TIMEOUT", T0 + 300, T0 + 3900),  # -10 - 1.2 = -11.2
]


def closed_tranche(tid, symbol, side, entry, qty, exit_price, fee, opened_at) -> Tranche:
    t = Tranche(
        id=tid,
        venue="sim",
        symbol=symbol,
        side=side,
        index=0,
        entry=D(entry),
        qty=D(qty),
        tp=D(entry),
        sl=D(entry),
        opened_at=opened_at,
    )
    return booked_exit(t, D(qty), D(exit_price), D(fee))


def write_history(store: Store, rows=ROWS) -> None:
    for tid, symbol, side, entry, qty, exit_price, fee, reason, opened_at, closed_at in rows:
        t = closed_tranche(tid, symbol, side, entry, qty, exit_price, fee, opened_at)
        store.apply(Changes(tranches=[t], closed=[(tid, reason, closed_at)]))
