"""Messages between the actors: small frozen records named for what happened or what is wanted."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import trio

from posmon.domain.orders import OrderRequest, OrderState, PositionState
from posmon.domain.tranche import ExitReason, Risk, Tranche
from posmon.exchange.errors import VenueError
from posmon.exchange.events import OrderUpdate, PositionUpdate


class Priority(enum.IntEnum):
    """Gateway queue order: exits before protection before housekeeping; FIFO within a class."""

    EXIT = 0
    PROTECT = 1
    HOUSEKEEPING = 2


# --- to the order gateway ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrders:
    """Place these orders together (one batch call where the venue allows); results go to ``reply_to``."""

    orders: tuple[OrderRequest, ...]
    reply_to: trio.MemorySendChannel[OrderResults]
    priority: Priority = Priority.PROTECT
    since: float = 0.0  # when the exposure these orders cover began: older exposures are served first
    rank: float = 0.0  # within a priority, lower goes first (exits: the tranche furthest through its stop)
    tick_at: float | None = None  # trio time of the price frame that caused this (tick-to-order latency)


@dataclass(frozen=True, slots=True)
class CancelOrders:
    """Cancel these orders of one symbol; each result carries the order's final state."""

    symbol: str
    client_ids: tuple[str, ...]
    reply_to: trio.MemorySendChannel[OrderResults]
    priority: Priority = Priority.PROTECT
    tick_at: float | None = None  # trio time of the price frame that caused this (tick-to-order latency)


@dataclass(frozen=True, slots=True)
class QueryOrders:
    symbol: str
    client_ids: tuple[str, ...]
    reply_to: trio.MemorySendChannel[OrderResults]
    priority: Priority = Priority.PROTECT


@dataclass(frozen=True, slots=True)
class FetchAccount:
    """Positions and open orders (of one symbol, or all) for reconciliation."""

    symbol: str | None
    reply_to: trio.MemorySendChannel[AccountSnapshot]
    priority: Priority = Priority.PROTECT


@dataclass(frozen=True, slots=True)
class FetchBalance:
    """The account's balance, for the risk limits (one venue call, paced like every other)."""

    reply_to: trio.MemorySendChannel[BalanceAnswer]
    priority: Priority = Priority.PROTECT


GatewayRequest = PlaceOrders | CancelOrders | QueryOrders | FetchAccount | FetchBalance


# --- from the order gateway -------------------------------------------------------------------------------


class Action(enum.StrEnum):
    PLACE = "place"
    CANCEL = "cancel"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The outcome for one order: its state on the exchange, a final rejection, or (neither) still unknown.

    A query that finds no such order answers ``state=None`` with an ``OrderNotFound`` error.
    """

    client_id: str
    action: Action
    state: OrderState | None = None
    error: VenueError | None = None
    sent: OrderRequest | None = None  # the placement as finally sent (a re-rounded retry differs from the ask)

    @property
    def unknown(self) -> bool:
        return self.state is None and self.error is None


@dataclass(frozen=True, slots=True)
class OrderResults:
    results: tuple[OrderResult, ...]


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    positions: tuple[PositionState, ...]
    open_orders: tuple[OrderState, ...]
    error: VenueError | None = None

    def by_symbol(self) -> dict[str, AccountSnapshot]:
        """A whole-account snapshot split per symbol in one pass (slicing it per actor would be quadratic)."""
        positions: dict[str, list[PositionState]] = {}
        orders: dict[str, list[OrderState]] = {}
        for p in self.positions:
            positions.setdefault(p.symbol, []).append(p)
        for o in self.open_orders:
            orders.setdefault(o.symbol, []).append(o)
        return {
            s: AccountSnapshot(tuple(positions.get(s, ())), tuple(orders.get(s, ())), self.error)
            for s in positions.keys() | orders.keys()
        }

    def of(self, symbol: str | None, split: dict[str, AccountSnapshot] | None = None) -> AccountSnapshot:
        """The part of a whole-account snapshot that concerns ``symbol`` (all of it for None)."""
        if symbol is None:
            return self
        split = self.by_symbol() if split is None else split
        return split.get(symbol) or AccountSnapshot((), (), self.error)


@dataclass(frozen=True, slots=True)
class BalanceAnswer:
    """The balance the venue reported, or why there is none."""

    balance: Decimal | None
    error: VenueError | None = None


# --- to a position actor ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceWake:
    """A new mark is waiting in the actor's price slot (at most one such token is queued)."""


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Compare the store with the exchange (after a private-stream connect, on the reconcile timer, on request).

    ``snapshot``: this symbol's slice of a whole-account read made for every actor at once (one read instead of
    one per actor); ``read_at`` is when that read was asked for (the actor's clock), so an actor that changed its
    position since can tell the snapshot is older than what it knows. Without a snapshot the actor reads its own.
    """

    snapshot: AccountSnapshot | None = None
    read_at: float | None = None


@dataclass(frozen=True, slots=True)
class CloseTranches:
    """Close tranches now at market (all of the position when ``tranche_ids`` is empty)."""

    tranche_ids: tuple[int, ...] = ()
    reason: str = ExitReason.MANUAL


@dataclass(frozen=True, slots=True)
class TrimTranche:
    """Close ``qty`` of tranche ``tranche_id`` at market, the rest kept (a hedge pair's trimmed entry or rebalance):
    a partial close through the tranche's own close path, booked like a ladder level's."""

    tranche_id: int
    qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class ProtectTranches:
    """Tighten these tranches' stops to ``stop_pct`` % from the mark (a pair's ``on_leg_exit = "protect"``): the
    price is the position actor's, from its own newest mark; a stop already tighter stays."""

    tranche_ids: tuple[int, ...]
    stop_pct: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """Place an entry at market for a new tranche with its own risk (the operator's open command).

    ``entry`` carries the client id ``<prefix>-<tranche_id>-E1``; its fills become tranche ``tranche_id``
    protected at ``risk``. ``reply_to`` gets an ``EntryOutcome`` once the entry is filled or has ended.
    """

    entry: OrderRequest
    tranche_id: int
    risk: Risk
    reply_to: trio.MemorySendChannel[EntryOutcome] | None = None


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    tranche: Tranche | None  # once filled, else None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StopMonitoring:
    """Forget every tranche of this key without closing the position; cancel posmon's resting orders.

    ``reply_to`` gets the ids of the tranches forgotten.
    """

    reply_to: trio.MemorySendChannel[list[int]] | None = None


@dataclass(frozen=True, slots=True)
class ResumeMonitoring:
    """Undo ``StopMonitoring``: reconcile and adopt the position again."""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an operator may want to see: a tranche opened, an exit taken, a failure to protect."""

    kind: str
    venue: str
    symbol: str
    side: str
    text: str
    needs_human: bool = False
    data: dict[str, Any] = field(default_factory=dict)


# What a position actor's inbox carries: the venue's events for its key, the gateway's answers to its requests,
# price wake-ups and the operator's commands. (The actor also queues private messages to itself.)
PositionMessage = (
    PriceWake
    | OrderUpdate
    | PositionUpdate
    | OrderResults
    | Reconcile
    | OpenEntry
    | CloseTranches
    | TrimTranche
    | ProtectTranches
    | StopMonitoring
    | ResumeMonitoring
)
