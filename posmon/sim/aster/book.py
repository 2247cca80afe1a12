"""What the wire knows about orders that the matching engine does not: ids, times, wire-only flags.

The engine keys orders by client id and keeps no timestamps, time-in-force or working
type; the venue answers with all of them and lets clients address an order by its
numeric ``orderId``. The index fills that gap from two sources: what the simulator's own
endpoints placed, and a tap on the exchange's user stream (which also sees orders placed
around the HTTP server, e.g. by ``SimExchange.external_entry``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from posmon.sim.exchange import SimExchange, UserEventTap


@dataclass(slots=True)
class OrderMeta:
    """Wire attributes of one order."""

    symbol: str
    order_id: str | None = None
    time_in_force: str = "GTC"
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    close_position: bool = False
    time_ms: int = 0
    update_ms: int = 0
    rested: bool = False  # it went on the book before trading: its fills are maker fills
    expire_on_cancel: bool = False  # IOC/FOK remainder the simulator cancelled: shown as EXPIRED


class OrderIndex:
    """Client id <-> order id, order metadata, position update times and stable trade ids."""

    def __init__(self, exchange: SimExchange) -> None:
        self._events = UserEventTap(exchange)
        self._meta: dict[str, OrderMeta] = {}
        self._by_order_id: dict[str, str] = {}
        self._position_times: dict[tuple[str, str], int] = {}
        self._trade_ids: dict[tuple[int, str], int] = {}
        self._next_trade_id = itertools.count(1)

    def register(self, client_id: str, meta: OrderMeta) -> None:
        """Before placing: so user-stream frames of the placement already find the metadata."""
        self._meta[client_id] = meta

    def forget(self, client_id: str) -> None:
        """The placement was refused: the id was never the venue's."""
        meta = self._meta.pop(client_id, None)
        if meta is not None and meta.order_id is not None:
            self._by_order_id.pop(meta.order_id, None)

    def link(self, client_id: str, order_id: str, symbol: str, now_ms: int) -> OrderMeta:
        meta = self._meta.get(client_id)
        if meta is None:
            meta = self._meta[client_id] = OrderMeta(symbol, working_type="MARK_PRICE", time_ms=now_ms)
        meta.order_id = order_id
        if not meta.time_ms:
            meta.time_ms = now_ms
        meta.update_ms = max(meta.update_ms, meta.time_ms)
        self._by_order_id[order_id] = client_id
        return meta

    def client_id(self, order_id: str) -> str | None:
        self.sync()
        return self._by_order_id.get(order_id)

    def meta(self, client_id: str) -> OrderMeta | None:
        return self._meta.get(client_id)

    def position_time(self, symbol: str, position_side: str) -> int:
        return self._position_times.get((symbol, position_side), 0)

    def trade_id(self, order_id: int, cum_qty: str) -> int:
        """The same id for the same fill, whichever connection asks first."""
        key = (order_id, cum_qty)
        trade_id = self._trade_ids.get(key)
        if trade_id is None:
            trade_id = self._trade_ids[key] = next(self._next_trade_id)
        return trade_id

    def sync(self) -> None:
        """Read every user-stream event published so far."""
        for data in self._events.read():
            self._observe(data)

    def _observe(self, data: dict[str, Any]) -> None:
        time_ms = data.get("E")
        if not isinstance(time_ms, int):
            return
        if data.get("e") == "ORDER_TRADE_UPDATE" and isinstance(data.get("o"), dict):
            o = data["o"]
            client_id, order_id, symbol = o.get("c"), o.get("i"), o.get("s")
            if isinstance(client_id, str) and isinstance(order_id, int | str) and isinstance(symbol, str):
                meta = self.link(client_id, str(order_id), symbol, time_ms)
                meta.update_ms = max(meta.update_ms, time_ms)
        elif data.get("e") == "ACCOUNT_UPDATE" and isinstance(data.get("a"), dict):
            for entry in data["a"].get("P") or []:
                if isinstance(entry, dict) and isinstance(entry.get("s"), str) and isinstance(entry.get("ps"), str):
                    self._position_times[(entry["s"], entry["ps"])] = time_ms
