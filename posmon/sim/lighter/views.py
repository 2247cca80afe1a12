"""Read-side JSON: orderBookDetails, orderBooks, account, market_stats, in the SDK models' shapes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from posmon.sim.lighter.account import Account
from posmon.sim.lighter.markets import LighterMarket
from posmon.sim.lighter.records import ZERO, position_json


def _mark(account: Account, market: LighterMarket) -> Decimal | None:
    return account.exchange.engine.mark(market.symbol)


def order_book(market: LighterMarket) -> dict[str, Any]:
    """An ``OrderBook`` (orderBooks)."""
    return {
        "symbol": market.symbol, "market_id": market.market_id, "market_type": "perp", "base_asset_id": 0,
        "quote_asset_id": 3, "status": "active", "taker_fee": "0.0000", "maker_fee": "0.0000",
        "liquidation_fee": "1.0000", "min_base_amount": market.size_str(market.min_base_amount),
        "min_quote_amount": f"{market.min_quote_amount:f}", "supported_size_decimals": market.size_decimals,
        "supported_price_decimals": market.price_decimals, "supported_quote_decimals": 6,
        "order_quote_limit": "", "is_maker_fee_enabled": False, "is_taker_fee_enabled": False, "created_at": 0,
        "multiplier": "1", "start_timestamp": 0, "end_timestamp": 0, "settlement_type": 0, "settlement_price": 0,
        "settlement_cap": 0, "outcome": 0, "default_price": 0, "operator_account_index": 0, "is_frozen": False,
        "open_interest": "0",
    }  # fmt: skip


def order_book_detail(account: Account, market: LighterMarket) -> dict[str, Any]:
    """A ``PerpsOrderBookDetail`` (orderBookDetails): the market's rules, marks and (zero) daily stats."""
    mark = _mark(account, market) or ZERO
    price = float(mark)  # the venue sends these daily figures as JSON numbers; nothing trades on them
    detail = order_book(market)
    detail.pop("open_interest")
    detail.update({
        "size_decimals": market.size_decimals, "price_decimals": market.price_decimals, "quote_multiplier": 1,
        "default_initial_margin_fraction": market.default_imf, "min_initial_margin_fraction": market.min_imf,
        "maintenance_margin_fraction": market.default_imf * 3 // 5, "closeout_margin_fraction": market.default_imf // 3,
        "last_trade_price": price, "daily_trades_count": 0, "daily_base_token_volume": 0,
        "daily_quote_token_volume": 0, "daily_price_low": price, "daily_price_high": price, "daily_price_change": 0,
        "open_interest": 0, "daily_chart": {}, "strategy_index": 0, "funding_clamp_small": "0.0500",
        "funding_clamp_big": "4.0000", "base_interest_rate": "0.0100", "created_at": "0",
        "mark_price": market.price_str(mark), "index_price": market.price_str(mark), "market_flags": 0,
        "funding_premium_multiplier": 0,
    })  # fmt: skip
    return detail


FUNDING_INTERVAL_MS = 3_600_000  # Lighter funds every hour


def market_stats(
    account: Account,
    market: LighterMarket,
    time_ms: int,
    funding_rate: Decimal = ZERO,
    funding_interval_ms: int = FUNDING_INTERVAL_MS,
) -> dict[str, Any] | None:
    """The ``market_stats`` payload of one market, or None before it has a mark; ``funding_rate`` (a fraction, the
    simulator's ``funding_rate``) is the rate in force for the next hourly ``funding_timestamp``."""
    mark = _mark(account, market)
    if mark is None:
        return None
    price = market.price_str(mark)
    return {
        "symbol": market.symbol, "market_id": market.market_id, "index_price": price, "mark_price": price,
        "last_trade_price": price, "open_interest": "0", "current_funding_rate": f"{funding_rate:.6f}",
        "funding_rate": f"{funding_rate:.6f}", "daily_base_token_volume": 0,
        "funding_timestamp": time_ms - time_ms % funding_interval_ms + funding_interval_ms,
        "daily_quote_token_volume": 0, "daily_price_low": float(mark), "daily_price_high": float(mark),
        "daily_price_change": 0,
    }  # fmt: skip


def positions(account: Account, imf: dict[int, int], market_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """``AccountPosition`` per market (every market unless ``market_ids``)."""
    held = {p.symbol: p for p in account.exchange.engine.positions()}
    out = []
    for market in account.markets.values():
        if market_ids is not None and market.market_id not in market_ids:
            continue
        out.append(position_json(
            market, held.get(market.symbol), _mark(account, market),
            account.exchange.engine.realized_pnl(market.symbol), len(account.open_orders(market.market_id)),
            imf.get(market.market_id, market.default_imf),
        ))  # fmt: skip
    return out


def detailed_account(account: Account, collateral: Decimal, imf: dict[int, int], time_ms: int) -> dict[str, Any]:
    """A ``DetailedAccount`` (GET /api/v1/account)."""
    pos = positions(account, imf)
    unrealized = sum((Decimal(p["unrealized_pnl"]) for p in pos), ZERO)
    realized = sum((Decimal(p["realized_pnl"]) for p in pos), ZERO)
    value = collateral + realized + unrealized
    used = sum((Decimal(p["position_value"]) * imf.get(p["market_id"], 500) / 10_000 for p in pos), ZERO)
    money = Decimal("0.000001")
    return {
        "code": 200, "account_type": 0, "account_trading_mode": 0, "index": account.account_index,
        "l1_address": "0x" + "51" * 20, "cancel_all_time": 0, "total_order_count": len(account.open_orders()),
        "total_isolated_order_count": 0, "pending_order_count": 0,
        "available_balance": f"{max(value - used, ZERO).quantize(money):f}", "status": 1,
        "collateral": f"{(collateral + realized).quantize(money):f}", "account_index": account.account_index,
        "name": "posmon-sim", "description": "Lighter-protocol simulator account", "can_invite": False,
        "referral_points_percentage": "0", "positions": pos, "assets": [],
        "total_asset_value": f"{value.quantize(money):f}", "cross_asset_value": f"{value.quantize(money):f}",
        "pool_info": None, "shares": [], "created_at": 0, "transaction_time": time_ms * 1000, "pending_unlocks": [],
        "approved_integrators": [], "can_rfq": False, "cross_initial_margin_requirement": f"{used.quantize(money):f}",
        "cross_maintenance_margin_requirement": f"{(used * 3 / 5).quantize(money):f}", "can_rfq_market_ids": [],
        "metadata": None, "agent_enabled": False, "bo_positions": [],
    }  # fmt: skip
