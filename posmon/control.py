"""What an operator can ask of a running daemon: status, open, close, stop monitoring.

The HTTP API and (through it) the CLI call these; they never reach into actors
themselves. Each request that changes something is handed to the position
actor that owns the (symbol, side) as a message, so the actor stays the only
writer of its tranches.

A client must not be able to bury an actor's ticks and exits under commands: identical stop/resume/close
commands in flight are coalesced (later ones get the first one's answer), a resume of a symbol that is being
monitored sends nothing, and beyond ``max_outstanding`` distinct commands in flight the daemon answers 503
with a Retry-After instead of queueing more.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import trio

from posmon.actors.messages import CloseTranches, EntryOutcome, OpenEntry, ResumeMonitoring, StopMonitoring
from posmon.actors.risk_guard import BalanceUnavailable
from posmon.domain.exitplan import (  # the plan's own rules, so status says exactly what the actor acts on
    NO_PLAN,
    ExitPlan,
    PlanError,
    breakeven_earned,
    breakeven_stop,
    level_price,
    level_qty,
    pct_text,
    trailing_active,
)
from posmon.domain.instruments import NO_OVERRIDES, InstrumentError, InstrumentTable, is_unified
from posmon.domain.limits import Entry, loss_at_sl
from posmon.domain.orders import OrderRequest, OrderType, Purpose, Side, SymbolRules
from posmon.domain.pairs import Leg, PairError, PairRules, new_pair, plan_legs
from posmon.domain.protection import LocalState, OrderRecord, client_order_id, worst_price
from posmon.domain.rounding import quantize_qty
from posmon.domain.tranche import ExitReason, Risk, Tranche, exit_prices, realized_pnl
from posmon.exchange.errors import OutcomeUnknown, RateLimited, Rejected
from posmon.plan_fields import fields_of, merged, plan_of
from posmon.store.history import History
from posmon.store.store import PendingEntry

DEFAULT_MAX_OUTSTANDING = 32  # distinct operator commands in flight; an open may wait its entry_timeout
BUSY_RETRY_AFTER_SECONDS = 1.0
STARTING_RETRY_AFTER_SECONDS = 5.0  # commands that need the actors, while the daemon is still starting


class ControlError(Exception):
    """A request the daemon refuses; ``field`` names the offending input, ``status`` the HTTP status to answer.

    ``retry_after``: seconds after which the same request may succeed (a busy daemon), else None.
    """

    def __init__(
        self, message: str, *, field: str | None = None, status: int = 422, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Open a position at market and protect it: SL ``sl_pct`` from the fill, TP ``reward/risk`` times that.

    ``size_usd`` is the position's **notional** in USD (quantity x price), as the specification's
    ``position_size_usd`` and a trader's "size" mean it; ``leverage`` only decides the margin it locks
    (``size_usd / leverage``) and is set on the venue before the entry. So what is at risk at the SL
    (``size_usd x sl_pct / 100``) does not change with the leverage.

    ``plan_fields``: the exit-plan fields the entry gives (``posmon.plan_fields``), each overriding its symbol's
    configured key; the merged plan is validated before anything is sent. With a ladder, its first level is the TP.
    """

    symbol: str
    side: Side
    size_usd: Decimal
    leverage: int
    sl_pct: Decimal
    rr_ratio: tuple[Decimal, Decimal]  # (risk, reward)
    plan_fields: Mapping[str, Any] = field(default_factory=dict)
    venue: str | None = None  # the venue account; required when the daemon runs several

    @property
    def tp_pct(self) -> Decimal:
        risk, reward = self.rr_ratio
        return self.sl_pct * reward / risk

    @property
    def sizing(self) -> Sizing:
        """What the request commits, computed before anything is sent (the CLI prints it first)."""
        return Sizing.of(self.size_usd, self.leverage, self.size_usd * self.sl_pct / 100)


@dataclass(frozen=True, slots=True)
class Sizing:
    """A position's notional, the margin it locks at its leverage and the USD lost if the SL fills at its price."""

    notional_usd: Decimal
    leverage: int
    margin_usd: Decimal
    risk_usd: Decimal

    @classmethod
    def of(cls, notional: Decimal, leverage: int, risk: Decimal) -> Sizing:
        return cls(notional, leverage, notional / leverage, risk)

    @classmethod
    def filled(cls, qty: Decimal, entry: Decimal, sl: Decimal, leverage: int) -> Sizing:
        """From the fill: the real quantity and price, the risk to the SL price as placed (on the tick)."""
        return cls.of(qty * entry, leverage, qty * abs(entry - sl))


def usd(amount: Decimal) -> str:
    """An amount of USD for people: cents, or four places when under a dollar (a tiny position's risk)."""
    places = Decimal("0.0001") if abs(amount) < 1 else Decimal("0.01")
    return f"{amount.quantize(places):f}"


@dataclass(frozen=True, slots=True)
class OpenResult:
    symbol: str
    side: Side
    tranche_id: int
    client_id: str
    qty: Decimal
    entry_price: Decimal | None  # None while the entry is not yet filled
    tp: Decimal | None
    sl: Decimal | None
    status: str  # "FILLED", "PENDING"
    sizing: Sizing | None = None  # from the fill when FILLED; estimated at the mark while PENDING
    plan: ExitPlan = NO_PLAN  # the tranche's exit plan: the entry's fields merged over its symbol's
    plan_view: PlanView | None = None  # once FILLED: the plan as status shows it (levels and their prices)
    instrument: str | None = None  # the symbol's unified name (BASE/QUOTE:SETTLE), None when it has none
    venue: str | None = None  # the venue account it was opened on


@dataclass(frozen=True, slots=True)
class TrancheView:
    id: int
    venue: str
    symbol: str
    side: Side
    index: int
    entry: Decimal
    qty: Decimal
    tp: Decimal
    sl: Decimal
    opened_at: float
    max_hold_seconds: int
    timeout_at: float | None
    remaining_seconds: float | None
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    closing: str | None
    exits: str  # "exchange" (resting TP/SL orders) or "emulated" (watched by posmon)
    exits_live: bool = False  # both exits would fire now: working on the venue, or watched by a running actor
    exit_orders: dict[str, str] = field(default_factory=dict)  # "tp"/"sl" -> one of EXIT_STATES
    instrument: str | None = None  # the symbol's unified name (BASE/QUOTE:SETTLE), None when it has none
    plan: PlanView | None = None  # its exit plan and what it did so far; None: one TP, one SL


@dataclass(frozen=True, slots=True)
class LadderLevelView:
    pct: Decimal  # from the entry
    share: Decimal  # percent of the tranche
    price: Decimal | None  # its TP (None: no trading rules for the symbol)
    filled: bool


@dataclass(frozen=True, slots=True)
class LadderView:
    level: int  # levels filled so far
    of: int  # levels in all
    tp: Decimal  # the current level's TP (the tranche's ``tp``)
    level_qty: Decimal | None  # what the current level closes (None: no trading rules to size it)
    levels: list[LadderLevelView]


