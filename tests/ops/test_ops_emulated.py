"""verify/protect where posmon emulates exits (the Lighter way), on the in-process Lighter-like venue: a
tranche is protected when its TP, SL and deadline are set, and no posmon TP/SL may rest on the exchange.

(The Lighter adapter is still work in progress; this runs the rule apart from the protocol, as
tests/daemon/test_emulated_exits.py does for the daemon.)
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import trio

from posmon.cli.exit_codes import ExitCode
from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side
from posmon.ops.command import protect_command, verify_command
from posmon.store.store import Store
from tests.emulated import lighter_like, one_way
from tests.harness import running, trio_clock


def _opener(venue: Any):
    @asynccontextmanager
    async def opener(settings: Any, nursery: trio.Nursery) -> AsyncIterator[Any]:
        await trio.lowlevel.checkpoint()
        yield venue

    return opener


async def test_emulated_exits_verify_and_protect(tmp_path, autojump_clock):
    settings = one_way(tmp_path, tp_pct=1.0, sl_pct=5.0, max_hold_seconds=3600)
    exchange, venue = lighter_like(settings)
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        assert h.orders() == []
    opener = _opener(venue)

    async def verify() -> tuple[int, dict[str, Any]]:
        out = io.StringIO()
        code = await verify_command(settings, as_json=True, out=out, err=io.StringIO(), opener=opener)
        return code, json.loads(out.getvalue())

    assert (await verify())[0] == ExitCode.OK

    # A stray resting TP (e.g. placed by an older posmon) and a position nobody covers.
    exchange.engine.place(
        OrderRequest(
            client_id="pm-1-T7",
            symbol="BTCUSDT",
            side=OrderSide.SELL,
            position_side="BOTH",
            type=OrderType.LIMIT,
            qty=D("0.1"),
            price=D("46000"),
            reduce_only=True,
        ),
        trio.current_time(),
    )
    exchange.set_mark("ETHUSDT", D("3000"))
    exchange.external_entry("ETHUSDT", Side.SHORT, D("1"))
    code, doc = await verify()
    assert code == ExitCode.FAILED
    assert sorted(g["kind"] for g in doc["gaps"]) == ["stale_leg", "unknown_position"]

    out = io.StringIO()
    assert (
        await protect_command(settings, out=out, err=io.StringIO(), opener=opener, clock=trio_clock) == ExitCode.OK
    ), out.getvalue()
    assert exchange.engine.open_orders() == []  # the stale leg is gone and no leg was placed
    store = Store.open(settings.daemon.store)
    try:
        eth = next(t for t in store.open_tranches() if t.symbol == "ETHUSDT")
        assert (eth.side, eth.qty, eth.tp, eth.sl) == (Side.SHORT, D("1"), D("2970"), D("3150"))
        assert eth.deadline == eth.opened_at + 3600
    finally:
        store.close()
    assert (await verify())[0] == ExitCode.OK
