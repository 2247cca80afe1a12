"""``AsterSim``: one simulated Aster account behind the protocol, with its switches and counters.

Everything the HTTP and websocket handlers share lives here: the ``SimExchange`` that
matches, the credentials, limits, listen keys, the order index, the server clock, the
fault switches tests flip and the counters tests read. The handlers hold no state.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from posmon.sim.aster.auth import MAINNET_CHAIN_ID, Authenticator
from posmon.sim.aster.book import OrderIndex
from posmon.sim.aster.credentials import DEFAULT_API_KEYS, DEFAULT_API_WALLETS, ApiKey, ApiWallet
from posmon.sim.aster.errors import fault_error
from posmon.sim.aster.filters import SymbolFilters, filters_for
from posmon.sim.aster.frames import FUNDING_INTERVAL_MS, FUNDING_RATE
from posmon.sim.aster.limits import RateCounters, RateLimitConfig, RateLimiter
from posmon.sim.aster.listen_keys import ListenKeys
from posmon.sim.exchange import SimExchange
from posmon.sim.faults import HttpFault, HttpFaults
from posmon.sim.serving import ProtocolSim

if TYPE_CHECKING:
    from starlette.applications import Starlette

#: The simulator serves one account; every credential trades it.
ACCOUNT = "main"


@dataclass(frozen=True, slots=True)
class WsConfig:
    """Websocket behaviour; the defaults are the venue's (pings every 5 min, dropped at 24 h)."""

    ping_interval: float | None = 300.0  # seconds between server pings (hypercorn sends them); None: never
    max_connection_age: float = 24 * 3600.0  # seconds (trio clock) before the server closes a connection
    max_streams: int = 200
    max_incoming_per_second: int = 10  # control frames a client may send per second before it is dropped
    recheck_interval: float = 1.0  # how often a user stream re-reads the server clock for listen-key expiry


@dataclass(slots=True)
class SimCounters(RateCounters):
    """Everything tests read, the rate-limit counters included."""

    ws_frames_sent: int = 0


class AsterSim(ProtocolSim):
    """One account of a simulated Aster venue; serve it with ``serve_aster_sim`` (``posmon.sim.serving.serve``)."""

    counters: SimCounters

    def __init__(
        self,
        exchange: SimExchange,
        *,
        api_keys: Iterable[ApiKey] = DEFAULT_API_KEYS,
        api_wallets: Iterable[ApiWallet] = DEFAULT_API_WALLETS,
        limits: RateLimitConfig | None = None,
        filters: Mapping[str, SymbolFilters] | None = None,
        ws: WsConfig | None = None,
        listen_key_ttl: float = 3600.0,
        chain_id: int = MAINNET_CHAIN_ID,
        nonce_window_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
        seed: int | str = 0,
    ) -> None:
        super().__init__(exchange, SimCounters(), clock)
        self.auth = Authenticator(
            api_keys, api_wallets, self.clock, chain_id=chain_id, nonce_window_seconds=nonce_window_seconds
        )
        self.limits = limits if limits is not None else RateLimitConfig()
        self.limiter = RateLimiter(self.limits, self.counters)
        self.filters = filters_for(exchange.engine.rules, filters)
        self.ws = ws if ws is not None else WsConfig()
        # Funding published on the mark stream and premiumIndex: a constant rate (text, as the venue writes it)
        # every ``funding_interval_ms`` from the epoch; set freely (a test's short interval, a negative rate).
        self.funding_rate = FUNDING_RATE
        self.funding_interval_ms = FUNDING_INTERVAL_MS
        self.listen_keys = ListenKeys(self.clock, listen_key_ttl, seed=seed)
        self.orders = OrderIndex(exchange)
        self.http_faults = HttpFaults(fault_error)
        self._client_ids = random.Random(f"client-ids-{seed}")
        self._user_flowing = trio.Event()
        self._user_flowing.set()
        self.user_duplicates = 0  # the next user-data frames sent twice (a venue re-delivering)

    @property
    def websocket_ping_interval(self) -> float | None:
        return self.ws.ping_interval

    def create_app(self) -> Starlette:
        from posmon.sim.aster.app import create_app  # the app's handlers import this module

        return create_app(self)

    # ---- fault switches -----------------------------------------------------------------------------------------

    def delay_next(self, path: str, seconds: float, n: int = 1, *, method: str | None = None) -> None:
        """The next ``n`` requests of ``path`` wait ``seconds`` (trio clock) before they run and answer."""
        self.http_faults.add(path, HttpFault("delay", seconds=seconds), n, method)

    def stall_next(self, path: str, n: int = 1, *, method: str | None = None, after_execute: bool = False) -> None:
        """The next ``n`` requests of ``path`` get no answer until the client gives up or ``release_stalled``.

        ``after_execute``: the request takes effect first (the order is in, the client never hears).
        """
        self.http_faults.add(path, HttpFault("stall", after_execute=after_execute), n, method)

    def release_stalled(self) -> None:
        """Answer every stalled request (those stalled before executing run now)."""
        self.http_faults.release_stalled()

    def fail_next(self, path: str, n: int = 1, *, method: str | None = None, after_execute: bool = False) -> None:
        """The next ``n`` requests of ``path`` answer 503 / -1007; with ``after_execute`` they took effect first."""
        self.http_faults.add(path, HttpFault("fail", after_execute=after_execute), n, method)

    def reject_next(
        self, path: str, status: int = 429, n: int = 1, *, method: str | None = None, retry_after: float = 1.0
    ) -> None:
        """The next ``n`` requests of ``path`` are refused unexecuted: 429 (rate limited) or 418 (IP banned)."""
        if status not in (418, 429):
            raise ValueError(f"status must be 418 or 429, got {status}")
        self.http_faults.add(path, HttpFault("reject", seconds=retry_after, status=status), n, method)

    def stall_prices(self, stalled: bool = True) -> None:
        """No mark price frames go out while stalled (marks still move and orders still trigger)."""
        self.exchange.stall_prices(stalled)

    def stall_user_stream(self, stalled: bool = True) -> None:
        """Hold every user-data frame while stalled; they go out late, in order, once it flows again."""
        if stalled and self._user_flowing.is_set():
            self._user_flowing = trio.Event()
        elif not stalled:
            self._user_flowing.set()

    async def user_stream_flowing(self) -> None:
        await self._user_flowing.wait()

    def duplicate_user_frames(self, n: int = 1) -> None:
        """The next ``n`` user-data frames are delivered twice (each connection sees the duplicate)."""
        self.user_duplicates += n

    def expire_listen_key(self, key: str | None = None) -> list[str]:
        """Expire ``key`` (or every live key) now: its streams get ``listenKeyExpired`` and close."""
        return self.listen_keys.expire(key)

    def clock_changed(self) -> None:
        """Tell waiting streams the server clock jumped (for a hand-stepped clock; MockClock needs no call)."""
        self.listen_keys.notify()

    # ---- shared helpers for the handlers ------------------------------------------------------------------------

    def new_client_order_id(self) -> str:
        """A venue-generated id for orders sent without ``newClientOrderId`` (22 characters, like the venue's)."""
        alphabet = string.ascii_letters + string.digits
        while True:
            client_id = "".join(self._client_ids.choice(alphabet) for _ in range(22))
            if not client_id.startswith("pm"):  # the "pm" prefix marks posmon's own orders in SimExchange
                return client_id