@dataclass(frozen=True, slots=True)
class TrailingView:
    active: bool  # the profit reached the activation: the stop follows the best mark
    activation_pct: Decimal
    callback_pct: Decimal
    min_step_pct: Decimal
    best_mark: Decimal | None  # as of the last time it moved the stop
    stop: Decimal | None  # the stop held now while active, else None


@dataclass(frozen=True, slots=True)
class BreakEvenView:
    earned: bool  # the stop has been moved to the entry plus the offset
    after_tp: int  # ladder levels that earn it (0: not on fills)
    offset_pct: Decimal
    trigger_pct: Decimal | None  # the gain that earns it (None: not on the mark)
    stop: Decimal | None  # the break-even stop price (None: no trading rules for the symbol)


@dataclass(frozen=True, slots=True)
class PlanView:
    """A tranche's exit plan for people: ``describe`` the plan, ``summary`` its state in a few characters
    ("TP 2/3 TRAIL BE@TP2"), and each part's state in fields."""

    describe: str
    summary: str
    ladder: LadderView | None
    trailing: TrailingView | None
    breakeven: BreakEvenView | None


def plan_view(t: Tranche, rules: SymbolRules | None) -> PlanView | None:
    """What status shows of ``t``'s plan (None for the empty plan: the fields stay as they always were)."""
    plan = t.plan
    if not plan:
        return None
    parts = []
    ladder = trailing = breakeven = None
    if levels := plan.tp_levels:
        n = len(levels)
        parts.append(f"TP {min(t.level + 1, n)}/{n}")
        ladder = LadderView(
            level=t.level,
            of=n,
            tp=t.tp,
            level_qty=None if rules is None else level_qty(t, rules),
            levels=[
                LadderLevelView(
                    lv.pct,
                    lv.share,
                    None if rules is None else level_price(t.side, t.entry, lv.pct, rules),
                    i < t.level,
                )
                for i, lv in enumerate(levels)
            ],
        )
    if (tr := plan.trailing) is not None:
        active = trailing_active(t)
        parts.append("TRAIL" if active else f"TRAIL@+{pct_text(tr.activation_pct)}%")
        trailing = TrailingView(
            active, tr.activation_pct, tr.callback_pct, tr.min_step_pct, t.best_mark, t.sl if active else None
        )
    if (be := plan.breakeven) is not None:
        earned = breakeven_earned(t)
        when = ([f"TP{be.after_tp}"] if be.after_tp else []) + (
            [f"+{pct_text(be.trigger_pct)}%"] if be.trigger_pct is not None else []
        )
        parts.append("BE" if earned else "BE@" + "/".join(when))
        stop = None if rules is None else breakeven_stop(t.side, t.entry, be.offset_pct, rules)
        breakeven = BreakEvenView(earned, be.after_tp, be.offset_pct, be.trigger_pct, stop)
    return PlanView(plan.describe(), " ".join(parts), ladder, trailing, breakeven)


# What ``TrancheView.exit_orders`` says of each leg. Resting exits: the best state of posmon's orders for it
# (LIVE confirmed working, PENDING sent and not yet confirmed, CANCELING on its way out, MISSING none at all);
# emulated exits: WATCHED while the position's actor runs and holds the tranche, else UNWATCHED.
EXIT_STATES = ("LIVE", "PENDING", "CANCELING", "MISSING", "WATCHED", "UNWATCHED")
_ORDER_RANK = {LocalState.LIVE: 0, LocalState.PENDING: 1, LocalState.CANCELING: 2}
_LEGS = {Purpose.TP: "tp", Purpose.SL: "sl"}


def resting_exit_states(tranche_ids: list[int], orders: list[OrderRecord]) -> dict[int, dict[str, str]]:
    """Per tranche, the best state of its TP and of its SL orders (a resize briefly holds an old and a new one)."""
    best: dict[int, dict[str, LocalState]] = {tid: {} for tid in tranche_ids}
    for o in orders:
        leg = _LEGS.get(o.purpose)
        legs = best.get(o.tranche_id)
        if leg is None or legs is None or o.state not in _ORDER_RANK:
            continue
        if leg not in legs or _ORDER_RANK[o.state] < _ORDER_RANK[legs[leg]]:
            legs[leg] = o.state
    return {
        tid: {leg: legs[leg].value if leg in legs else "MISSING" for leg in ("tp", "sl")} for tid, legs in best.items()
    }


@dataclass(frozen=True, slots=True)
class StreamView:
    name: str  # "price" or "user"
    up: bool
    last_frame_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class RateLimitView:
    """How much of the venue's request budget is free now, as the order gateway paces it."""

    weight_headroom: float  # fraction of the request-weight burst free (1 idle, 0 at the limit or paused)
    orders_headroom: float  # the same for the order-count budget
    weight_per_minute: int
    orders_per_minute: int
    paused_seconds: float  # left of a 429 Retry-After or 418 ban (0: none)
    paced: int  # requests delayed so far to stay inside the limits
    throttled: int  # rate-limit refusals from the venue so far


@dataclass(frozen=True, slots=True)
class AccountView:
    """One venue account of the daemon: whether it is up, its streams and its request budget."""

    venue: str
    state: str  # "connecting", "unreachable" (retrying), "starting" (reconciling), "ready"
    detail: str  # its start-up step, or what it is watching once ready
    exits: str | None  # "exchange" (resting TP/SL) or "emulated"; None until the venue is reached
    streams: list[StreamView]
    rate_limit: RateLimitView | None
    unmonitored: list[str]
    positions: int  # open tranches posmon holds on it


@dataclass(frozen=True, slots=True)
class StatusReport:
    running: bool
    venue: str
    started_at: float
    streams: list[StreamView]
    tranches: list[TrancheView]
    unmonitored: list[str] = field(default_factory=list)  # symbols the operator stopped monitoring
    extra: dict[str, Any] = field(default_factory=dict)
    now: float | None = None  # the daemon's clock when this was made (opened_at, started_at are on it)
    rate_limit: RateLimitView | None = None  # None before the gateway has started
    accounts: list[AccountView] = field(default_factory=list)  # every venue account (one entry with one venue)
    pairs: list[PairStatusView] = field(default_factory=list)  # hedge pairs not closed (several venues only)


@dataclass(frozen=True, slots=True)
class CloseResult:
    symbol: str
    side: Side
    tranche_ids: list[int]  # tranches whose close was started


@dataclass(frozen=True, slots=True)
class StopResult:
    symbol: str
    tranche_ids: list[int]  # tranches no longer monitored (their posmon orders are cancelled; positions stay open)
    exits: str = "exchange"  # "exchange": their TP/SL orders were cancelled; "emulated": posmon stopped watching
    venue: str | None = None

    @property
    def message(self) -> str:
        """What ``stop`` did, said so that nobody takes the position for protected afterwards."""
        ids = ", ".join(map(str, self.tranche_ids))
        which = f"tranche {ids}" if len(self.tranche_ids) == 1 else f"tranches {ids}"
        if not self.tranche_ids:
            done = "posmon held no tranche of it, so nothing was cancelled"
        elif self.exits == "emulated":
            done = (
                f"posmon no longer watches the TP and SL of {which} (they were emulated: nothing rested on the venue)"
            )
        else:
            done = f"posmon cancelled its TP and SL orders of {which} on the venue"
        return (
            f"stopped monitoring {self.symbol}: {done}; the position is left open and UNPROTECTED (no TP, no SL "
            f"from posmon) until you close it or run 'posmon resume {self.symbol}'"
        )


