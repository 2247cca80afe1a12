"""A daemon wired to an in-process simulated exchange, for end-to-end tests.

Tests run under trio's MockClock with autojump: ``settle()`` waits until every
task is blocked (the daemon has done all it can) without moving the clock;
``trio.sleep(n)`` in a test moves the clock deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
import trio.testing

from posmon.config import Settings, load_settings
from posmon.daemon import Daemon, run_daemon
from posmon.domain.orders import OrderState, Side
from posmon.metrics import Metrics
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue
from posmon.store.store import Store

D = Decimal


def _toml(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else repr(v).replace("'", '"')


def make_settings(
    tmp_path: Path,
    *,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    daemon: dict[str, Any] | None = None,
    store: str | Path | None = None,
    **risk: Any,
) -> Settings:
    """A sim-venue configuration; ``daemon``: extra ``[daemon]`` keys, ``risk``: ``[risk]`` keys; ``store``: an
    SQLite file or a PostgreSQL URL (default: posmon.sqlite in ``tmp_path``)."""
    risk_lines = "\n".join(f"{k} = {_toml(v)}" for k, v in {"tp_pct": 1.0, "sl_pct": 50.0, **risk}.items())
    text = f"""
[daemon]
venue = "sim"
store = "{store or tmp_path / "posmon.sqlite"}"
restart_backoff_seconds = 0.5
# The in-process exchange publishes a mark only when a test sets one (no 1 Hz cadence): not stale in between.
stale_stream_seconds = 600.0
{{daemon_lines}}

[risk]
{risk_lines}

