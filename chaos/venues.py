"""The two venues as the campaign drives them: a simulator served on loopback, its account, workload and faults.

Each ``Venue`` owns one simulator for one run. The campaign reads the account straight from the simulator's
engine (positions, resting orders), plays "another program" on the same account and flips the simulators'
fault switches; the daemon only ever sees the protocol over HTTP and websockets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import trio

from posmon.domain.orders import Side, SymbolRules
from posmon.domain.protection import parse_client_order_id
from posmon.exchange.lighter.client_ids import ClientIds
from posmon.sim.aster import AsterSim, RateLimitConfig, serve_aster_sim
from posmon.sim.aster import credentials as aster_cred
from posmon.sim.engine import Fill
from posmon.sim.exchange import SimExchange
from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
from posmon.sim.lighter import credentials as lighter_cred
from posmon.sim.markets import market, rules_for

PREFIX = "pm"
UNLIMITED = RateLimitConfig(weight_per_minute=10**9, orders_per_minute=10**9)


@dataclass(frozen=True, slots=True)
class Resting:
    """One of posmon's orders resting on the venue."""

    client_id: str
    symbol: str
    side: Side | None  # the position it closes (None: not a closing order)
    tranche_id: int | None
    purpose: str  # "T", "S", "C", "E" or "?"
    qty: Decimal
    price: Decimal | None = None  # a limit's price (a TP)
    stop_price: Decimal | None = None  # a stop's trigger (an SL)
    filled: Decimal = Decimal(0)  # of the order, already filled (``qty`` is what is left)


@dataclass
class FillLog:
    """Every fill of posmon's orders, as the venue executed them (the evidence for two invariants)."""

    fills: list[Fill]
    executed_by_client: dict[str, set[str]]  # posmon client id -> venue orders that traded under it

    def __init__(self) -> None:
        self.fills = []
        self.executed_by_client = {}