@dataclass(frozen=True, slots=True)
class PairLegRef:
    """One leg of a pair request: its venue account and symbol (a venue symbol, a market id or a unified name;
    None on the second leg of an open: the first leg's asset on that venue). ``side``: a link's leg (None: the one
    side posmon holds of it)."""

    venue: str
    symbol: str | None = None
    side: Side | None = None


@dataclass(frozen=True, slots=True)
class PairRequest:
    """Open a hedge pair (``POST /api/pairs``): ``side`` on the first leg, the opposite on the second, the same
    base quantity on both (``qty``, or ``notional_usd`` at the first leg's mark), each leg protected by its
    symbol's configured TP/SL in its venue's exit style; ``rules``: the pair's own TP/SL and leg-exit rule."""

    legs: tuple[PairLegRef, PairLegRef]
    side: Side
    qty: Decimal | None = None
    notional_usd: Decimal | None = None
    rules: PairRules = field(default_factory=PairRules)


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """Make a pair of two positions posmon already holds (``POST /api/pairs/link``)."""

    legs: tuple[PairLegRef, PairLegRef]
    rules: PairRules = field(default_factory=PairRules)


@dataclass(frozen=True, slots=True)
class PairLegStatus:
    venue: str
    symbol: str
    instrument: str | None
    side: str
    qty: Decimal
    entry: Decimal | None
    mark: Decimal | None
    pnl: Decimal  # unrealized at the mark, plus the funding below
    funding: Decimal  # paid (-) or received (+) on this venue
    stale: bool  # no recent mark, or its account's streams are down (its exits may lag)
    tranche_ids: list[int]


@dataclass(frozen=True, slots=True)
class PairStatusView:
    """A hedge pair as status, the API and the CLI show it."""

    id: int
    status: str  # opening, open, closing, broken
    legs: list[PairLegStatus]
    pnl: Decimal  # combined: both legs at their marks plus funding
    pnl_pct: Decimal | None  # of the pair's notional
    imbalance_pct: Decimal
    imbalance_breached: bool
    residue: list[Decimal]  # per leg: what rounding or a trim left out of the request
    close_reason: str | None
    rules: dict[str, Any] = field(default_factory=dict)


class Control(Protocol):
    """The daemon's operator interface (``Daemon.control``); the HTTP API is a thin layer over it."""

    async def status(self) -> StatusReport: ...

    async def open_position(self, request: OpenRequest) -> OpenResult:
        """Places the entry; waits (bounded) for its fill and answers with the tranche and its exits.

        The risk limits are checked first, then the leverage is set on the venue. Raises ``ControlError`` for an
        unknown symbol, a size below the venue's minimum, an entry that would break a risk limit (422, ``field``
        the limit's key), a leverage the venue refuses (422) or does not confirm (504: nothing sent), etc.
        """
        ...

    async def close(
        self, symbol: str, side: Side | None = None, tranche_id: int | None = None, *, venue: str | None = None
    ) -> list[CloseResult]:
        """Start closing one tranche, one side, or every tranche of ``symbol`` now (at market / bounded price)."""
        ...

    async def stop_monitoring(self, symbol: str, *, venue: str | None = None) -> StopResult:
        """Forget ``symbol`` (a symbol, or a Lighter market id) without closing it; it is not re-adopted."""
        ...

    async def resume_monitoring(self, symbol: str, *, venue: str | None = None) -> None:
        """Undo ``stop_monitoring``: the position is adopted again at the next reconcile."""
        ...

    async def history(
        self,
        *,
        since: float | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        venue: str | None = None,
    ) -> History:
        """Closed tranches closed at or after ``since`` (unix seconds), oldest first; ``limit``: the newest N;
        ``venue``: one venue account's (default: every account's)."""
        ...

    async def pairs(self) -> list[PairStatusView]:
        """Every hedge pair not closed: both legs, per-leg and combined PnL, funding, imbalance, stale legs."""
        ...

    async def open_pair(self, request: PairRequest) -> PairStatusView | dict[str, Any]:
        """Open a hedge pair over two venue accounts (both entries persisted first, then sent together)."""
        ...

    async def link_pair(self, request: LinkRequest) -> PairStatusView | dict[str, Any]:
        """Pair two positions posmon already holds."""
        ...

    async def close_pair(self, pair_id: int) -> PairStatusView | dict[str, Any]:
        """Close both legs of a pair now."""
        ...


@dataclass(slots=True)
class _Flight:
    """One command in flight; identical ones arriving meanwhile wait for ``done`` and share its outcome."""

    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: ControlError | None = None


def check_exits(side: Side, mark: Decimal, risk: Risk, rules: SymbolRules) -> None:
    """Refuse (422) a TP or SL that could never be placed: at or below zero, or outside the venue's price filter.

    Estimated at ``mark`` (the entry fills near it): a SHORT's TP more than 100 % below, or a LONG's TP beyond
    the venue's maximum price, would leave the filled entry without a TP, its placement refused forever.
    ``rules.min_price``/``max_price`` are used when the venue publishes them (0: none published).
    """
    if not 0 < risk.sl_pct < 100:
        raise ControlError(
            f"sl_percent {risk.sl_pct} puts the SL at or beyond zero; expected > 0 and < 100", field="sl_percent"
        )
    if side is Side.SHORT and risk.tp_pct >= 100 and not risk.plan.tp_levels:
        raise ControlError(
            f"TP {risk.tp_pct.normalize():f} % below a SHORT's entry is at or below zero; "
            "sl_percent x reward / risk must stay under 100",
            field="rr_ratio",
        )
    tp, sl = exit_prices(side, mark, risk, rules)
    exits = [("TP", tp, "rr_ratio"), ("SL", sl, "sl_percent")]
    if risk.plan.tp_levels:  # the ladder's levels are the TPs (its pcts are < 100: above zero for a SHORT)
        exits[:1] = [
            (f"TP{i}", level_price(side, mark, lv.pct, rules), "tp_levels")
            for i, lv in enumerate(risk.plan.tp_levels, 1)
        ]
    low = rules.min_price
    high = rules.max_price or None
    for name, price, fld in exits:
        if price <= 0 or price < low or (high is not None and price > high):
            limits = f"{low} to {high}" if high is not None else f"above {max(low, Decimal(0))}"
            raise ControlError(
                f"the {name} would be at {price} (mark {mark}), outside the prices {rules.symbol} "
                f"accepts ({limits}); nothing was sent",
                field=fld,
            )