[sim]
symbols = {list(symbols)!r}
trader_enabled = false
""".replace("'", '"')
    text = text.replace("{daemon_lines}", "\n".join(f"{k} = {_toml(v)}" for k, v in (daemon or {}).items()))
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path, env={})


def _plain(d: Decimal | None) -> str:
    return format(d.normalize(), "f") if d is not None else ""


def trio_clock() -> float:
    return trio.current_time()


def drain(notices: trio.MemoryReceiveChannel[Any]) -> list[Any]:
    """Every operator notice received so far, without waiting."""
    seen = []
    while True:
        try:
            seen.append(notices.receive_nowait())
        except trio.WouldBlock:
            return seen


async def settle() -> None:
    """Let the daemon run until it is idle (all tasks blocked) without advancing the clock."""
    await trio.testing.wait_all_tasks_blocked()


@dataclass
class Harness:
    settings: Settings
    exchange: SimExchange
    venue: Any
    store: Store
    metrics: Metrics
    daemon: Daemon
    aster: Any = None  # the AsterSim when the daemon trades over the Aster protocol
    lighter: Any = None  # the LighterSim when the daemon trades over the Lighter protocol

    def orders(self, symbol: str = "BTCUSDT") -> list[OrderState]:
        return sorted(self.exchange.engine.open_orders(symbol), key=lambda o: o.client_id)

    def resting(self, symbol: str = "BTCUSDT") -> set[tuple[str, str, str, str]]:
        """(type, side, qty, trigger price) of every open order, normalised for comparison."""
        return {
            (o.type.value, o.side.value, _plain(o.qty), _plain(o.price if o.price is not None else o.stop_price))
            for o in self.exchange.engine.open_orders(symbol)
        }

    async def entry(self, symbol: str, side: Side, qty: str, price: str) -> None:
        """Another program opens/extends a position at ``price`` (mark moved there first)."""
        self.exchange.set_mark(symbol, D(price))
        self.exchange.external_entry(symbol, side, D(qty))
        await settle()

    async def mark(self, symbol: str, price: str) -> None:
        self.exchange.set_mark(symbol, D(price))
        await settle()


def new_exchange(settings: Settings) -> SimExchange:
    return SimExchange(rules_for(settings.sim.symbols), hedge_mode=settings.daemon.hedge_mode, clock=trio_clock)


@asynccontextmanager
async def running(
    settings: Settings, exchange: SimExchange | None = None, *, venue: SimVenue | None = None, notices: Any = None
) -> AsyncIterator[Harness]:
    """The daemon on the in-process simulated venue; ``notices``: a channel that receives every operator notice."""
    exchange = exchange or new_exchange(settings)
    async with _daemon(settings, exchange, venue or SimVenue(exchange), notices=notices) as h:
        yield h


@asynccontextmanager
async def running_aster(
    settings: Settings,
    exchange: SimExchange | None = None,
    *,
    auth: str = "v3",
    sim_options: dict[str, Any] | None = None,
) -> AsyncIterator[Harness]:
    """The daemon trading the Aster-protocol simulator over loopback HTTP and websockets."""
    from posmon.exchange.aster.settings import AsterSettings
    from posmon.exchange.aster.venue import AsterVenue
    from posmon.sim.aster import credentials as cred
    from posmon.sim.aster import serve_aster_sim
    from posmon.sim.aster.sim import AsterSim

    exchange = exchange or new_exchange(settings)
    sim = AsterSim(exchange, clock=trio_clock, **(sim_options or {}))
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_aster_sim, sim)
        table: dict[str, Any] = {"rest_url": rest_url, "ws_url": ws_url, "auth": auth}
        if auth == "v3":
            table |= {"signer_private_key": cred.DEFAULT_SIGNER_PRIVATE_KEY, "user": cred.DEFAULT_USER_ADDRESS}
        else:
            table |= {"api_key": cred.DEFAULT_API_KEY, "api_secret": cred.DEFAULT_API_SECRET}
        aster = AsterSettings.from_config(table, {})
        async with (
            AsterVenue.open(aster, clock=trio_clock, sign_in_thread=False) as venue,
            _daemon(settings, exchange, venue) as h,
        ):
            h.aster = sim
            yield h
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_lighter(
    settings: Settings,
    exchange: SimExchange | None = None,
    *,
    sim_options: dict[str, Any] | None = None,
    notices: Any = None,
    lighter_options: dict[str, Any] | None = None,
) -> AsyncIterator[Harness]:
    """The daemon trading the Lighter-protocol simulator over loopback HTTP and websockets.

    Transactions are signed by lighter-sdk's Go signer with the simulator's made-up key; the simulator's
    clocks follow trio's (MockClock jumps move its auth-token and expiry checks too). ``exchange``: a
    one-way ``SimExchange`` on the Lighter markets (``posmon.sim.lighter.build_exchange``), ETH, BTC and DOGE by
    default; ``lighter_options``: extra ``[lighter]`` keys (e.g. the slippage ladder).
    """
    from posmon.exchange.lighter.settings import LighterSettings
    from posmon.exchange.lighter.signer import LighterSigner
    from posmon.exchange.lighter.venue import LighterVenue
    from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
    from posmon.sim.lighter import credentials as cred

    exchange = exchange or build_exchange(clock=trio_clock)
    sim = LighterSim(exchange, **{"clock": trio_clock, "tx_clock": trio_clock, **(sim_options or {})})
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)  # also runs the sim's background tasks
        table: dict[str, Any] = {
            "rest_url": rest_url,
            "ws_url": ws_url,
            "account_index": cred.DEFAULT_ACCOUNT_INDEX,
            "api_key_index": cred.DEFAULT_API_KEY_INDEX,
            "chain_id": cred.DEFAULT_CHAIN_ID,
            "api_private_key": cred.DEFAULT_API_PRIVATE_KEY,
            **(lighter_options or {}),
        }
        lighter = LighterSettings.from_config(table, {})
        signer = LighterSigner(
            url=rest_url,
            private_key=lighter.api_private_key,
            chain_id=lighter.chain_id,
            api_key_index=lighter.api_key_index,
            account_index=cred.DEFAULT_ACCOUNT_INDEX,
        )
        async with (
            LighterVenue.open(
                lighter,
                signer=signer,
                client_id_prefix=settings.daemon.client_id_prefix,
                clock=trio_clock,
                sign_in_thread=False,
            ) as venue,
            _daemon(settings, exchange, venue, notices=notices) as h,
        ):
            h.lighter = sim
            yield h
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _daemon(
    settings: Settings,
    exchange: SimExchange,
    venue: Any,
    *,
    notices: Any = None,
) -> AsyncIterator[Harness]:
    store = Store.open(settings.daemon.store, clock=trio_clock)
    if hasattr(store, "threaded"):
        # PostgreSQL under a virtual clock: a commit in a worker thread is invisible to ``settle`` (all tasks
        # blocked) and MockClock's autojump would move time during it; on trio's thread the steps stay exact.
        store.threaded = not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    metrics = Metrics()
    try:
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(
                lambda task_status: run_daemon(
                    settings,
                    venue,
                    store,
                    metrics=metrics,
                    clock=trio_clock,
                    notice_listeners=[notices] if notices is not None else (),
                    freeze_heap=False,
                    task_status=task_status,
                )
            )
            await settle()
            yield Harness(settings, exchange, venue, store, metrics, daemon)
            nursery.cancel_scope.cancel()
    finally:
        store.close()
