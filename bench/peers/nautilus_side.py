"""NautilusTrader's side of the peer benchmark: its OrderEmulator inside a BacktestEngine fed QuoteTicks.

Runs in the benchmark's own virtualenv (``bench/peers/.venv-nautilus``), never in posmon's: it imports nothing
of posmon. Reads one JSON object (the row) from argv[1], prints one JSON object (its figures) on stdout.

A strategy submits ``stops`` emulated SELL STOP_MARKET orders (``emulation_trigger=BID_ASK``) spread over
``symbols`` instruments on start; they rest in the emulator below every bid of the path. ``ticks`` QuoteTicks
are fed round robin over the instruments, then ``rounds`` triggering ticks on the first instrument, each
falling through its own ``triggers`` more stops (and no other). Tick throughput is timed inside the run (first
tick to the last quiet tick seen by the strategy, which subscribed before the emulator and so sees each tick
first): the start-up submission of the orders is excluded. A triggering tick is timed from the strategy seeing
it to the emulator releasing the last order it triggered (``OrderReleased``: the order leaves the emulator for
the execution engine).
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide, TriggerType
from nautilus_trader.model.events import OrderReleased
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

VENUE = Venue("SIM")
LEVEL = 100.0  # every instrument's mid, like posmon's side
SPREAD = 0.01


def instrument(i: int) -> CryptoPerpetual:
    """A linear perpetual like the test kit's BTCUSDT-PERP, renamed (the kit has no 100 distinct perpetuals)."""
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(f"S{i:03d}USDT-PERP"), VENUE),
        raw_symbol=Symbol(f"S{i:03d}USDT"),
        base_currency=BTC,
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=2,
        price_increment=Price.from_str("0.01"),
        size_precision=3,
        size_increment=Quantity.from_str("0.001"),
        max_quantity=Quantity.from_str("1000000.000"),
        min_quantity=Quantity.from_str("0.001"),
        max_notional=None,
        min_notional=None,
        max_price=Price.from_str("1000000.00"),
        min_price=Price.from_str("0.01"),
        margin_init=Decimal("0.05"),
        margin_maint=Decimal("0.025"),
        maker_fee=Decimal("0.0002"),
        taker_fee=Decimal("0.0004"),
        ts_event=0,
        ts_init=0,
    )


class EmulatedStopsConfig(StrategyConfig, frozen=True):
    stops: int
    symbols: int
    triggers: int
    rounds: int


def trigger_level(r: int, k: int) -> float:
    """Round r's k-th trigger stop (k < 5): a band 0.04 wide, 0.1 below the previous round's."""
    return LEVEL - 1.0 - 0.1 * r - 0.01 * k


def trigger_bid(r: int) -> float:
    """Below every stop of round r, above every stop of round r + 1."""
    return LEVEL - 1.0 - 0.1 * r - 0.06


class EmulatedStops(Strategy):
    """Submits the resting emulated stops on start and stamps the ticks it sees."""

    def __init__(self, config: EmulatedStopsConfig, instruments: list[CryptoPerpetual], quiet_ticks: int) -> None:
        super().__init__(config)
        self.instruments = instruments
        self.quiet_ticks = quiet_ticks
        self.seen = 0
        self.first_ns = 0
        self.last_quiet_ns = 0
        self.trigger_seen_ns: list[int] = []  # per triggering tick
        self.released: list[tuple[int, int]] = []  # (triggering tick's index, perf_counter_ns)

    def on_start(self) -> None:
        for inst in self.instruments:  # before any order: the strategy sees each tick before the emulator
            self.subscribe_quote_ticks(inst.id)
        cfg = self.config
        qty = Quantity.from_str("0.001")
        levels = [(self.instruments[k % cfg.symbols], LEVEL * 0.5 - 0.01 * (k % 2000)) for k in range(cfg.stops)]
        levels += [(self.instruments[0], trigger_level(r, k)) for r in range(cfg.rounds) for k in range(cfg.triggers)]
        for inst, trigger in levels:
            order = self.order_factory.stop_market(
                instrument_id=inst.id,
                order_side=OrderSide.SELL,
                quantity=qty,
                trigger_price=Price(trigger, 2),
                emulation_trigger=TriggerType.BID_ASK,
            )
            self.submit_order(order)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        now = time.perf_counter_ns()
        self.seen += 1
        if self.seen == 1:
            self.first_ns = now
        if self.seen <= self.quiet_ticks:
            self.last_quiet_ns = now
        else:
            self.trigger_seen_ns.append(now)

    def on_order_released(self, event: OrderReleased) -> None:
        self.released.append((len(self.trigger_seen_ns) - 1, time.perf_counter_ns()))


def run(row: dict) -> dict:
    stops, symbols, ticks = row["stops"], row["symbols"], row["ticks"]
    triggers, rounds = row["triggers"], row["rounds"] if row["triggers"] else 0
    engine = BacktestEngine(
        config=BacktestEngineConfig(
            trader_id="BENCH-001", logging=LoggingConfig(log_level="ERROR", bypass_logging=True)
        )
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(1_000_000, USDT)],
    )
    instruments = [instrument(i) for i in range(symbols)]
    for inst in instruments:
        engine.add_instrument(inst)
    # Quiet ticks: bids wander 0.5 around the level (far above every resting stop), round robin over instruments.
    data = []
    ts = 1_700_000_000_000_000_000
    for n in range(ticks):
        inst = instruments[n % symbols]
        bid = LEVEL - SPREAD / 2 + 0.5 * ((n * 7919) % 200 - 100) / 100
        data.append(
            QuoteTick(
                inst.id,
                Price(bid, 2),
                Price(bid + SPREAD, 2),
                Quantity.from_str("100.000"),
                Quantity.from_str("100.000"),
                ts + n * 1_000_000,
                ts + n * 1_000_000,
            )
        )
    for r in range(rounds):  # each falls through its round's stops only
        bid, at = trigger_bid(r), ts + (ticks + r) * 1_000_000
        data.append(
            QuoteTick(
                instruments[0].id,
                Price(bid, 2),
                Price(bid + SPREAD, 2),
                Quantity.from_str("100.000"),
                Quantity.from_str("100.000"),
                at,
                at,
            )
        )
    engine.add_data(data)
    strategy = EmulatedStops(
        EmulatedStopsConfig(stops=stops, symbols=symbols, triggers=triggers, rounds=rounds),
        instruments,
        quiet_ticks=ticks,
    )
    engine.add_strategy(strategy)
    t0 = time.perf_counter()
    engine.run()
    run_s = time.perf_counter() - t0
    resting = len(engine.cache.orders_emulated())
    engine.dispose()
    quiet_s = (strategy.last_quiet_ns - strategy.first_ns) / 1e9
    out = {
        "engine_run_s": round(run_s, 3),
        "ticks": ticks,
        "ticks_seen": strategy.seen,
        "ticks_per_s": round((ticks - 1) / quiet_s) if quiet_s > 0 else None,
        "resting_after": resting,
        "released": len(strategy.released),
    }
    if rounds:
        per_tick = [
            round((max(t for i, t in strategy.released if i == r) - seen) / 1e6, 3)
            for r, seen in enumerate(strategy.trigger_seen_ns)
            if any(i == r for i, _ in strategy.released)
        ]
        out["trigger"] = {"stops_per_tick": triggers, "ticks": rounds, "to_last_release_ms": per_tick}
    return out


def main() -> None:
    import nautilus_trader

    row = json.loads(sys.argv[1])
    out = run(row)
    out["version"] = nautilus_trader.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
