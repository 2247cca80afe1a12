"""Account endpoints: positions, position mode, leverage (brackets and changes) and user-stream listen keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from posmon.domain.orders import Side
from posmon.sim.aster import errors as e
from posmon.sim.aster import params as p
from posmon.sim.aster.context import Ctx, optional_symbol, require_symbol
from posmon.sim.aster.errors import ApiError, mandatory
from posmon.sim.aster.filters import fmt
from posmon.sim.aster.sim import ACCOUNT, AsterSim

MAX_NOTIONAL = 1_000_000  # the one bracket's notional cap, at any leverage


def position_risk(ctx: Ctx) -> list[dict[str, Any]]:
    """Every symbol's position (zero ones too, as the single-account endpoint does): LONG+SHORT or BOTH."""
    sim = ctx.sim
    symbol = optional_symbol(sim, ctx.values)
    held = {(pos.symbol, pos.side): pos for pos in sim.exchange.positions()}
    engine = sim.exchange.engine
    rows = []
    for name in [symbol] if symbol is not None else list(sim.filters):
        mark = engine.mark(name) or Decimal(0)
        long, short = held.get((name, Side.LONG)), held.get((name, Side.SHORT))
        if sim.exchange.hedge_mode:
            entries = [
                ("LONG", long.qty if long else Decimal(0), long.entry_price if long else Decimal(0)),
                ("SHORT", -short.qty if short else Decimal(0), short.entry_price if short else Decimal(0)),
            ]
        else:
            position = long or short
            amount = (long.qty if long else Decimal(0)) - (short.qty if short else Decimal(0))
            entries = [("BOTH", amount, position.entry_price if position else Decimal(0))]
        for side, amount, entry in entries:
            rows.append(_position_row(sim, name, side, amount, entry, mark))
    return rows


def balance(ctx: Ctx) -> list[dict[str, Any]]:
    """``GET /fapi/v2/balance`` (v3 the same): the USDT asset (the wallet balance, and with unrealized PnL)."""
    sim = ctx.sim
    wallet = sim.exchange.balance()
    engine = sim.exchange.engine
    unrealized = sum(
        (
            (mark - pos.entry_price) * pos.qty * pos.side.sign
            for pos in engine.positions()
            if (mark := engine.mark(pos.symbol)) is not None
        ),
        Decimal(0),
    )
    available = wallet + unrealized
    return [
        {
            "accountAlias": "SgsR",
            "asset": "USDT",
            "balance": fmt(wallet),
            "crossWalletBalance": fmt(wallet),
            "crossUnPnl": fmt(unrealized),
            "availableBalance": fmt(available),
            "maxWithdrawAmount": fmt(available),
            "marginAvailable": True,
            "updateTime": sim.now_ms(),
        }
    ]


def position_mode(ctx: Ctx) -> dict[str, Any]:
    return {"dualSidePosition": ctx.sim.exchange.hedge_mode}


def change_position_mode(ctx: Ctx) -> dict[str, Any]:
    sim = ctx.sim
    if p.text(ctx.values, "dualSidePosition") is None:
        raise mandatory("dualSidePosition")
    hedge = p.boolean(ctx.values, "dualSidePosition")
    engine = sim.exchange.engine
    if hedge == sim.exchange.hedge_mode:
        raise ApiError(e.NO_NEED_TO_CHANGE_POSITION_SIDE)
    if engine.open_orders():
        raise ApiError(e.POSITION_SIDE_CHANGE_OPEN_ORDERS)
    if engine.positions():
        raise ApiError(e.POSITION_SIDE_CHANGE_POSITION)
    sim.exchange.hedge_mode = engine.hedge_mode = hedge
    return {"code": 200, "msg": "success"}


def change_leverage(ctx: Ctx) -> dict[str, Any]:
    """``POST /fapi/v1/leverage``: the symbol's initial leverage, 1 to its bracket's maximum (else -4028)."""
    sim = ctx.sim
    symbol = require_symbol(sim, ctx.values)
    if p.text(ctx.values, "leverage") is None:
        raise mandatory("leverage")
    leverage = p.integer(ctx.values, "leverage")
    assert leverage is not None
    set_to = sim.exchange.set_leverage(symbol, leverage)  # the engine's refusal answers -4028
    return {"leverage": set_to, "maxNotionalValue": str(MAX_NOTIONAL), "symbol": symbol}


def leverage_bracket(ctx: Ctx) -> Any:
    sim = ctx.sim
    symbol = optional_symbol(sim, ctx.values)
    engine = sim.exchange.engine

    def entry(name: str) -> dict[str, Any]:
        return {
            "symbol": name,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": engine.max_leverage(name),
                    "notionalCap": MAX_NOTIONAL,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.005,
                    "cum": 0.0,
                },
            ],
        }

    return entry(symbol) if symbol is not None else [entry(name) for name in sim.filters]


def new_listen_key(ctx: Ctx) -> dict[str, Any]:
    return {"listenKey": ctx.sim.listen_keys.create(ACCOUNT)}


def keepalive_listen_key(ctx: Ctx) -> dict[str, Any]:
    ctx.sim.listen_keys.keepalive(ACCOUNT, p.text(ctx.values, "listenKey"))
    return {}


def close_listen_key(ctx: Ctx) -> dict[str, Any]:
    ctx.sim.listen_keys.delete(ACCOUNT, p.text(ctx.values, "listenKey"))
    return {}


def _position_row(
    sim: AsterSim, symbol: str, side: str, amount: Decimal, entry: Decimal, mark: Decimal
) -> dict[str, Any]:
    filters = sim.filters[symbol]
    unrealized = (mark - entry) * amount if amount and mark else Decimal(0)
    return {
        "symbol": symbol,
        "positionAmt": fmt(amount, filters.step_size),
        "entryPrice": fmt(entry),
        "breakEvenPrice": fmt(entry),
        "markPrice": fmt(mark, filters.tick_size),
        "unRealizedProfit": fmt(unrealized),
        "liquidationPrice": "0",
        "leverage": str(sim.exchange.engine.leverage(symbol)),
        "maxNotionalValue": str(MAX_NOTIONAL),
        "marginType": "cross",
        "isolatedMargin": "0",
        "isAutoAddMargin": "false",
        "positionSide": side,
        "notional": fmt(amount * mark),
        "isolatedWallet": "0",
        "updateTime": sim.orders.position_time(symbol, side) if amount else 0,
    }
