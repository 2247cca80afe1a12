"""The orders that protect or close a tranche, and the client order ids that tie them to it.

A client order id is derived from (tranche id, purpose, seq) and written to the
store before the order is sent, so a retry or a restart re-sends the same id and
can look it up instead of creating a second order.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from decimal import Decimal

from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, Purpose, SymbolRules, WorkingType
from posmon.domain.rounding import quantize_qty, round_down, round_up
from posmon.domain.tranche import Tranche

_CID = re.compile(r"^(?P<prefix>[A-Za-z0-9]+)-(?P<tid>\d+)-(?P<purpose>[ETSC])(?P<seq>\d+)$")


def client_order_id(prefix: str, tranche_id: int, purpose: Purpose, seq: int) -> str:
    return f"{prefix}-{tranche_id}-{purpose.value}{seq}"


def parse_client_order_id(prefix: str, client_id: str) -> tuple[int, Purpose, int] | None:
    """(tranche id, purpose, seq) of one of our own orders, or None for anyone else's."""
    m = _CID.match(client_id)
    if m is None or m["prefix"] != prefix:
        return None
    return int(m["tid"]), Purpose(m["purpose"]), int(m["seq"])


class LocalState(enum.StrEnum):
    """posmon's view of an order's lifecycle; PENDING/CANCELING mean "asked, answer not yet known"."""

    PENDING = "PENDING"  # decided and persisted; may or may not be on the exchange yet
    LIVE = "LIVE"  # confirmed resting on the exchange
    CANCELING = "CANCELING"  # cancel decided and persisted; not yet confirmed
    DONE = "DONE"  # final: see final_status


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order posmon decided on, as the store keeps it."""

    request: OrderRequest
    tranche_id: int
    purpose: Purpose
    state: LocalState = LocalState.PENDING
    filled_qty: Decimal = Decimal(0)
    exchange_id: str = ""
    final_status: OrderStatus | None = None

    @property
    def client_id(self) -> str:
        return self.request.client_id

    @property
    def active(self) -> bool:
        return self.state is not LocalState.DONE


def _position_side(t: Tranche, hedge_mode: bool) -> str:
    return t.side.value if hedge_mode else "BOTH"


def protection_orders(
    t: Tranche,
    *,
    prefix: str,
    working_type: WorkingType,
    hedge_mode: bool,
    tp_qty: Decimal | None = None,
) -> tuple[Tranche, OrderRecord, OrderRecord]:
    """A reduce-only TP limit and a stop-market SL; returns the tranche with seq advanced.

    The SL covers the whole tranche; the TP ``tp_qty`` of it (a ladder level's share, ``exitplan.level_qty``),
    the whole tranche when not given.
    """
    seq = t.seq + 1
    side = t.side.closing_order_side
    ps = _position_side(t, hedge_mode)
    # In hedge mode positionSide alone makes an order closing; Binance-style venues reject reduceOnly there.
    reduce_only = not hedge_mode
    tp = OrderRequest(
        client_id=client_order_id(prefix, t.id, Purpose.TP, seq),
        symbol=t.symbol,
        side=side,
        position_side=ps,
        type=OrderType.LIMIT,
        qty=t.qty if tp_qty is None else tp_qty,
        price=t.tp,
        reduce_only=reduce_only,
    )
    sl = OrderRequest(
        client_id=client_order_id(prefix, t.id, Purpose.SL, seq),
        symbol=t.symbol,
        side=side,
        position_side=ps,
        type=OrderType.STOP_MARKET,
        qty=t.qty,
        stop_price=t.sl,
        reduce_only=reduce_only,
        working_type=working_type,
    )
    return (replace(t, seq=seq), OrderRecord(tp, t.id, Purpose.TP), OrderRecord(sl, t.id, Purpose.SL))


def close_order(t: Tranche, qty: Decimal, *, prefix: str, hedge_mode: bool) -> tuple[Tranche, OrderRecord]:
    """A reduce-only market order closing ``qty`` of the tranche."""
    seq = t.seq + 1
    req = OrderRequest(
        client_id=client_order_id(prefix, t.id, Purpose.CLOSE, seq),
        symbol=t.symbol,
        side=t.side.closing_order_side,
        position_side=_position_side(t, hedge_mode),
        type=OrderType.MARKET,
        qty=qty,
        reduce_only=not hedge_mode,
    )
    return replace(t, seq=seq), OrderRecord(req, t.id, Purpose.CLOSE)


def worst_price(side: OrderSide, reference: Decimal, slippage_pct: Decimal, tick: Decimal) -> Decimal:
    """The worst acceptable price of a market order, ``slippage_pct`` through ``reference``.

    A SELL may fill down to reference * (1 - s), a BUY up to reference * (1 + s); rounded outward to the tick
    so the bound is never tighter than asked, and never below one tick.
    """
    sell = side is OrderSide.SELL
    factor = (Decimal(100) - slippage_pct if sell else Decimal(100) + slippage_pct) / Decimal(100)
    return max((round_down if sell else round_up)(reference * factor, tick), tick)


def bounded_close_order(
    t: Tranche,
    qty: Decimal,
    *,
    prefix: str,
    hedge_mode: bool,
    mark: Decimal,
    slippage_pct: Decimal,
    rules: SymbolRules,
) -> tuple[Tranche, OrderRecord]:
    """A reduce-only market order closing ``qty`` that fills no worse than ``slippage_pct`` through ``mark``.

    For venues whose market orders need a worst acceptable price (Lighter): a SELL may fill down to
    mark * (1 - s), a BUY up to mark * (1 + s); rounded outward to the tick so the bound is never tighter
    than asked.
    """
    t, rec = close_order(t, qty, prefix=prefix, hedge_mode=hedge_mode)
    worst = worst_price(rec.request.side, mark, slippage_pct, rules.tick_size)
    return t, replace(rec, request=replace(rec.request, price=worst))


def reround_exit(order: OrderRequest, rules: SymbolRules) -> OrderRequest:
    """Put a refused exit back on the venue's (possibly changed) grid, in the safe direction.

    A closing limit moves toward the market side that fills it sooner (SELL down, BUY up); a stop moves
    toward the entry so it never risks more (SELL stop up, BUY stop down); quantities round down.
    """
    sell = order.side is OrderSide.SELL
    tick = rules.tick_size
    price = None if order.price is None else (round_down if sell else round_up)(order.price, tick)
    stop = None if order.stop_price is None else (round_up if sell else round_down)(order.stop_price, tick)
    return replace(order, price=price, stop_price=stop, qty=quantize_qty(order.qty, rules.step_size))
