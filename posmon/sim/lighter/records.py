"""The simulator's records of orders and trades, and their JSON in the venue's shapes.

Shapes follow lighter-sdk 1.1.8's models (``lighter/models/order.py``, ``trade.py``,
``account_position.py``): every field present, amounts as decimal strings scaled by the market's
decimals, indexes as integers. Times are milliseconds except ``timestamp`` of an order (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from posmon.domain.orders import PositionState, Side
from posmon.sim.lighter.markets import LighterMarket

ZERO = Decimal(0)
ORDER_TYPES = {0: "limit", 1: "market", 8: "liquidation"}
ORDER_TYPE_LIQUIDATION = 8
TIME_IN_FORCE = {0: "immediate-or-cancel", 1: "good-till-time", 2: "post-only"}
OPEN_STATUSES = frozenset({"open", "pending", "in-progress"})


@dataclass(slots=True)
class OrderRecord:
    """One order of the account, ours or placed from outside."""

    order_index: int
    client_order_index: int
    market: LighterMarket
    account_index: int
    is_ask: bool
    order_type: int
    time_in_force: int
    reduce_only: bool
    base_amount: Decimal  # initial size
    price: Decimal
    order_expiry: int
    nonce: int
    created_ms: int
    engine_id: str  # the SimExchange client id
    status: str = "open"
    filled_base: Decimal = ZERO
    filled_quote: Decimal = ZERO
    updated_ms: int = 0
    rested: bool = False  # went on the book before trading: its fills are maker fills

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_json(self) -> dict[str, Any]:
        m = self.market
        remaining = ZERO if not self.is_open else self.base_amount - self.filled_base
        return {
            "order_index": self.order_index,
            "client_order_index": self.client_order_index,
            "order_id": str(self.order_index),
            "client_order_id": str(self.client_order_index),
            "market_index": m.market_id,
            "owner_account_index": self.account_index,
            "initial_base_amount": m.size_str(self.base_amount),
            "price": m.price_str(self.price),
            "nonce": self.nonce,
            "remaining_base_amount": m.size_str(remaining),
            "is_ask": self.is_ask,
            "base_size": int(self.base_amount.scaleb(m.size_decimals)),
            "base_price": int(self.price.scaleb(m.price_decimals)),
            "filled_base_amount": m.size_str(self.filled_base),
            "filled_quote_amount": f"{self.filled_quote.quantize(Decimal('0.000001')):f}",
            "side": "sell" if self.is_ask else "buy",
            "type": ORDER_TYPES.get(self.order_type, "limit"),
            "time_in_force": TIME_IN_FORCE.get(self.time_in_force, "Unknown"),
            "reduce_only": self.reduce_only,
            "trigger_price": m.price_str(ZERO),
            "order_expiry": self.order_expiry,
            "status": self.status,
            "trigger_status": "na",
            "trigger_time": 0,
            "parent_order_index": 0,
            "parent_order_id": "0",
            "to_trigger_order_id_0": "0",
            "to_trigger_order_id_1": "0",
            "to_cancel_order_id_0": "0",
            "block_height": 0,
            "timestamp": self.created_ms // 1000,
            "created_at": self.created_ms,
            "updated_at": self.updated_ms or self.created_ms,
            "transaction_time": (self.updated_ms or self.created_ms) * 1000,
            "integrator_fee_collector_index": "0",
            "integrator_maker_fee": "0",
            "integrator_taker_fee": "0",
            "order_flags": 0,
            "order_version": 0,
            "market_symbol": m.symbol,
            "market_kind": "perps",
        }


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One fill of one of the account's orders against the simulated book (account 0)."""

    trade_id: int
    order: OrderRecord
    size: Decimal
    price: Decimal
    maker: bool  # the account's order was the maker
    time_ms: int
    tx_hash: str
    counter_order_index: int
    position_before: Decimal = field(default=ZERO)  # signed
    kind: str = "trade"  # "liquidation" / "deleverage": the venue closed the position itself

    def to_json(self) -> dict[str, Any]:
        o, m = self.order, self.order.market
        ours, theirs = (o.order_index, self.counter_order_index)
        ask_id, bid_id = (ours, theirs) if o.is_ask else (theirs, ours)
        ask_acct, bid_acct = (o.account_index, 0) if o.is_ask else (0, o.account_index)
        ask_client, bid_client = (o.client_order_index, 0) if o.is_ask else (0, o.client_order_index)
        is_maker_ask = o.is_ask == self.maker
        taker_before = ZERO if self.maker else abs(self.position_before)
        maker_before = abs(self.position_before) if self.maker else ZERO
        return {
            "trade_id": self.trade_id,
            "tx_hash": self.tx_hash,
            "type": self.kind,
            "market_id": m.market_id,
            "size": m.size_str(self.size),
            "price": m.price_str(self.price),
            "usd_amount": f"{(self.size * self.price).quantize(Decimal('0.000001')):f}",
            "ask_id": ask_id,
            "bid_id": bid_id,
            "ask_account_id": ask_acct,
            "bid_account_id": bid_acct,
            "is_maker_ask": is_maker_ask,
            "block_height": 0,
            "timestamp": self.time_ms,
            "taker_fee": 0,
            "taker_position_size_before": m.size_str(taker_before),
            "taker_entry_quote_before": "0",
            "taker_initial_margin_fraction_before": 0,
            "taker_position_sign_changed": False,
            "maker_fee": 0,
            "maker_position_size_before": m.size_str(maker_before),
            "maker_entry_quote_before": "0",
            "maker_initial_margin_fraction_before": 0,
            "maker_position_sign_changed": False,
            "transaction_time": self.time_ms * 1000,
            "bid_account_pnl": "0",
            "ask_account_pnl": "0",
            "ask_client_id": ask_client,
            "bid_client_id": bid_client,
            "ask_client_id_str": str(ask_client),
            "bid_client_id_str": str(bid_client),
            "ask_id_str": str(ask_id),
            "bid_id_str": str(bid_id),
            "trade_id_str": str(self.trade_id),
            "integrator_maker_fee": "0",
            "integrator_maker_fee_collector_index": "0",
            "integrator_taker_fee": "0",
            "integrator_taker_fee_collector_index": "0",
            "taker_allocated_margin_usdc_before": "0",
            "taker_allocated_margin_usdc_after": "0",
            "maker_allocated_margin_usdc_before": "0",
            "maker_allocated_margin_usdc_after": "0",
            "bid_order_version": 0,
            "ask_order_version": 0,
            "market_symbol": m.symbol,
            "market_kind": "perps",
        }


