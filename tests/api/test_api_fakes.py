"""A fake ``Control`` that records every call, and a helper serving an app on a real loopback port.

Shared by the API and CLI tests (the module has no tests of its own). The fake answers like a daemon with
two BTCUSDT tranches; ``refuse`` makes its next call raise a ``ControlError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import trio
from starlette.applications import Starlette

from posmon.api import ApiSettings, serve_api
from posmon.control import (
    CloseResult,
    ControlError,
    LinkRequest,
    OpenRequest,
    OpenResult,
    PairLegStatus,
    PairRequest,
    PairStatusView,
    Sizing,
    StatusReport,
    StopResult,
    StreamView,
    TrancheView,
)
from posmon.domain.exitplan import NO_PLAN, PlanError
from posmon.domain.orders import Side
from posmon.plan_fields import plan_of
from posmon.store.history import ClosedTranche, History

NOW = 1_700_000_000.0
TOKEN = "s3cret-token-0123456789"


def tranche(id_: int, side: Side = Side.LONG, symbol: str = "BTCUSDT") -> TrancheView:
    return TrancheView(
        id=id_,
        venue="aster",
        symbol=symbol,
        side=side,
        index=id_ - 1,
        entry=Decimal("60000.1"),
        qty=Decimal("0.002"),
        tp=Decimal("63600.106"),
        sl=Decimal("58200.097"),
        opened_at=NOW - 120,
        max_hold_seconds=3600,
        timeout_at=NOW + 3480,
        remaining_seconds=3480.0,
        mark=Decimal("60100"),
        unrealized_pnl=Decimal("0.1998"),
        closing=None,
        exits="exchange",
        exits_live=True,
        exit_orders={"tp": "LIVE", "sl": "LIVE"},
    )


def closed_tranche(id_: int, reason: str, symbol: str = "BTCUSDT") -> ClosedTranche:
    """A closed LONG tranche of 0.002 from 60000.1: exited at 60600 by TP, at 59400 otherwise."""
    exit_price = Decimal("60600") if reason == "TP" else Decimal("59400")
    return ClosedTranche(
        id=id_,
        venue="aster",
        symbol=symbol,
        side=Side.LONG,
        index=0,
        entry=Decimal("60000.1"),
        exit_price=exit_price,
        qty=Decimal("0.002"),
        exit_reason=reason,
        realized_pnl=(exit_price - Decimal("60000.1")) * Decimal("0.002"),
        fees=Decimal("0.048"),
        opened_at=NOW - 600 * id_,
        closed_at=NOW - 60 * (10 - id_),
    )


@dataclass
class FakeControl:
    """Implements the ``Control`` protocol; ``calls`` lists ``(method, args)`` in order."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    running: bool = True
    tranches: list[TrancheView] = field(default_factory=lambda: [tranche(1), tranche(2, Side.SHORT)])
    refusal: ControlError | None = None
    fill: bool = True
    status_hangs: bool = False
    closed: list[ClosedTranche] = field(default_factory=lambda: [closed_tranche(3, "TP"), closed_tranche(4, "SL")])

    def refuse(self, message: str, field: str | None = None, status: int = 422) -> None:
        self.refusal = ControlError(message, field=field, status=status)

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal

    def mutations(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [c for c in self.calls if c[0] != "status"]

    async def status(self) -> StatusReport:
        self._record("status")
        if self.status_hangs:
            await trio.sleep_forever()
        return StatusReport(
            running=self.running,
            venue="aster",
            started_at=NOW - 3600,
            streams=[StreamView("price", True, 0.4), StreamView("user", False, None)],
            tranches=list(self.tranches),
            unmonitored=["ETHUSDT"],
            extra={"note": Decimal("1.5")},
        )

    async def open_position(self, request: OpenRequest) -> OpenResult:
        self._record("open_position", request)
        try:  # the entry's fields alone (the fake has no configured ones); it refuses nothing, unlike the daemon
            plan = plan_of(request.plan_fields)
        except PlanError:
            plan = NO_PLAN
        tp_pct = plan.tp_levels[0].pct if plan.tp_levels else request.tp_pct
        entry = Decimal("100") if self.fill else None
        tp = entry * (1 + tp_pct / 100) if entry is not None else None
        sl = entry * (1 - request.sl_pct / 100) if entry is not None else None
        if request.side is Side.SHORT and entry is not None:
            tp, sl = entry * (1 - tp_pct / 100), entry * (1 + request.sl_pct / 100)
        return OpenResult(
            symbol=request.symbol,
            side=request.side,
            tranche_id=7,
            client_id="pm-7-e",
            qty=Decimal("0.5"),
            entry_price=entry,
            tp=tp,
            sl=sl,
            status="FILLED" if entry is not None else "PENDING",
            sizing=Sizing.filled(Decimal("0.5"), entry, sl, request.leverage) if entry is not None else None,
            plan=plan,
        )

    async def close(
        self, symbol: str, side: Side | None = None, tranche_id: int | None = None, *, venue: str | None = None
    ) -> list[CloseResult]:
        self._record("close", symbol, side, tranche_id)
        hits = [
            t for t in self.tranches if t.symbol == symbol and side in (None, t.side) and tranche_id in (None, t.id)
        ]
        by_side: dict[Side, list[int]] = {}
        for t in hits:
            by_side.setdefault(t.side, []).append(t.id)
        return [CloseResult(symbol, s, ids) for s, ids in by_side.items()]

    async def stop_monitoring(self, symbol: str, *, venue: str | None = None) -> StopResult:
        self._record("stop_monitoring", symbol)
        return StopResult(symbol, [t.id for t in self.tranches if t.symbol == symbol])

    async def resume_monitoring(self, symbol: str, *, venue: str | None = None) -> None:
        self._record("resume_monitoring", symbol)

    async def history(
        self,
        *,
        since: float | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        venue: str | None = None,
    ) -> History:
        self._record("history", since, symbol, limit)
        rows = [t for t in self.closed if since is None or t.closed_at >= since]
        rows = [t for t in rows if symbol is None or t.symbol == symbol]
        return History(rows[-limit:] if limit else rows)

    async def pairs(self) -> list[PairStatusView]:
        self._record("pairs")
        return [pair_view(1)]

    async def open_pair(self, request: PairRequest) -> PairStatusView:
        self._record("open_pair", request)
        return pair_view(2)

    async def link_pair(self, request: LinkRequest) -> PairStatusView:
        self._record("link_pair", request)
        return pair_view(3)

    async def close_pair(self, pair_id: int) -> PairStatusView:
        self._record("close_pair", pair_id)
        return pair_view(pair_id, status="closing")


def pair_view(id_: int, status: str = "open") -> PairStatusView:
    """A BTC pair: 0.01 LONG on Aster, 0.01 SHORT on Lighter."""

    def leg(venue: str, symbol: str, side: str, pnl: str) -> PairLegStatus:
        return PairLegStatus(
            venue,
            symbol,
            None,
            side,
            Decimal("0.01"),
            Decimal(45000),
            Decimal(45100),
            Decimal(pnl),
            Decimal(0),
            False,
            [id_ * 10],
        )

    return PairStatusView(
        id_,
        status,
        [leg("aster", "BTCUSDT", "LONG", "1"), leg("lighter", "BTC", "SHORT", "-1")],
        Decimal(0),
        Decimal(0),
        Decimal(0),
        False,
        [Decimal(0), Decimal(0)],
        None,
    )


@asynccontextmanager
async def served(app: Starlette, *, token: str = "") -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 and a free port for the duration; yields its base URL."""
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_api, app, ApiSettings(host="127.0.0.1", port=0, token=token))
        assert url is not None
        yield url
        nursery.cancel_scope.cancel()
