"""The demo's script: its configuration, each symbol's price path and what happens when.

Every moment is fixed in advance, so each run shows the same story: an exchange TP fill (BTC), an instant close
through the TP (ETH), a second tranche at the -5 % threshold and a merge past the tranche limit (DOGE), a restart
while the stop-loss on the exchange keeps protecting (SOL), and a timeout after the restart (XRP). The exit plans
(issue 15): a three-level TP ladder with break-even after TP1, one level closed at once by a spike (BNB), a risk
limit refusing an operator entry (BNB), and an operator entry trailing its stop until the callback (SOL, after the
restart). Prices move along keyframes with a small fixed ripple, never a random walk.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from posmon.domain.orders import Side
from posmon.domain.rounding import round_down

D = Decimal
TICK_SECONDS = Decimal("0.5")  # how often the marks move (and the simulator publishes them)
RESTART_DOWN_AT = Decimal("14.5")  # posmon stops here ...
RESTART_UP_AT = Decimal("17.5")  # ... and starts again on the same store here
RESTART_CHECK_AT = Decimal("19")  # the restarted daemon has reconciled by now
END_AT = Decimal("29.5")
LOOK_AFTER = Decimal("0.25")  # the narrator reads the store this long after each tick (stop moves send no notice)

SYMBOLS = ("BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")

# The demo's configuration, written beside its store so `posmon history --config` reads the same store.
CONFIG_TEMPLATE = """\
# posmon demo: the configuration the demo ran with; its store is beside this file.
[daemon]
venue = "aster"
store = {store}
log_level = "WARNING"

[risk]
tp_pct = 1.5
sl_pct = 8.0
tranche_pnl_increment_pct = 5.0
max_tranches_per_symbol_side = 5
instant_tp_enabled = true
max_hold_seconds = 0

# BTC: no instant TP, so its resting TP limit is what takes the profit.
[risk.symbols.BTCUSDT]
instant_tp_enabled = false

# XRP: held at most 18 s, then closed at market.
[risk.symbols.XRPUSDT]
max_hold_seconds = 18

# BNB: a take-profit ladder (30 % at +1 %, 30 % at +2 %, the rest at +3 %), the stop to break-even (+0.1 %)
# once level 1 filled; the position is at most 1000 USDT.
[risk.symbols.BNBUSDT]
tp_levels = [[1, 30], [2, 30], [3, 40]]
breakeven_after_tp = 1
breakeven_offset_pct = 0.1
max_notional_per_symbol = 1000

# DOGE: averaged down into several tranches; at most 3, wide exits so the tranches stay open.
[risk.symbols.DOGEUSDT]
max_tranches_per_symbol_side = 3
tp_pct = 10.0
sl_pct = 14.0

