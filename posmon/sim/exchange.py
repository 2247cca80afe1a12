"""The running simulated exchange: the engine plus the venue's streams, REST surface and failures.

It plays the venue's side for tests, chaos runs and benchmarks: prices and user
events go out as wire frames to every subscriber, REST-like calls are counted and
can be made to fail, and "another program" can trade the same account.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

import orjson
import trio

from posmon.domain.orders import OrderRequest, OrderState, OrderType, PositionState, Side, SymbolRules
from posmon.exchange.errors import Rejected
from posmon.exchange.events import MarkPrice, OrderUpdate
from posmon.exchange.venue import PlaceResult
from posmon.sim import wire
from posmon.sim.engine import MatchingEngine
from posmon.sim.faults import CallFaults

_T = TypeVar("_T")


DEFAULT_DEPOSIT = Decimal(100_000)


def _ms(t: float) -> int:
    return round(t * 1000)


class SimExchange:
    """A simulated venue account; synchronous calls, trio only for streams and the background drivers."""

    def __init__(
        self,
        rules: Mapping[str, SymbolRules],
        *,
        hedge_mode: bool = True,
        clock: Callable[[], float] = time.time,
        bounded_market: bool = False,
    ) -> None:
        self.engine = MatchingEngine(rules, hedge_mode=hedge_mode, bounded_market=bounded_market)
        self.hedge_mode = hedge_mode
        self.clock = clock
        self.faults = CallFaults()
        self.calls: Counter[str] = Counter()
        self.orders_sent = 0
        self.prices_stalled = False
        self._price_subscribers: list[trio.MemorySendChannel[bytes]] = []
        self._user_subscribers: list[trio.MemorySendChannel[bytes]] = []
        self._mark_times: dict[str, float] = {}
        self._external_ids = itertools.count(1)
        # What the account was funded with, in the quote currency; its balance adds every realized PnL.
        self.deposit = DEFAULT_DEPOSIT

    # ---- streams ------------------------------------------------------------------------------------------------

    def open_price_stream(self) -> trio.MemoryReceiveChannel[bytes]:
        """A new subscriber to the all-symbols mark price stream (like ``!markPrice@arr@1s``)."""
        return self._subscribe(self._price_subscribers)

    def open_user_stream(self) -> trio.MemoryReceiveChannel[bytes]:
        """A new subscriber to the account's user-data stream."""
        return self._subscribe(self._user_subscribers)

    def user_frames_since(
        self,
        tap: trio.MemoryReceiveChannel[bytes],
    ) -> tuple[trio.MemoryReceiveChannel[bytes], list[bytes]]:
        """Every user-stream frame ``tap`` has not read yet, and the tap to read from next time.

        For a protocol simulator that keeps its own view of the account: ``drop_streams`` closes every subscriber,
        its tap too, so a closed tap is replaced by a new subscription.
        """
        frames: list[bytes] = []
        while True:
            try:
                frames.append(tap.receive_nowait())
            except trio.WouldBlock:
                return tap, frames
            except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError):
                return self.open_user_stream(), frames

    def publish_raw_price_frame(self, data: bytes) -> None:
        """Send arbitrary bytes to price subscribers (malformed-frame tests); ignores the stall."""
        self._publish(self._price_subscribers, data)

    def publish_raw_user_frame(self, data: bytes) -> None:
        self._publish(self._user_subscribers, data)

    def drop_streams(self) -> None:
        """Close every current subscriber: its reader sees the stream end (after frames already buffered)."""
        for send in (*self._price_subscribers, *self._user_subscribers):
            send.close()
        self._price_subscribers.clear()
        self._user_subscribers.clear()

    def stall_prices(self, stalled: bool) -> None:
        """While stalled no price frame goes out, but marks still move and orders still trigger."""
        self.prices_stalled = stalled

    @property
    def subscriber_counts(self) -> tuple[int, int]:
        """(price, user) subscribers currently connected."""
        return len(self._price_subscribers), len(self._user_subscribers)

    # ---- driving the market -------------------------------------------------------------------------------------

    def set_marks(self, prices: Mapping[str, Decimal], *, trade: bool = True) -> None:
        """Move marks, publish one price frame with all of them, then the user events the moves caused.

        ``trade=False``: only the mark moves; resting limit orders do not fill.
        """
        unknown = [s for s in prices if s not in self.engine.rules]
        if unknown:
            raise Rejected(f"Invalid symbols {unknown}.", code=-1121)
        now = self.clock()
        for symbol, price in prices.items():
            self.engine.set_mark(symbol, price, now, trade=trade)
            self._mark_times[symbol] = now
        if prices and not self.prices_stalled:
            self._publish(self._price_subscribers, wire.encode_mark_prices(prices, _ms(now)))
        self._flush_events()

    def set_mark(self, symbol: str, price: Decimal) -> None:
        self.set_marks({symbol: price})

    async def replay(self, paths: Mapping[str, Sequence[Decimal]], interval: float, *, loop: bool = True) -> None:
        """Step every symbol along its path, one ``set_marks`` per ``interval``; each path wraps when ``loop``."""
        lengths = {s: len(p) for s, p in paths.items() if p}
        if not lengths:
            return
        steps = max(lengths.values())
        for i in itertools.count():
            if not loop and i >= steps:
                return
            self.set_marks({s: paths[s][i % n] for s, n in lengths.items() if loop or i < n})
            await trio.sleep(interval)

    def trade_partially(self, symbol: str, client_id: str, qty: Decimal) -> OrderState:
        """A resting limit order trades only ``qty`` (the book was thin there) and keeps resting."""
        try:
            return self.engine.trade_partially(symbol, client_id, qty, self.clock())
        finally:
            self._flush_events()

    # ---- another program on the same account ------------------------------------------------------------------

    def external_entry(self, symbol: str, side: Side, qty: Decimal, *, client_id: str | None = None) -> OrderState:
        """A MARKET order that opens or increases ``side``, as a human or another bot would place it."""
        if client_id is None:
            client_id = f"ext-{next(self._external_ids)}"
        if client_id.startswith("pm"):
            raise ValueError(f"external client ids must not look like posmon's: {client_id!r}")
        request = OrderRequest(
            client_id=client_id,
            symbol=symbol,
            side=side.opening_order_side,
            position_side=side.value if self.hedge_mode else "BOTH",
            type=OrderType.MARKET,
            qty=qty,
        )
        try:
            return self.engine.place(request, self.clock())
        finally:
            self._flush_events()

    def entry_qty(self, symbol: str, notional: Decimal) -> Decimal | None:
        """About ``notional`` USDT at the mark, rounded down to step but at least the venue's minimums."""
        mark = self.engine.mark(symbol)
        if mark is None:
            return None
        rules = self.engine.rules[symbol]
        step = rules.step_size
        qty = (notional / mark / step).to_integral_value(ROUND_FLOOR) * step
        qty = max(qty, rules.min_qty, step)
        if qty * mark < rules.min_notional:
            qty = (rules.min_notional / mark / step).to_integral_value(ROUND_CEILING) * step
        return qty

    async def run_trader(
        self, symbols: Sequence[str], interval: float, seed: int | str, notional: Decimal = Decimal(100)
    ) -> None:
        """Every ``interval``: an external entry of about ``notional`` in a random symbol and side, until cancelled."""
        rng = random.Random(seed)
        choices = list(symbols)
        while True:
            await trio.sleep(interval)
            symbol = rng.choice(choices)
            side = rng.choice((Side.LONG, Side.SHORT))
            qty = self.entry_qty(symbol, notional)
            if qty is None:
                continue  # no price yet: nothing sensible to trade
            try:
                self.external_entry(symbol, side, qty)
            except Rejected:
                continue

    def silent_position(self, symbol: str, side: Side, qty: Decimal, *, frame: bool = True) -> PositionState:
        """The position becomes ``qty`` with no order update: only the account's position frame says so
        (``frame``), or nothing at all (a frame lost, a change made where no stream reports it)."""
        try:
            return self.engine.adjust_position(symbol, side, qty, self.clock(), emit=frame)
        finally:
            self._flush_events()

    def liquidate(
        self,
        symbol: str,
        side: Side,
        qty: Decimal | None = None,
        *,
        adl: bool = False,
        client_id: str | None = None,
        cancel_orders: bool = False,
    ) -> Decimal:
        """The venue closes ``qty`` (default all) of the position at the mark: a liquidation or an ADL.

        The client sees the venue's own order (``autoclose-<ms>`` / ``adl_autoclose``, type LIQUIDATION, exec
        type CALCULATED), then the position frame. ``cancel_orders``: first the side's resting orders are
        cancelled, as a liquidation does. Returns the quantity closed (0 when the side was flat).
        """
        held = self.engine.position(symbol, side)
        if held is None:
            return Decimal(0)
        close = held.qty if qty is None else min(qty, held.qty)
        now = self.clock()
        if cancel_orders:
            position_side = side.value if self.hedge_mode else "BOTH"
            for order in self.engine.open_orders(symbol):
                if order.position_side == position_side and order.side is side.closing_order_side:
                    self.engine.cancel(symbol, order.client_id, now)
            self._flush_events()
        mark = self.engine.mark(symbol) or held.entry_price
        pnl = side.sign * (mark - held.entry_price) * close
        if client_id is None:
            client_id = "adl_autoclose" if adl else f"autoclose-{_ms(now)}"
        self.engine.adjust_position(symbol, side, held.qty - close, now, emit=True)
        order_id = int(self.engine.next_order_id())
        self._publish(
            self._user_subscribers,
            wire.encode_forced_close(
                symbol,
                side,
                close,
                mark,
                client_id=client_id,
                order_id=order_id,
                time_ms=_ms(now),
                realized_pnl=pnl,
                hedge_mode=self.hedge_mode,
            ),
        )
        self._flush_events()
        return close

    # ---- the venue's REST surface -------------------------------------------------------------------------------

    def load_rules(self) -> dict[str, SymbolRules]:
        return self._call("load_rules", lambda: dict(self.engine.rules))

    def place_orders(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """One call for the batch; a result per order in order, a ``Rejected`` in place of a refused one."""
        self.orders_sent += len(orders)

        def run() -> list[PlaceResult]:
            now = self.clock()
            results: list[PlaceResult] = []
            for order in orders:
                try:
                    results.append(self.engine.place(order, now))
                except Rejected as exc:
                    results.append(exc)
            return results

        return self._call("place_orders", run)

    def cancel_orders(self, symbol: str, client_ids: Sequence[str]) -> list[PlaceResult]:
        def run() -> list[PlaceResult]:
            now = self.clock()
            results: list[PlaceResult] = []
            for client_id in client_ids:
                try:
                    results.append(self.engine.cancel(symbol, client_id, now))
                except Rejected as exc:
                    results.append(exc)
            return results

        return self._call("cancel_orders", run)

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """The symbol's leverage on the account (the engine's rule: 1 to its maximum, else ``Rejected`` -4028)."""
        return self._call("set_leverage", lambda: self.engine.set_leverage(symbol, leverage))

    def query_order(self, symbol: str, client_id: str) -> OrderState:
        return self._call("query_order", lambda: self.engine.query(symbol, client_id))

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        return self._call("open_orders", lambda: self.engine.open_orders(symbol))

    def positions(self) -> list[PositionState]:
        return self._call("positions", self.engine.positions)

    def balance(self) -> Decimal:
        """The account's wallet balance: its deposit plus the realized PnL of every closing fill."""

        def run() -> Decimal:
            return self.deposit + sum((self.engine.realized_pnl(s) for s in self.engine.rules), Decimal(0))

        return self._call("balance", run)

    def mark_prices(self) -> list[MarkPrice]:
        def run() -> list[MarkPrice]:
            marks = ((s, self.engine.mark(s)) for s in self.engine.rules)
            return [MarkPrice(s, p, self._mark_times[s]) for s, p in marks if p is not None]

        return self._call("mark_prices", run)

    def fail_next(self, call: str, n: int = 1, *, after_execute: bool = False) -> None:
        """The next ``n`` ``call``s raise ``OutcomeUnknown``; with ``after_execute`` they take effect first (503)."""
        self.faults.fail_next(call, n, after_execute=after_execute)

    def rate_limit_next(self, call: str, n: int = 1, retry_after: float = 1.0) -> None:
        """The next ``n`` ``call``s raise ``RateLimited(retry_after)`` without taking effect."""
        self.faults.rate_limit_next(call, n, retry_after)

    # ---- internals ----------------------------------------------------------------------------------------------

    def _call(self, name: str, action: Callable[[], _T]) -> _T:
        """Count the call, apply its scripted fault, run it and publish what it caused."""
        self.calls[name] += 1
        fault = self.faults.take(name)
        if fault is not None and not fault.after_execute:
            raise fault.error(name)
        try:
            result = action()
        finally:
            self._flush_events()
        if fault is not None:
            raise fault.error(name)
        return result

    def _flush_events(self) -> None:
        events = self.engine.drain_events()
        if not events:
            return
        now_ms = _ms(self.clock())
        for event in events:
            price = stop_price = None
            if isinstance(event, OrderUpdate):
                order = self.engine.query(event.symbol, event.client_id)
                price, stop_price = order.price, order.stop_price
            frame = wire.encode_user_event(
                event, now_ms, price=price, stop_price=stop_price, hedge_mode=self.hedge_mode
            )
            self._publish(self._user_subscribers, frame)

    @staticmethod
    def _subscribe(subscribers: list[trio.MemorySendChannel[bytes]]) -> trio.MemoryReceiveChannel[bytes]:
        send, receive = trio.open_memory_channel[bytes](math.inf)
        subscribers.append(send)
        return receive

    @staticmethod
    def _publish(subscribers: list[trio.MemorySendChannel[bytes]], frame: bytes) -> None:
        """Deliver to every live subscriber; drop the ones whose reader has gone."""
        alive = []
        for send in subscribers:
            try:
                send.send_nowait(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                continue
            alive.append(send)
        subscribers[:] = alive


class UserEventTap:
    """A protocol simulator's own reading of the account's user stream: every event since the last read, decoded.

    Read synchronously (the channel is unbounded), so what a handler answers already reflects every event
    its call caused; frames that are not JSON objects (a test's malformed one) are skipped.
    """

    def __init__(self, exchange: SimExchange) -> None:
        self._exchange = exchange
        self._tap = exchange.open_user_stream()

    def read(self) -> list[dict[str, Any]]:
        self._tap, frames = self._exchange.user_frames_since(self._tap)
        events = []
        for frame in frames:
            try:
                data = orjson.loads(frame)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                events.append(data)
        return events