class PairsControl:
    """The hedge-pair commands of ``DaemonControl``: validated in full (422 naming the field, nothing sent), then
    handed to the pair coordinator (``posmon.actors.pairs``), the one writer of pairs."""

    _d: Any
    _clock: Callable[[], float]
    _entry_timeout: float
    _reply_timeout: float

    if TYPE_CHECKING:  # DaemonControl's

        def _account(self, venue: str | None) -> Any: ...
        def _accounts(self) -> list[Any]: ...
        def _need_actors(self, account: Any | None = None) -> None: ...
        def _symbol(self, d: Any, given: str) -> str: ...
        def _account_status(self, a: Any, now: float, trio_now: float) -> tuple[list[TrancheView], AccountView]: ...
        async def status(self) -> StatusReport: ...

    def _coordinator(self) -> tuple[Any, Any]:
        coordinator, inbox = getattr(self._d, "pairs", None), getattr(self._d, "pairs_inbox", None)
        if coordinator is None or inbox is None:
            raise ControlError(
                'hedge pairs need a daemon running two venues ([daemon] venues = ["aster", "lighter"])',
                field="legs",
                status=409,
            )
        return coordinator, inbox

    def _pair_views(self, accounts: list[AccountView]) -> list[PairStatusView]:
        coordinator = getattr(self._d, "pairs", None)
        if coordinator is None:
            return []
        down = {a.venue for a in accounts if a.state != "ready" or not all(st.up for st in a.streams)}
        table = self._d.instrument_table()
        out = []
        for v in coordinator.views():
            legs = [
                PairLegStatus(
                    leg.venue,
                    leg.symbol,
                    table.name(leg.venue, leg.symbol),
                    leg.side,
                    leg.qty,
                    leg.entry,
                    leg.mark,
                    leg.pnl,
                    leg.funding,
                    leg.stale or leg.venue in down,
                    list(leg.tranche_ids),
                )
                for leg in v.legs
            ]
            pair = coordinator.pairs.get(v.id)
            rules = dataclasses.asdict(pair.rules) if pair is not None else {}
            out.append(
                PairStatusView(
                    v.id,
                    v.status,
                    legs,
                    v.pnl,
                    v.pnl_pct,
                    v.imbalance_pct,
                    v.imbalance_breached,
                    list(v.residue),
                    v.close_reason,
                    rules,
                )
            )
        return out

    async def pairs(self) -> list[PairStatusView]:
        """Every pair not closed, with both legs, PnL, funding, imbalance and stale legs."""
        return (await self.status()).pairs

    def _pair_account(self, ref: PairLegRef, i: int) -> Any:
        try:
            a = self._account(ref.venue)
            self._need_actors(a)
        except ControlError as exc:
            raise ControlError(
                str(exc), field=f"legs[{i}].venue", status=exc.status, retry_after=exc.retry_after
            ) from None
        return a

    def _leg_symbol(self, a: Any, ref: PairLegRef, i: int) -> str:
        assert ref.symbol is not None
        try:
            return str(self._symbol(a, ref.symbol))
        except ControlError as exc:
            raise ControlError(str(exc), field=f"legs[{i}].symbol", status=exc.status) from None

    async def open_pair(self, request: PairRequest) -> PairStatusView | dict[str, Any]:
        """Both entries decided and persisted, then sent together; answers once both ended (bounded: a pair still
        opening is answered as such). 422 naming the field for anything that cannot be a pair; nothing is sent."""
        _, inbox = self._coordinator()
        (ra, rb), d = request.legs, self._d
        a, b = self._pair_account(ra, 0), self._pair_account(rb, 1)
        if _name_of(a) == _name_of(b):
            raise ControlError(f"both legs on {_name_of(a)}; a pair hedges across two venues", field="legs[1].venue")
        if ra.symbol is None:
            raise ControlError("the first leg needs a symbol (or a unified name)", field="legs[0].symbol")
        symbol = self._leg_symbol(a, ra, 0)
        marks = []
        for acc in (a, b):
            router = acc.router
            marks.append(router.latest if router is not None else {})
        mark_a = marks[0].get(symbol)
        if mark_a is None:
            raise ControlError(f"no mark price for {symbol} yet; try again shortly", field="legs[0].symbol", status=503)
        qty = request.qty if request.qty is not None else (request.notional_usd or Decimal(0)) / mark_a.price
        table = d.instrument_table()
        rules = {_name_of(acc): acc.rules for acc in (a, b)}
        try:
            plan = plan_legs(table, rules, _name_of(a), symbol, request.side, _name_of(b), qty, mark=mark_a.price)
        except PairError as exc:
            name = str(exc).partition(":")[0]
            raise ControlError(
                f"{exc}; nothing was sent",
                field=("notional_usd" if request.qty is None else "qty") if name == "qty" else "legs",
            ) from None
        except ValueError as exc:  # no counterpart on the other venue (InstrumentError)
            raise ControlError(f"{exc}; nothing was sent", field="legs[1].symbol") from None
        leg_a, leg_b = plan.legs
        if rb.symbol is not None and self._leg_symbol(b, rb, 1) != leg_b.symbol:
            raise ControlError(
                f"{rb.symbol} on {_name_of(b)} is not {symbol}'s asset (its counterpart there is {leg_b.symbol})",
                field="legs[1].symbol",
            )
        if marks[1].get(leg_b.symbol) is None:
            raise ControlError(
                f"no mark price for {leg_b.symbol} on {_name_of(b)} yet; try again shortly",
                field="legs[1].symbol",
                status=503,
            )
        try:
            request.rules.check()
        except PairError as exc:
            raise ControlError(str(exc), field=str(exc).partition(":")[0]) from None
        pair_id = d.store.allocate_pair_id()
        entries, pending, legs = [], [], []
        for acc, leg, leg_marks in ((a, leg_a, marks[0]), (b, leg_b, marks[1])):
            tid = d.store.allocate_tranche_id()
            risk = d.risk_of(leg.symbol)
            order = self._pair_entry(acc, leg, tid, leg_marks[leg.symbol].price)
            entries.append(OpenEntry(order, tid, risk))
            pending.append(PendingEntry(order.client_id, tid, leg.venue, leg.symbol, leg.side, leg.target_qty, risk))
            legs.append(dataclasses.replace(leg, tranche_ids=(tid,)))
        pair = new_pair(pair_id, legs[0], legs[1], request.rules, opened_at=self._clock(), residue=plan.sizing.residue)
        from posmon.actors.pairs import OpenPair, PairAnswer  # the actors import this module's types

        send, recv = trio.open_memory_channel[PairAnswer](1)
        async with send, recv:
            inbox.send_nowait(OpenPair(pair, (entries[0], entries[1]), (pending[0], pending[1]), send))
            answer = None
            with trio.move_on_after(self._entry_timeout):
                answer = await recv.receive()
        d.follow_pair_marks()
        return self._answered(pair_id, answer, opening=answer is None)

    def _pair_entry(self, a: Any, leg: Leg, tid: int, mark: Decimal) -> OrderRequest:
        """A leg's entry order, as ``open_position`` makes one (its venue's position mode and worst price)."""
        d = self._d
        traits = a.venue.traits
        price = None
        if traits.emulated_exits:
            price = worst_price(
                leg.side.opening_order_side, mark, traits.close_slippage.first_pct, a.rules[leg.symbol].tick_size
            )
        return OrderRequest(
            client_id=client_order_id(d.settings.daemon.client_id_prefix, tid, Purpose.ENTRY, 1),
            symbol=leg.symbol,
            side=leg.side.opening_order_side,
            position_side=leg.side.value if traits.hedge_mode(d.settings.daemon.hedge_mode) else "BOTH",
            type=OrderType.MARKET,
            qty=leg.target_qty,
            price=price,
        )

    def _answered(self, pair_id: int, answer: Any, *, opening: bool = False) -> PairStatusView | dict[str, Any]:
        if answer is not None and answer.pair is None:
            raise ControlError(answer.error or f"pair {pair_id} refused", field="id", status=409)
        for view in self._pair_views_now():
            if view.id == pair_id:
                return view
        # Closed already (both entries rejected, or a broken pair unwound at once): what the store says.
        pair = answer.pair if answer is not None else self._d.store.pair(pair_id)
        return {
            "id": pair_id,
            "status": "opening" if opening and pair is None else (pair.status.value if pair else "unknown"),
            "close_reason": None if pair is None else pair.close_reason,
        }

    def _pair_views_now(self) -> list[PairStatusView]:
        accounts = []
        now, trio_now = self._clock(), trio.current_time()
        for account in self._accounts():
            accounts.append(self._account_status(account, now, trio_now)[1])
        return self._pair_views(accounts)

    async def link_pair(self, request: LinkRequest) -> PairStatusView | dict[str, Any]:
        """A pair of two positions posmon holds: each leg is every open tranche of its (venue, symbol, side)."""
        _, inbox = self._coordinator()
        d = self._d
        accounts = [self._pair_account(ref, i) for i, ref in enumerate(request.legs)]
        if _name_of(accounts[0]) == _name_of(accounts[1]):
            raise ControlError("both legs on one venue; a pair hedges across two venues", field="legs[1].venue")
        legs = []
        for i, (acc, ref) in enumerate(zip(accounts, request.legs, strict=True)):
            if ref.symbol is None:
                raise ControlError("each leg of a link needs its symbol", field=f"legs[{i}].symbol")
            symbol = self._leg_symbol(acc, ref, i)
            held = d.store.open_tranches(_name_of(acc), symbol)
            sides = {t.side for t in held} if ref.side is None else {ref.side}
            if len(sides) != 1:
                raise ControlError(
                    f"posmon holds {'both sides' if sides else 'no open tranche'} of {symbol} on {_name_of(acc)}"
                    + ("; name the side" if sides else ""),
                    field=f"legs[{i}].side" if sides else f"legs[{i}].symbol",
                    status=422 if sides else 404,
                )
            (side,) = sides
            mine = [t for t in held if t.side is side and not t.closing]
            if not mine:
                raise ControlError(
                    f"posmon holds no open {side.value} tranche of {symbol} on {_name_of(acc)}",
                    field=f"legs[{i}].symbol",
                    status=404,
                )
            qty = sum((t.qty for t in mine), Decimal(0))
            entry = sum((t.entry * t.qty for t in mine), Decimal(0)) / qty
            step = acc.rules[symbol].step_size
            ids = tuple(t.id for t in mine)
            legs.append(Leg(_name_of(acc), symbol, side, qty, step, qty, entry, ids, entry_done=True))
        try:
            pair = new_pair(d.store.allocate_pair_id(), legs[0], legs[1], request.rules, opened_at=self._clock())
        except PairError as exc:
            name = str(exc).partition(":")[0]
            raise ControlError(str(exc), field=name if name in PairRules.__slots__ else "legs") from None
        from posmon.actors.pairs import LinkPair, PairAnswer

        send, recv = trio.open_memory_channel[PairAnswer](1)
        async with send, recv:
            inbox.send_nowait(LinkPair(pair, send))
            answer = None
            with trio.move_on_after(self._reply_timeout):
                answer = await recv.receive()
        if answer is None:
            raise ControlError("the pair coordinator did not answer; check status", status=503, retry_after=5.0)
        d.follow_pair_marks()
        return self._answered(pair.id, answer)

    async def close_pair(self, pair_id: int) -> PairStatusView | dict[str, Any]:
        """Close both legs of a pair now (at market, each venue's bounded slippage)."""
        _, inbox = self._coordinator()
        from posmon.actors.pairs import ClosePair, PairAnswer

        send, recv = trio.open_memory_channel[PairAnswer](1)
        async with send, recv:
            inbox.send_nowait(ClosePair(pair_id, reply_to=send))
            answer = None
            with trio.move_on_after(self._reply_timeout):
                answer = await recv.receive()
        if answer is None:
            raise ControlError("the pair coordinator did not answer; check status", status=503, retry_after=5.0)
        if answer.pair is None:
            raise ControlError(answer.error or f"no open pair {pair_id}", field="id", status=404)
        return self._answered(pair_id, answer)