class Venue:
    """Shared behaviour; ``AsterVenue`` and ``LighterVenue`` fill in the protocol-specific parts."""

    name: str
    hedge: bool
    symbols: tuple[str, ...]
    exchange: SimExchange
    fault_kinds: tuple[str, ...]

    def __init__(self) -> None:
        self.fill_log = FillLog()

    # ---- serving ------------------------------------------------------------------------------------------------

    async def serve(self, nursery: trio.Nursery) -> tuple[str, str]:
        raise NotImplementedError

    def config(self, rest_url: str, ws_url: str) -> str:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def connected(self) -> bool:
        """The daemon holds its streams open (its start-up is past the account snapshot)."""
        raise NotImplementedError

    # ---- the account --------------------------------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, Side], Decimal]:
        return {(p.symbol, p.side): p.qty for p in self.exchange.engine.positions() if p.qty}

    def resting(self) -> list[Resting]:
        raise NotImplementedError

    def base_price(self, symbol: str) -> Decimal:
        raise NotImplementedError

    def tick(self, symbol: str) -> Decimal:
        raise NotImplementedError

    def rules(self, symbol: str) -> SymbolRules:
        """The symbol's trading rules (for what a ladder level's TP must cover)."""
        raise NotImplementedError

    def base(self, symbol: str) -> str:
        """The asset a symbol trades (Aster ``BTCUSDT``, Lighter ``BTC``: both ``BTC``); a hedge's legs share it."""
        return symbol

    def symbol_of(self, base: str) -> str:
        return next(s for s in self.symbols if self.base(s) == base)

    # ---- workload -----------------------------------------------------------------------------------------------

    def set_marks(self, prices: dict[str, Decimal]) -> None:
        self.exchange.set_marks(prices)

    def entry(self, symbol: str, side: Side, notional: Decimal) -> Decimal:
        raise NotImplementedError

    def silent(self, symbol: str, side: Side, qty: Decimal, *, frame: bool) -> None:
        raise NotImplementedError

    def liquidate(self, symbol: str, side: Side, qty: Decimal | None, *, adl: bool) -> Decimal:
        raise NotImplementedError

    # ---- faults -------------------------------------------------------------------------------------------------

    def inject(self, kind: str, rng: random.Random, nursery: trio.Nursery) -> None:
        raise NotImplementedError

    def clear_faults(self) -> None:
        """Stop every fault (settling): pending ones dropped, stalls released, streams flowing."""
        self.exchange.faults.clear()
        self.exchange.stall_prices(False)

    def partial_tp(self, pick: float, factor: float) -> bool:
        return False  # emulated exits (Lighter): no TP rests on the venue

    def go_down(self, seconds: float, nursery: trio.Nursery) -> None:
        """The venue's streams down for ``seconds`` (dropped, then silent: no mark, no account frame), REST up."""
        self.stall_user_stream(True)
        self.exchange.stall_prices(True)
        self.drop_websockets()

        def back() -> None:
            self.exchange.stall_prices(False)
            self.stall_user_stream(False)

        self._later(nursery, seconds, back)

    def stall_user_stream(self, on: bool) -> None:
        raise NotImplementedError

    def drop_websockets(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _later(nursery: trio.Nursery, seconds: float, action: Callable[[], None]) -> None:
        async def run() -> None:
            await trio.sleep(seconds)
            action()

        nursery.start_soon(run)

    def _stall_prices_for(self, seconds: float, nursery: trio.Nursery) -> None:
        self.exchange.stall_prices(True)

        async def resume() -> None:
            await trio.sleep(seconds)
            self.exchange.stall_prices(False)

        nursery.start_soon(resume)


class AsterVenue(Venue):
    name = "aster"
    hedge = True
    fault_kinds = (
        "5xx_after_execute",
        "5xx_before_execute",
        "http_429",
        "http_418",
        "timeout",
        "timeout_after_execute",
        "lookup_5xx",
        "read_5xx",
        "ws_drop",
        "ws_stall",
        "listen_key_expiry",
        "user_stream_stall",
        "duplicate_frames",
    )

    def __init__(self, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> None:
        super().__init__()
        self.symbols = symbols
        self.exchange = SimExchange(rules_for(symbols), hedge_mode=True)
        self.exchange.set_marks({s: market(s).base_price for s in symbols})
        self.sim = AsterSim(self.exchange, limits=UNLIMITED)
        self.exchange.engine.fill_listener = self._on_fill

    async def serve(self, nursery: trio.Nursery) -> tuple[str, str]:
        return await nursery.start(serve_aster_sim, self.sim)

    def config(self, rest_url: str, ws_url: str) -> str:
        return (
            f'[aster]\nrest_url = "{rest_url}"\nws_url = "{ws_url}"\nauth = "v3"\n'
            f'user = "{aster_cred.DEFAULT_USER_ADDRESS}"\n'
            f"symbols = {list(self.symbols)!r}\n"
        ).replace("'", '"')

    def env(self) -> dict[str, str]:
        return {"POSMON_ASTER_SIGNER_PRIVATE_KEY": aster_cred.DEFAULT_SIGNER_PRIVATE_KEY}

    def connected(self) -> bool:
        return self.sim.counters.ws_open >= 2  # the mark-price and the user-data streams

    def base_price(self, symbol: str) -> Decimal:
        return market(symbol).base_price

    def tick(self, symbol: str) -> Decimal:
        return market(symbol).rules.tick_size

    def rules(self, symbol: str) -> SymbolRules:
        return market(symbol).rules

    def base(self, symbol: str) -> str:
        return symbol.removesuffix("USDT")

    def stall_user_stream(self, on: bool) -> None:
        self.sim.stall_user_stream(on)

    def drop_websockets(self) -> None:
        self.sim.drop_websockets()

    def resting(self) -> list[Resting]:
        out = []
        for order in self.exchange.engine.open_orders():
            parsed = parse_client_order_id(PREFIX, order.client_id)
            if parsed is None and not order.client_id.startswith(PREFIX):
                continue
            side = Side(order.position_side) if order.position_side in ("LONG", "SHORT") else None
            out.append(
                Resting(
                    order.client_id,
                    order.symbol,
                    side,
                    parsed[0] if parsed else None,
                    parsed[1].value if parsed else "?",
                    order.qty - order.filled_qty,
                    order.price,
                    order.stop_price,
                    order.filled_qty,
                )
            )
        return out

    def _on_fill(self, fill: Fill) -> None:
        if fill.client_id.startswith(PREFIX):
            self.fill_log.fills.append(fill)
            self.fill_log.executed_by_client.setdefault(fill.client_id, set()).add(fill.client_id)

    def entry(self, symbol: str, side: Side, notional: Decimal) -> Decimal:
        qty = self.exchange.entry_qty(symbol, notional)
        if qty is None:
            return Decimal(0)
        self.exchange.external_entry(symbol, side, qty)
        return qty

    def silent(self, symbol: str, side: Side, qty: Decimal, *, frame: bool) -> None:
        self.exchange.silent_position(symbol, side, qty, frame=frame)

    def liquidate(self, symbol: str, side: Side, qty: Decimal | None, *, adl: bool) -> Decimal:
        return self.exchange.liquidate(symbol, side, qty, adl=adl, cancel_orders=not adl)

    def inject(self, kind: str, rng: random.Random, nursery: trio.Nursery) -> None:
        sim = self.sim
        trading = rng.choice(("/fapi/v3/order", "/fapi/v3/batchOrders"))
        n = rng.randint(1, 3)
        if kind == "5xx_after_execute":
            sim.fail_next(trading, n, after_execute=True)
        elif kind == "5xx_before_execute":
            sim.fail_next(trading, n)
        elif kind == "http_429":
            sim.reject_next(trading, 429, n, retry_after=1)
        elif kind == "http_418":
            sim.reject_next(
                rng.choice((trading, "/fapi/v3/openOrders", "/fapi/v3/positionRisk")), 418, 1, retry_after=1
            )
        elif kind in ("timeout", "timeout_after_execute"):
            sim.stall_next(trading, n, after_execute=kind == "timeout_after_execute")

            async def release() -> None:
                await trio.sleep(rng.uniform(2.5, 4.0))
                sim.release_stalled()

            nursery.start_soon(release)
        elif kind == "lookup_5xx":
            sim.fail_next("/fapi/v3/order", n, method="GET")
        elif kind == "read_5xx":
            sim.fail_next(rng.choice(("/fapi/v3/openOrders", "/fapi/v3/positionRisk", "/fapi/v3/listenKey")), n)
        elif kind == "ws_drop":
            sim.drop_websockets()
        elif kind == "ws_stall":
            self._stall_prices_for(rng.uniform(1.0, 4.0), nursery)
        elif kind == "listen_key_expiry":
            sim.expire_listen_key()
        elif kind == "user_stream_stall":
            sim.stall_user_stream(True)
            self._later(nursery, rng.uniform(0.5, 3.0), lambda: sim.stall_user_stream(False))
        elif kind == "duplicate_frames":
            sim.duplicate_user_frames(n)
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def clear_faults(self) -> None:
        super().clear_faults()
        self.sim.http_faults.clear()
        self.sim.release_stalled()
        self.sim.stall_user_stream(False)
        self.sim.user_duplicates = 0

    def partial_tp(self, pick: float, factor: float) -> bool:
        """A resting TP of posmon's trades partly (a thin book): the tranche must be resized, its SL too."""
        tps = [
            o for o in self.exchange.engine.open_orders() if o.client_id.startswith(PREFIX) and o.type.value == "LIMIT"
        ]
        if not tps:
            return False
        order = tps[min(len(tps) - 1, int(pick * len(tps)))]
        step = self.exchange.engine.rules[order.symbol].step_size
        left = order.qty - order.filled_qty
        qty = (left * Decimal(str(factor)) / step).to_integral_value() * step
        if not step <= qty < left:
            return False
        self.exchange.trade_partially(order.symbol, order.client_id, qty)
        return True


class LighterVenue(Venue):
    name = "lighter"
    hedge = False
    fault_kinds = (
        "5xx_after_execute",
        "5xx_before_execute",
        "http_429",
        "timeout_after_execute",
        "nonce_error",
        "read_5xx",
        "ws_drop",
        "ws_stall",
        "user_stream_stall",
        "duplicate_frames",
    )

    def __init__(self, symbols: tuple[str, ...] = ("BTC", "ETH")) -> None:
        super().__init__()
        self.symbols = symbols
        self.exchange = build_exchange()
        self.sim = LighterSim(self.exchange)
        self.exchange.engine.fill_listener = self._on_fill
        self._ids = ClientIds(PREFIX)

    async def serve(self, nursery: trio.Nursery) -> tuple[str, str]:
        return await nursery.start(serve_lighter_sim, self.sim)

    def config(self, rest_url: str, ws_url: str) -> str:
        return (
            f'[lighter]\nrest_url = "{rest_url}"\nws_url = "{ws_url}"\n'
            f"account_index = {lighter_cred.DEFAULT_ACCOUNT_INDEX}\n"
            f"api_key_index = {lighter_cred.DEFAULT_API_KEY_INDEX}\n"
            f"chain_id = {lighter_cred.DEFAULT_CHAIN_ID}\n"
            f'tier = "premium"\nsymbols = {list(self.symbols)!r}\n'
        ).replace("'", '"')

    def env(self) -> dict[str, str]:
        return {"POSMON_LIGHTER_API_PRIVATE_KEY": lighter_cred.DEFAULT_API_PRIVATE_KEY}

    def connected(self) -> bool:
        return self.sim.counters.ws_open >= 1 and self.sim.hub.has_subscribers(f"account_all/{self.sim.account_index}")

    def _market(self, symbol: str) -> Any:
        return self.sim.account.by_symbol[symbol]

    def base_price(self, symbol: str) -> Decimal:
        return self._market(symbol).base_price

    def tick(self, symbol: str) -> Decimal:
        return self._market(symbol).price_unit

    def set_marks(self, prices: dict[str, Decimal]) -> None:
        self.exchange.set_marks(prices)
        self.sim.flush()

    def rules(self, symbol: str) -> SymbolRules:
        return self.exchange.engine.rules[symbol]

    def stall_user_stream(self, on: bool) -> None:
        self.sim.stall_account_pushes(on)

    def drop_websockets(self) -> None:
        self.sim.drop_websockets()

    def client_id(self, client_order_index: int) -> str | None:
        try:
            return self._ids.client_id(client_order_index)
        except ValueError:
            return None

    def resting(self) -> list[Resting]:
        out = []
        for record in self.sim.account.open_orders():
            if not record.client_order_index:
                continue
            client_id = self.client_id(record.client_order_index) or f"lighter-{record.client_order_index}"
            parsed = parse_client_order_id(PREFIX, client_id)
            out.append(
                Resting(
                    client_id,
                    record.market.symbol,
                    None,
                    parsed[0] if parsed else None,
                    parsed[1].value if parsed else "?",
                    record.base_amount - record.filled_base,
                )
            )
        return out

    def _on_fill(self, fill: Fill) -> None:
        record = self.sim.account.by_engine_id.get(fill.client_id)
        if record is None or not record.client_order_index:
            return
        client_id = self.client_id(record.client_order_index) or f"lighter-{record.client_order_index}"
        self.fill_log.fills.append(
            Fill(client_id, fill.symbol, fill.position_side, fill.reduce_only, fill.qty, fill.before, fill.after)
        )
        self.fill_log.executed_by_client.setdefault(client_id, set()).add(str(record.order_index))

    def entry(self, symbol: str, side: Side, notional: Decimal) -> Decimal:
        qty = self.exchange.entry_qty(symbol, notional)
        if qty is None:
            return Decimal(0)
        self.sim.external_entry(symbol, side, qty)
        return qty

    def silent(self, symbol: str, side: Side, qty: Decimal, *, frame: bool) -> None:
        self.sim.silent_position(symbol, side, qty, frame=frame)

    def liquidate(self, symbol: str, side: Side, qty: Decimal | None, *, adl: bool) -> Decimal:
        return self.sim.liquidate(symbol, qty, adl=adl)

    def inject(self, kind: str, rng: random.Random, nursery: trio.Nursery) -> None:
        sim = self.sim
        trading = rng.choice(("/api/v1/sendTx", "/api/v1/sendTxBatch"))
        n = rng.randint(1, 3)
        if kind == "5xx_after_execute":
            sim.fail_next(trading, 503, n, after_execute=True)
        elif kind == "5xx_before_execute":
            sim.fail_next(trading, rng.choice((500, 502, 503)), n)
        elif kind == "http_429":
            sim.fail_next(trading, 429, n)
        elif kind == "timeout_after_execute":
            sim.delay_next(trading, rng.uniform(2.5, 4.0), n)
        elif kind == "nonce_error":
            sim.force_nonce_error(n)
        elif kind == "read_5xx":
            sim.fail_next(rng.choice(("/api/v1/account", "/api/v1/accountActiveOrders", "/api/v1/nextNonce")), 503, n)
        elif kind == "ws_drop":
            sim.drop_websockets()
        elif kind == "ws_stall":
            self._stall_prices_for(rng.uniform(1.0, 4.0), nursery)
        elif kind == "user_stream_stall":
            sim.stall_account_pushes(True)
            self._later(nursery, rng.uniform(0.5, 3.0), lambda: sim.stall_account_pushes(False))
        elif kind == "duplicate_frames":
            sim.duplicate_pushes(n)
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def clear_faults(self) -> None:
        super().clear_faults()
        self.sim.faults.clear()
        self.sim.stall_account_pushes(False)
        self.sim.push_duplicates = 0


VENUES: dict[str, Callable[[], Venue]] = {"aster": AsterVenue, "lighter": LighterVenue}
