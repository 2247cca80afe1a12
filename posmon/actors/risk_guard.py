"""The risk guard: the one home of the account-wide view the risk limits are checked against.

Two things no position actor knows alone: every open (symbol, side) position's exposure, read from the
position actors' own tranches (no I/O: what posmon holds, exactly as it decides on it), and the account's
balance, read from the venue through the order gateway (paced like every other call) and cached. An
operator's entry waits for a balance no older than ``max_age``; a fill from elsewhere is judged at once, inside
its actor's turn, against the balance last read (a background refresh keeps it within ``max_age`` while
``max_risk_per_position_pct`` is set anywhere): a fill is already on the venue, and its actor must decide now
whether it becomes a tranche to protect or one to close.

With no limit configured the guard is not made at all (``RiskGuard.wanted``): nothing changes and nothing is
read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

import trio

from posmon.actors.messages import BalanceAnswer, FetchBalance, GatewayRequest
from posmon.config import RiskSettings, Settings
from posmon.domain.limits import Breach, Entry, Exposure, Limits, check_entry, exposure_of
from posmon.domain.orders import Side

log = logging.getLogger(__name__)

BALANCE_MAX_AGE_SECONDS = 30.0

Key = tuple[str, Side]


class BalanceUnavailable(Exception):
    """No balance could be read, so ``max_risk_per_position_pct`` cannot be judged; says why."""


class _Holdings(Protocol):
    """Where the open positions are read from (the position directory)."""

    def actors(self) -> list[Any]: ...


def _limits(r: RiskSettings, account: RiskSettings) -> Limits:
    return Limits(
        max_open_positions=account.max_open_positions,
        max_notional_per_symbol=r.max_notional_per_symbol,
        max_risk_per_position_pct=r.max_risk_per_position_pct,
    )


class RiskGuard:
    """Checks entries and fills against the limits of ``[risk]`` / ``[risk.symbols.X]`` (see ``domain.limits``)."""

    def __init__(
        self,
        settings: Settings,
        gateway: trio.MemorySendChannel[GatewayRequest],
        *,
        reply_timeout: float,
        max_age: float = BALANCE_MAX_AGE_SECONDS,
    ) -> None:
        self._settings = settings
        self._gateway = gateway
        self._reply_timeout = reply_timeout
        self.max_age = max_age
        self.holdings: _Holdings | None = None  # the position directory, set once it exists
        self._balance: Decimal | None = None
        self._read_at = -math.inf  # trio time of the last balance read that answered
        self._reading: trio.Event | None = None  # a read under way: later askers wait for it (one call, not many)
        self._reserved: dict[int, Entry] = {}  # operator entries judged and not yet answered, by request

    @staticmethod
    def wanted(settings: Settings) -> bool:
        """Whether any limit is set, in ``[risk]`` or for any symbol."""
        return any(_limits(r, settings.risk).any for r in (settings.risk, *settings.risk_symbols.values()))

    def limits(self, symbol: str) -> Limits:
        return _limits(self._settings.risk_for(symbol), self._settings.risk)

    def closes_breaching_fills(self, symbol: str) -> bool:
        return self._settings.risk_for(symbol).close_breaching_fills

    @property
    def _needs_balance(self) -> bool:
        return any(r.max_risk_per_position_pct for r in (self._settings.risk, *self._settings.risk_symbols.values()))

    # --- the account ---------------------------------------------------------------------------------------

    def positions(self) -> dict[Key, Exposure]:
        """Every (symbol, side) posmon holds tranches of, with its exposure (closing tranches still count: their
        quantity is still on the venue), plus the operator entries under way."""
        out: dict[Key, Exposure] = {}
        for actor in self.holdings.actors() if self.holdings is not None else ():
            if actor.tranches:
                c = actor.cfg
                out[(c.symbol, c.side)] = exposure_of(c.side, ((t.qty, t.entry, t.sl) for t in actor.tranches.values()))
        for e in self._reserved.values():
            held = out.get((e.symbol, e.side), Exposure(Decimal(0), Decimal(0)))
            out[(e.symbol, e.side)] = Exposure(held.notional + e.notional, held.loss_at_sl + e.loss_at_sl)
        return out

    def reserve(self, token: int, entry: Entry) -> None:
        """An operator entry that passed counts toward the limits until ``release`` (its outcome is known)."""
        self._reserved[token] = entry

    def release(self, token: int) -> None:
        self._reserved.pop(token, None)

    @property
    def last_balance(self) -> Decimal | None:
        """The balance last read (whatever its age), None before the first answer."""
        return self._balance

    async def balance(self, *, fresh: bool = False) -> Decimal:
        """A balance no older than ``max_age`` (``fresh``: read now), read if need be; ``BalanceUnavailable``
        when none came."""
        if not fresh and trio.current_time() - self._read_at <= self.max_age and self._balance is not None:
            return self._balance
        if self._reading is not None:  # another caller's read is under way: its answer serves both
            await self._reading.wait()
            if self._balance is not None and trio.current_time() - self._read_at <= self.max_age:
                return self._balance
        self._reading = reading = trio.Event()
        try:
            answer = await self._ask()
        finally:
            self._reading = None
            reading.set()
        if answer is None:
            raise BalanceUnavailable(f"no answer within {self._reply_timeout:g} s")
        if answer.balance is None:
            raise BalanceUnavailable(str(answer.error) if answer.error is not None else "no balance in the answer")
        self._balance, self._read_at = answer.balance, trio.current_time()
        return answer.balance

    async def _ask(self) -> BalanceAnswer | None:
        send, receive = trio.open_memory_channel[BalanceAnswer](1)
        async with send, receive:
            await self._gateway.send(FetchBalance(send))
            with trio.move_on_after(self._reply_timeout):
                return await receive.receive()
        return None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the balance fresh for the fills' checks while ``max_risk_per_position_pct`` is set anywhere."""
        task_status.started()
        if not self._needs_balance:
            return
        while True:
            try:
                balance = await self.balance(fresh=True)
                log.debug("risk limits: balance %s", balance)
            except BalanceUnavailable as exc:
                log.warning(
                    "risk limits: the account's balance could not be read (%s); fills are judged against the last "
                    "one read (%s); retrying in %g s",
                    exc,
                    self._balance,
                    self.max_age,
                )
            await trio.sleep(self.max_age)

    # --- checks ---------------------------------------------------------------------------------------------

    def check(self, entry: Entry, balance: Decimal | None) -> Breach | None:
        """The first limit ``entry`` breaks against the account as posmon holds it now (None: inside all)."""
        return check_entry(self.limits(entry.symbol), self.positions(), balance, entry)

    async def check_operator_entry(self, entry: Entry) -> Breach | None:
        """For an entry not sent yet: with a balance no older than ``max_age`` when the percent limit is set
        for its symbol (``BalanceUnavailable`` when none can be read: the entry must not go out unjudged)."""
        limits = self.limits(entry.symbol)
        if not limits.any:
            return None
        balance = await self.balance() if limits.max_risk_per_position_pct else None
        return self.check(entry, balance)

    def check_fill(self, entry: Entry) -> Breach | None:
        """For a fill that happened (inside its actor's turn): against the balance last read."""
        limits = self.limits(entry.symbol)
        if not limits.any:
            return None
        if limits.max_risk_per_position_pct and self._balance is None:
            log.warning(
                "risk limits: no balance read yet; max_risk_per_position_pct not judged for the fill of %s %s",
                entry.symbol,
                entry.side.value,
            )
        return self.check(entry, self._balance)


def growth(
    symbol: str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    before: Iterable[tuple[Decimal, Decimal, Decimal]],
    after: Iterable[tuple[Decimal, Decimal, Decimal]],
) -> Entry:
    """A fill as an entry: its notional, and the loss at the SL it added to the position (tranches' (qty, entry,
    sl) before and after it was applied: joining a tranche moves that tranche's SL too)."""
    added = exposure_of(side, after).loss_at_sl - exposure_of(side, before).loss_at_sl
    return Entry(symbol, side, qty * price, max(added, Decimal(0)))