def position_json(
    market: LighterMarket,
    position: PositionState | None,
    mark: Decimal | None,
    realized: Decimal,
    open_orders: int,
    imf: int,
) -> dict[str, Any]:
    """An ``AccountPosition``; a flat market has sign 0 and position "0"."""
    qty = position.qty if position is not None else ZERO
    entry = position.entry_price if position is not None else ZERO
    sign = 0 if position is None else (1 if position.side is Side.LONG else -1)
    price = mark if mark is not None else entry
    unrealized = sign * (price - entry) * qty
    return {
        "market_id": market.market_id,
        "symbol": market.symbol,
        "initial_margin_fraction": f"{Decimal(imf) / 100:.2f}",
        "open_order_count": open_orders,
        "pending_order_count": 0,
        "position_tied_order_count": 0,
        "sign": sign,
        "position": market.size_str(qty),
        "avg_entry_price": market.price_str(entry),
        "position_value": f"{(qty * price).quantize(Decimal('0.000001')):f}",
        "unrealized_pnl": f"{unrealized.quantize(Decimal('0.000001')):f}",
        "realized_pnl": f"{realized.quantize(Decimal('0.000001')):f}",
        "liquidation_price": "0",
        "total_funding_paid_out": "0",
        "margin_mode": 0,
        "allocated_margin": "0",
        "total_discount": "0",
        "margin_set_flag": 0,
    }