class DaemonControl(PairsControl):
    """``Control`` over a running daemon: answers from the store and the router, changes through the actors."""

    def __init__(
        self,
        daemon: Any,
        *,
        clock: Callable[[], float],
        entry_timeout: float = 30.0,
        reply_timeout: float = 30.0,
        max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
    ) -> None:
        self._d = daemon  # posmon.daemon.Daemon (not imported: it imports this module)
        self._clock = clock
        self._entry_timeout = entry_timeout
        self._reply_timeout = reply_timeout
        self._max_outstanding = max_outstanding
        self._outstanding = 0
        self._flights: dict[Hashable, _Flight] = {}
        self.started_at = clock()

    # --- admission ----------------------------------------------------------------------------------------

    def _admit(self) -> None:
        if self._outstanding >= self._max_outstanding:
            raise ControlError(
                f"the daemon is busy with {self._outstanding} operator commands; retry in "
                f"{BUSY_RETRY_AFTER_SECONDS:g} s",
                status=503,
                retry_after=BUSY_RETRY_AFTER_SECONDS,
            )
        self._outstanding += 1

    def _accounts(self) -> list[Any]:
        """Every venue account (``posmon.daemon.AccountRuntime``); a stand-in daemon holding one account's parts
        itself (tests) is its own account."""
        accounts = getattr(self._d, "accounts", None)
        return [self._d] if accounts is None else list(accounts.values())

    def _account(self, venue: str | None) -> Any:
        """The account a command addresses: ``venue`` by name, or the only one when ``venue`` is not given.

        Refused (422 naming ``venue``) when the daemon runs several and none is named, or names one it does not
        run; 503 with Retry-After while the named account has not reached its venue yet.
        """
        accounts = self._accounts()
        names = [_name_of(a) for a in accounts]
        if venue is None:
            if len(accounts) > 1:
                raise ControlError(
                    f"this daemon runs several venue accounts ({', '.join(names)}): name the venue", field="venue"
                )
            account = accounts[0]
        else:
            found = [a for a, n in zip(accounts, names, strict=True) if n == venue.lower()]
            if not found:
                raise ControlError(
                    f"venue {venue!r} is not run by this daemon; expected one of {', '.join(map(repr, names))}",
                    field="venue",
                )
            account = found[0]
        if getattr(account, "venue", None) is None:
            raise ControlError(
                f"{_name_of(account)} is not reached yet ({account.readiness.detail}); retry in "
                f"{STARTING_RETRY_AFTER_SECONDS:g} s",
                field="venue",
                status=503,
                retry_after=STARTING_RETRY_AFTER_SECONDS,
            )
        return account

    def _need_actors(self, account: Any | None = None) -> None:
        """503 with Retry-After while start-up is not over: the actors that carry out a command are not all
        loaded and reconciled yet (the API answers from the first second of start-up). With several accounts,
        the addressed account's start-up counts: one venue still starting never holds commands to another."""
        readiness = getattr(account if account is not None else self._d, "readiness", None)
        if readiness is not None and not readiness.is_ready:
            where = "the daemon" if account is None or len(self._accounts()) == 1 else _name_of(account)
            raise ControlError(
                f"{where} is starting ({readiness.detail}); retry in {STARTING_RETRY_AFTER_SECONDS:g} s",
                status=503,
                retry_after=STARTING_RETRY_AFTER_SECONDS,
            )

    async def _bounded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()`` counted against ``max_outstanding`` while it runs."""
        self._admit()
        try:
            return await call()
        finally:
            self._outstanding -= 1

    async def _coalesced(self, key: Hashable, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()``, unless an identical command (same ``key``) is in flight: then that one's outcome."""
        flight = self._flights.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.error is not None:
                e = flight.error
                raise ControlError(str(e), field=e.field, status=e.status, retry_after=e.retry_after)
            return flight.result
        self._admit()
        flight = self._flights[key] = _Flight()
        try:
            flight.result = await call()
            return flight.result
        except ControlError as exc:
            flight.error = exc
            raise
        except BaseException:
            flight.error = ControlError(
                "an identical command failed or was interrupted; retry",
                status=503,
                retry_after=BUSY_RETRY_AFTER_SECONDS,
            )
            raise
        finally:
            del self._flights[key]
            self._outstanding -= 1
            flight.done.set()

    # --- reading ------------------------------------------------------------------------------------------

    async def status(self) -> StatusReport:
        d = self._d
        await trio.lowlevel.checkpoint()
        now, trio_now = self._clock(), trio.current_time()
        accounts = self._accounts()
        views: list[TrancheView] = []
        summaries: list[AccountView] = []
        for account in accounts:
            tranches, summary = self._account_status(account, now, trio_now)
            views += tranches
            summaries.append(summary)
        several = len(accounts) > 1
        first = summaries[0]
        return StatusReport(
            running=d.cancel_scope is not None and not d.cancel_scope.cancel_called,
            venue=",".join(a.venue for a in summaries),
            started_at=self.started_at,
            # One venue: its two streams, as always; several: each named for its venue ("lighter price").
            streams=[
                dataclasses.replace(st, name=f"{a.venue} {st.name}") if several else st
                for a in summaries
                for st in a.streams
            ],
            tranches=views,
            unmonitored=[f"{a.venue}:{sym}" for a in summaries for sym in a.unmonitored]
            if several
            else first.unmonitored,
            now=now,
            rate_limit=None if several else first.rate_limit,
            accounts=summaries,
            pairs=self._pair_views(summaries),
        )

    def _account_status(self, a: Any, now: float, trio_now: float) -> tuple[list[TrancheView], AccountView]:
        """One account's tranches (from the store, with its marks and exit states) and its summary."""
        d = self._d
        name = _name_of(a)
        venue = getattr(a, "venue", None)
        router = a.router
        marks = router.latest if router is not None else {}
        last = router.last_frame_at if router is not None else None
        user_last = a.user_stream.last_frame_at if a.user_stream is not None else None
        emulated: str | None = None
        if venue is not None:
            emulated = "emulated" if venue.traits.emulated_exits else "exchange"
        held = d.store.open_tranches(name)
        instruments = self._instruments(a)
        resting = {}
        if emulated == "exchange":
            ids = [t.id for t in held]
            resting = resting_exit_states(ids, d.store.active_orders(ids))
        views = []
        for t in held:
            mark = marks.get(t.symbol)
            price = mark.price if mark is not None else None
            if emulated == "exchange":
                legs = resting[t.id]
                live = not t.closing and legs["tp"] == legs["sl"] == "LIVE"
            else:
                actor = a.directory.actor(t.symbol, t.side) if a.directory is not None else None
                live = bool(
                    actor is not None
                    and actor.running
                    and actor.ready.is_set()
                    and not actor.stopped
                    and t.id in actor.tranches
                    and not t.closing
                )
                legs = dict.fromkeys(("tp", "sl"), "WATCHED" if live else "UNWATCHED")
            views.append(
                TrancheView(
                    id=t.id,
                    venue=t.venue,
                    symbol=t.symbol,
                    side=t.side,
                    index=t.index,
                    entry=t.entry,
                    qty=t.qty,
                    tp=t.tp,
                    sl=t.sl,
                    opened_at=t.opened_at,
                    max_hold_seconds=int(t.deadline - t.opened_at) if t.deadline is not None else 0,
                    timeout_at=t.deadline,
                    remaining_seconds=max(0.0, t.deadline - now) if t.deadline else None,
                    mark=price,
                    unrealized_pnl=realized_pnl(t.side, t.entry, price, t.qty) if price else None,
                    closing=t.closing,
                    exits=emulated or "unknown",
                    exits_live=live,
                    exit_orders=legs,
                    instrument=instruments.name(t.venue, t.symbol),
                    plan=plan_view(t, a.rules.get(t.symbol)) if t.plan else None,
                )
            )
        streams = [
            StreamView(
                "price",
                bool(d.metrics.get("price_stream_up", venue=name)),
                None if last is None else max(0.0, trio_now - last),
            ),
            StreamView(
                "user",
                bool(d.metrics.get("user_stream_up", venue=name)),
                None if user_last is None else max(0.0, trio_now - user_last),
            ),
        ]
        readiness = getattr(a, "readiness", None)
        state = getattr(a, "state", None) or (readiness.state if readiness is not None else "ready")
        summary = AccountView(
            venue=name,
            state="ready" if readiness is not None and readiness.is_ready else state,
            detail=readiness.detail if readiness is not None else "",
            exits=emulated,
            streams=streams,
            rate_limit=self._rate_limit(a, trio_now),
            unmonitored=sorted(a.directory.unmonitored) if a.directory else [],
            positions=len(held),
        )
        return views, summary

    def _rate_limit(self, a: Any, trio_now: float) -> RateLimitView | None:
        state = getattr(a, "gateway_state", None)
        if state is None or state.weight is None or state.orders is None or a.venue is None:
            return None
        limits, name, metrics = a.venue.limits, a.venue.name, self._d.metrics
        return RateLimitView(
            weight_headroom=round(state.weight.headroom(trio_now), 4),
            orders_headroom=round(state.orders.headroom(trio_now), 4),
            weight_per_minute=int(limits.weight_per_minute),
            orders_per_minute=int(limits.orders_per_minute),
            paused_seconds=max(0.0, state.weight.paused_until - trio_now),
            paced=int(metrics.get("gateway_paced", venue=name)),
            throttled=int(metrics.get("gateway_throttled", venue=name)),
        )

    async def history(
        self,
        *,
        since: float | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        venue: str | None = None,
    ) -> History:
        """From the store, on the event loop: one indexed read, short like the actors' own reads.

        Every account's when ``venue`` is not given (a symbol is then matched as given, except with one venue)."""
        await trio.lowlevel.checkpoint()
        d = self._d
        if venue is None and len(self._accounts()) > 1:
            return d.store.history(since=since, symbol=symbol, venue=None, limit=limit)
        a = self._account(venue)
        if symbol is not None:
            with contextlib.suppress(ControlError):  # a symbol no longer listed still has its history
                symbol = self._symbol(a, symbol)
        return d.store.history(since=since, symbol=symbol, venue=_name_of(a), limit=limit)

    # --- acting -------------------------------------------------------------------------------------------

    def _symbol(self, d: Any, given: str) -> str:
        """A symbol account ``d`` lists for ``given``: a symbol, a venue's own market id such as Lighter's, or a
        unified instrument name (``BTC/USDT:USDT``, see ``posmon.domain.instruments``), resolved on its venue."""
        if given in d.rules:
            return given
        with contextlib.suppress(KeyError, ValueError):  # not a market the venue lists
            symbol = d.venue.symbol_for(given)
            if symbol in d.rules:
                return symbol
        if is_unified(given):
            try:
                return self._instruments(d).symbol(d.venue.name, given)
            except InstrumentError as exc:
                raise ControlError(
                    f"{given!r} is not a symbol {d.venue.name} lists ({exc})", field="symbol", status=404
                ) from None
        raise ControlError(f"{given!r} is not a symbol {d.venue.name} lists", field="symbol", status=404)

    def _instruments(self, a: Any) -> InstrumentTable:
        """Account ``a``'s instrument table; before it has one (starting), one from the rules it holds."""
        table = getattr(a, "instruments", None)
        if table is None:
            overrides = getattr(getattr(self._d, "settings", None), "instruments", NO_OVERRIDES)
            table = InstrumentTable.build({_name_of(a): a.rules}, overrides)
        return table

    async def open_position(self, request: OpenRequest) -> OpenResult:
        a = self._account(request.venue)
        self._need_actors(a)
        try:
            result: OpenResult = await self._bounded(lambda: self._open_position(a, request))  # two opens: two
        finally:
            if (guard := getattr(a, "risk_guard", None)) is not None:
                guard.release(id(request))  # its fill (if any) is in its actor's tranches by now
        name = _name_of(a)
        return dataclasses.replace(result, instrument=self._instruments(a).name(name, result.symbol), venue=name)

    async def _open_position(self, a: Any, request: OpenRequest) -> OpenResult:
        d = self._d
        symbol = self._symbol(a, request.symbol)
        rules = a.rules[symbol]
        mark = a.router.latest.get(symbol) if a.router is not None else None
        if mark is None:
            raise ControlError(f"no mark price for {symbol} yet; try again shortly", field="symbol", status=503)
        qty = quantize_qty(request.size_usd / mark.price, rules.step_size)  # size_usd is the notional
        if qty <= 0 or qty < rules.min_qty or qty * mark.price < rules.min_notional:
            raise ControlError(
                f"size_usd {request.size_usd} (notional) = {qty} {symbol} at {mark.price}, "
                f"below the venue's minimum (qty {rules.min_qty}, notional {rules.min_notional})",
                field="size_usd",
            )
        base = d.risk_of(symbol)
        try:  # the entry's plan fields over its symbol's, key by key
            plan = plan_of(merged(fields_of(d.settings.risk_for(symbol)), request.plan_fields))
        except PlanError as exc:
            raise ControlError(f"{exc}; nothing was sent", field=exc.field) from None
        risk = dataclasses.replace(base, tp_pct=request.tp_pct, sl_pct=request.sl_pct, plan=plan)
        check_exits(request.side, mark.price, risk, rules)
        await self._check_limits(a, request, symbol, qty, mark.price, risk, rules)
        await self._set_leverage(a, symbol, request.leverage)  # before the entry is decided: refused -> nothing sent
        traits = a.venue.traits
        hedge = traits.hedge_mode(d.settings.daemon.hedge_mode)
        price = None
        if traits.emulated_exits:  # market orders there need a worst acceptable price
            price = worst_price(
                request.side.opening_order_side, mark.price, traits.close_slippage.first_pct, rules.tick_size
            )
        tid = d.store.allocate_tranche_id()
        entry = OrderRequest(
            client_id=client_order_id(d.settings.daemon.client_id_prefix, tid, Purpose.ENTRY, 1),
            symbol=symbol,
            side=request.side.opening_order_side,
            position_side=request.side.value if hedge else "BOTH",
            type=OrderType.MARKET,
            qty=qty,
            price=price,
        )
        if symbol in a.directory.unmonitored:  # an explicit open means: watch it again
            await self._resume(a, symbol)
        send, recv = trio.open_memory_channel[EntryOutcome](1)
        async with send, recv:
            await a.directory.inbox(symbol, request.side).send(OpenEntry(entry, tid, risk, send))
            outcome = None
            with trio.move_on_after(self._entry_timeout):
                outcome = await recv.receive()
        if outcome is None:
            estimate = Sizing.of(qty * mark.price, request.leverage, qty * mark.price * request.sl_pct / 100)
            return OpenResult(
                symbol, request.side, tid, entry.client_id, qty, None, None, None, "PENDING", estimate, plan=plan
            )
        if outcome.error is not None or outcome.tranche is None:
            raise ControlError(outcome.error or "entry ended without a fill", status=502)
        t = outcome.tranche
        sizing = Sizing.filled(t.qty, t.entry, t.sl, request.leverage)
        return OpenResult(
            symbol,
            request.side,
            tid,
            entry.client_id,
            t.qty,
            t.entry,
            t.tp,
            t.sl,
            "FILLED",
            sizing,
            plan=t.plan,
            plan_view=plan_view(t, rules),
        )

    async def _check_limits(
        self, a: Any, request: OpenRequest, symbol: str, qty: Decimal, mark: Decimal, risk: Risk, rules: SymbolRules
    ) -> None:
        """Refuse (422, ``field`` the limit's key) an entry that would break a risk limit; nothing is sent.

        Judged at the mark (where the market entry fills): its notional, and its loss at the SL as it would be
        placed (on the tick). A balance that cannot be read while ``max_risk_per_position_pct`` is set refuses
        it too (503): an entry must not go out unjudged. An entry that passes counts toward the limits until
        ``open_position`` returns (two opens at once cannot both slip under one limit).
        """
        guard = getattr(a, "risk_guard", None)
        if guard is None:
            return
        side = request.side
        _, sl = exit_prices(side, mark, risk, rules)
        entry = Entry(symbol, side, qty * mark, loss_at_sl(side, mark, sl, qty))
        try:
            breach = await guard.check_operator_entry(entry)
        except BalanceUnavailable as exc:
            raise ControlError(
                f"the account's balance could not be read to check max_risk_per_position_pct ({exc}); "
                "nothing was sent: retry shortly",
                field="max_risk_per_position_pct",
                status=503,
                retry_after=STARTING_RETRY_AFTER_SECONDS,
            ) from None
        if breach is not None:
            raise ControlError(
                f"refused by the risk limits: {breach.text} (a {side.value} of {qty.normalize():f} {symbol}: "
                f"{usd(entry.notional)} USD notional at the mark {mark}, {usd(entry.loss_at_sl)} USD lost at the SL "
                f"{sl.normalize():f}); nothing was sent",
                field=breach.name,
                status=422,
            )
        guard.reserve(id(request), entry)

    async def _set_leverage(self, a: Any, symbol: str, leverage: int) -> None:
        """Set ``leverage`` on the venue for ``symbol``, or refuse the open: nothing else has been sent yet.

        Called on the venue directly, not through the order gateway: it is an account setting, not an order, made
        once per operator open, and an unknown outcome is not retried here (a retry is the operator's call);
        Lighter's adapter sends it under the same lock and nonce sequence as the gateway's orders. No answer means
        the leverage is unknown, so the entry is not sent either.
        """
        venue = a.venue.name
        timeout = 3 * a.venue.traits.request_timeout_seconds  # a backstop: the adapter's own request timeout
        # (plus its one re-signed retry) answers OutcomeUnknown first; an in-process venue has none

        def unknown(why: str) -> ControlError:
            return ControlError(
                f"setting leverage {leverage} on {venue} for {symbol} got no answer {why}; the leverage there is "
                "unknown, so the entry was not sent: check the venue and retry",
                field="leverage",
                status=504,
            )

        try:
            with trio.fail_after(timeout):
                await a.venue.set_leverage(symbol, leverage)
        except trio.TooSlowError:
            raise unknown(f"within {timeout:g} s") from None
        except RateLimited as exc:
            raise ControlError(
                f"{venue} is rate-limiting; leverage {leverage} for {symbol} was not set and nothing was sent: "
                f"retry in {exc.retry_after:g} s",
                field="leverage",
                status=503,
                retry_after=exc.retry_after,
            ) from None
        except OutcomeUnknown as exc:
            raise unknown(f"({exc.msg})") from None
        except Rejected as exc:
            code = f" (code {exc.code})" if exc.code is not None else ""
            raise ControlError(
                f"{venue} refused leverage {leverage} for {symbol}: {exc.msg}{code}; nothing was sent",
                field="leverage",
                status=422,
            ) from None

    async def close(
        self, symbol: str, side: Side | None = None, tranche_id: int | None = None, *, venue: str | None = None
    ) -> list[CloseResult]:
        a = self._account(venue)
        self._need_actors(a)
        symbol = self._symbol(a, symbol)
        key = ("close", _name_of(a), symbol, side, tranche_id)
        return await self._coalesced(key, lambda: self._close(a, symbol, side, tranche_id))

    async def _close(self, a: Any, symbol: str, side: Side | None, tranche_id: int | None) -> list[CloseResult]:
        d = self._d
        name = _name_of(a)
        held = d.store.open_tranches(name, symbol)
        if tranche_id is not None:
            held = [t for t in held if t.id == tranche_id]
            if not held:
                raise ControlError(f"no open tranche {tranche_id} of {symbol}", field="tranche_id", status=404)
        results = []
        for s in (side,) if side is not None else tuple(Side):
            ids = tuple(t.id for t in held if t.side is s)
            if not ids:
                continue
            # All closing already: the actor is on it (a ladder level closing at TP is not the whole tranche).
            if any(not t.closing or (t.closing == ExitReason.TP and t.plan.tp_levels) for t in held if t.side is s):
                await a.directory.inbox(symbol, s).send(
                    CloseTranches(ids if tranche_id is not None else (), ExitReason.MANUAL)
                )
            results.append(CloseResult(symbol, s, list(ids)))
        if not results:
            raise ControlError(
                f"posmon holds no open tranche of {symbol}" + (f" {side.value}" if side else ""),
                field="symbol",
                status=404,
            )
        return results

    async def stop_monitoring(self, symbol: str, *, venue: str | None = None) -> StopResult:
        a = self._account(venue)
        self._need_actors(a)
        symbol = self._symbol(a, symbol)
        return await self._coalesced(("stop", _name_of(a), symbol), lambda: self._stop(a, symbol))

    async def _stop(self, a: Any, symbol: str) -> StopResult:
        d = self._d
        name = _name_of(a)
        d.store.set_monitored(name, symbol, False)
        a.directory.unmonitored.add(symbol)
        stopped: list[int] = []
        for side in Side:
            if (symbol, side) not in a.directory:
                continue
            send, recv = trio.open_memory_channel[list[int]](1)
            async with send, recv:
                await a.directory.inbox(symbol, side).send(StopMonitoring(send))
                with trio.move_on_after(self._reply_timeout):
                    stopped += await recv.receive()
        exits = "emulated" if a.venue.traits.emulated_exits else "exchange"
        return StopResult(symbol, sorted(stopped), exits, name)

    async def resume_monitoring(self, symbol: str, *, venue: str | None = None) -> None:
        a = self._account(venue)
        self._need_actors(a)
        symbol = self._symbol(a, symbol)
        await self._coalesced(("resume", _name_of(a), symbol), lambda: self._resume(a, symbol))

    async def _resume(self, a: Any, symbol: str) -> None:
        """Only a stopped symbol's actors are told (each then reconciles once); a monitored one needs nothing.

        Sending ``ResumeMonitoring`` to a monitored actor would only queue another full reconcile (two account
        reads) ahead of its ticks: 300 resumes used to stall a close for tens of seconds.
        """
        d = self._d
        stopped = symbol in a.directory.unmonitored
        if stopped:
            d.store.set_monitored(_name_of(a), symbol, True)
            a.directory.unmonitored.discard(symbol)
        for side in Side:
            known = (symbol, side) in a.directory
            inbox = a.directory.inbox(symbol, side)  # a new actor reconciles at start and adopts what it finds
            if known and stopped:
                await inbox.send(ResumeMonitoring())


def _name_of(account: Any) -> str:
    """An account's venue name (a stand-in daemon's: its venue's)."""
    name = getattr(account, "name", None)
    return name if isinstance(name, str) else str(account.venue.name)