[sim]
symbols = {symbols}
trader_enabled = false
"""


def config_text(store: Path) -> str:
    quoted = '"' + str(store).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return CONFIG_TEMPLATE.format(store=quoted, symbols="[" + ", ".join(f'"{s}"' for s in SYMBOLS) + "]")


# Each symbol's mark over the demo's seconds: linear between keyframes (seconds, price).
KEYFRAMES: Mapping[str, tuple[tuple[str, str], ...]] = {
    # the ladder at 606.00 / 612.00 / 618.00: traded through, spiked through (no trade), traded through.
    "BNBUSDT": (
        ("0", "600.00"),
        ("3.5", "600.00"),
        ("5.5", "603.50"),
        ("6.5", "606.80"),
        ("8.5", "609.50"),
        ("9.5", "610.40"),
        ("10", "612.60"),
        ("10.5", "610.80"),
        ("11.5", "614.50"),
        ("12.5", "618.40"),
        ("13.5", "617.00"),
        ("29.5", "616.00"),
    ),
    # the mark climbs through the TP at 45675.0 between 7 s and 7.5 s: the resting TP limit trades there.
    "BTCUSDT": (
        ("0", "45000.0"),
        ("3", "45000.0"),
        ("5", "45320.0"),
        ("6", "45250.0"),
        ("7", "45560.0"),
        ("7.5", "45700.0"),
        ("9", "45620.0"),
        ("20", "45600.0"),
        ("29.5", "45640.0"),
    ),
    # short: the mark slides, then spikes to 2948.50 at 9 s, past the TP at 2955.00, where the book never trades.
    "ETHUSDT": (
        ("0", "3000.00"),
        ("1.5", "3000.00"),
        ("6", "2985.00"),
        ("8.5", "2972.00"),
        ("9", "2948.50"),
        ("9.5", "2951.20"),
        ("10", "2962.00"),
        ("29.5", "2968.00"),
    ),
    # averaged down: 0.18600 (-7 %) opens tranche 2, 0.17800 tranche 3, the rebound to 0.18650 a fourth: a merge.
    "DOGEUSDT": (
        ("0", "0.20000"),
        ("3", "0.20000"),
        ("6", "0.19200"),
        ("8", "0.18600"),
        ("10", "0.18100"),
        ("11", "0.17800"),
        ("12.5", "0.18300"),
        ("13.5", "0.18650"),
        ("29.5", "0.18720"),
    ),
    # drifts, then falls through the SL at 138.00 while posmon is down: the stop on the exchange fills. After
    # the restart the operator buys at 139.00 with a trailing stop: up to 143.00, then back through the trail.
    "SOLUSDT": (
        ("0", "150.00"),
        ("2.5", "150.00"),
        ("14.5", "148.60"),
        ("15.5", "144.00"),
        ("16", "139.50"),
        ("16.5", "137.60"),
        ("17.5", "138.40"),
        ("19.5", "139.00"),
        ("20.5", "139.40"),
        ("22", "141.00"),
        ("23", "140.60"),
        ("24.5", "142.20"),
        ("25.5", "143.00"),
        ("26.5", "142.40"),
        ("28", "141.00"),
        ("29.5", "140.80"),
    ),
    # wanders well inside its TP and SL: only the hold time can end it.
    "XRPUSDT": (
        ("0", "1.0000"),
        ("2", "1.0000"),
        ("6", "1.0040"),
        ("11", "0.9970"),
        ("16", "1.0020"),
        ("29.5", "1.0010"),
    ),
}

# A fixed ripple (in hundredths of a percent of the price) on the ticks between keyframes, so the marks move.
_RIPPLE = (0, 4, -3, 6, -5, 2, -6, 3, 5, -4, 1, -2)

# Spans (start, end) in which the symbol's mark moves but its book does not trade: a spike in the mark.
NO_TRADE: Mapping[str, tuple[tuple[Decimal, Decimal], ...]] = {
    "ETHUSDT": ((D("9"), D("10")),),
    "BNBUSDT": ((D("10"), D("10.5")),),
}


@dataclass(frozen=True, slots=True)
class Move:
    """A moment of the market worth a line of its own; ``note`` has ``{mark}``, the mark on the tick."""

    at: Decimal
    symbol: str
    note: str


MOVES: tuple[Move, ...] = (
    Move(D("7.5"), "BTCUSDT", "mark rises to {mark}; the book trades there"),
    Move(D("9"), "ETHUSDT", "mark spikes to {mark}; the book does not trade there"),
    Move(D("10"), "BNBUSDT", "mark spikes to {mark}, through level 2; the book does not trade there"),
    Move(D("16.5"), "SOLUSDT", "mark falls to {mark} while posmon is down"),
)


@dataclass(frozen=True, slots=True)
class Entry:
    """Another program trading the account: a market order that opens or adds to ``side``."""

    at: Decimal
    symbol: str
    side: Side
    qty: Decimal


ENTRIES: tuple[Entry, ...] = (
    Entry(D("1"), "BTCUSDT", Side.LONG, D("0.020")),
    Entry(D("1.5"), "ETHUSDT", Side.SHORT, D("0.300")),
    Entry(D("2"), "XRPUSDT", Side.LONG, D("1000.0")),
    Entry(D("2.5"), "SOLUSDT", Side.LONG, D("6.00")),
    Entry(D("3"), "DOGEUSDT", Side.LONG, D("10000")),
    Entry(D("3.5"), "BNBUSDT", Side.LONG, D("1.00")),  # its ladder and break-even
    Entry(D("5"), "DOGEUSDT", Side.LONG, D("1000")),  # -2 %: joins the first tranche
    Entry(D("8"), "DOGEUSDT", Side.LONG, D("1000")),  # -7 %: a second tranche
    Entry(D("11"), "DOGEUSDT", Side.LONG, D("1000")),  # a third
    Entry(D("13.5"), "DOGEUSDT", Side.LONG, D("1000")),  # a fourth, over the limit of 3: a merge
    Entry(D("20.5"), "BTCUSDT", Side.LONG, D("0.020")),  # after the restart: protected as ever
)


@dataclass(frozen=True, slots=True)
class OperatorEntry:
    """The operator opening a position through posmon (``posmon open``, ``POST /api/orders/long``): ``size_usd``
    of notional, SL ``sl_pct``, TP ``reward`` times that, and the entry's own exit-plan fields."""

    at: Decimal
    symbol: str
    side: Side
    size_usd: Decimal
    sl_pct: Decimal
    reward: Decimal
    plan_fields: Mapping[str, Decimal] = field(default_factory=dict)
    leverage: int = 5

    def command(self) -> str:
        """The same request as a ``posmon open`` command line."""
        flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in self.plan_fields.items())
        return (
            f"posmon open {self.side.value} {self.symbol} --size-usd {self.size_usd} --leverage {self.leverage} "
            f"--sl-percent {self.sl_pct} --rr 1:{self.reward}{flags}"
        )


OPERATOR_ENTRIES: tuple[OperatorEntry, ...] = (
    # 600 USDT more BNB on top of the 600 held: over max_notional_per_symbol (1000), refused, nothing sent.
    OperatorEntry(D("4.5"), "BNBUSDT", Side.LONG, D("600"), D("2"), D("2")),
    # 5.00 SOL at 139.00, SL 2 %, TP 10 %, a stop trailing 1 % behind the best mark from +1 %, moved in 0.3 % steps.
    OperatorEntry(
        D("19.5"),
        "SOLUSDT",
        Side.LONG,
        D("695"),
        D("2"),
        D("5"),
        {"trailing_activation_pct": D("1"), "trailing_callback_pct": D("1"), "trailing_min_step_pct": D("0.3")},
    ),
)


def mark_at(symbol: str, t: Decimal, tick: Decimal) -> Decimal:
    """The scripted mark of ``symbol`` at ``t`` seconds, on the tick."""
    frames = [(D(a), D(p)) for a, p in KEYFRAMES[symbol]]
    if t <= frames[0][0]:
        price = frames[0][1]
    elif t >= frames[-1][0]:
        price = frames[-1][1]
    else:
        price = frames[-1][1]
        for (a, pa), (b, pb) in itertools.pairwise(frames):
            if a <= t <= b:
                price = pa + (pb - pa) * (t - a) / (b - a)
                break
    if all(t != a for a, _ in frames):
        step = int(t / TICK_SECONDS)
        price += price * _RIPPLE[(step + len(symbol)) % len(_RIPPLE)] / 10_000
    return round_down(price + tick / 2, tick)


def trades_at(symbol: str, t: Decimal) -> bool:
    """Whether the book trades at the mark at ``t`` (False inside a scripted spike)."""
    return not any(a <= t < b for a, b in NO_TRADE.get(symbol, ()))
