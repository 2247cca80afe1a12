"""Serving a protocol simulator on loopback: the part the Aster- and Lighter-protocol simulators share.

``ProtocolSim`` is what a simulator is beside its venue's rules: the ``SimExchange`` it fronts, the
server clock, the counters every request and websocket bumps, the websocket connections it can drop
all at once, its ASGI app and background tasks. ``serve`` runs one on hypercorn's trio worker: port 0
lets every test and demo run its own venue without coordinating ports; the real port is read back from
hypercorn and reported through ``task_status``, so the caller knows the URLs before it sends anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from posmon.sim.counters import ServerCounters

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework
    from starlette.applications import Starlette

    from posmon.sim.exchange import SimExchange

CLOSE_GOING_AWAY = 1001


class Droppable(Protocol):
    """A websocket connection the server can close (with a websocket close code)."""

    def drop(self, code: int) -> None: ...


class ProtocolSim:
    """One account of a simulated venue behind its protocol; subclasses add the venue's rules and app."""

    ws_path: ClassVar[str] = ""  # the websocket's path, appended to the ``ws://host:port`` that ``serve`` reports
    counters: ServerCounters

    def __init__(self, exchange: SimExchange, counters: ServerCounters, clock: Callable[[], float] | None) -> None:
        self.exchange = exchange
        self.clock: Callable[[], float] = clock if clock is not None else exchange.clock
        self.counters = counters
        self._connections: set[Droppable] = set()

    def now(self) -> float:
        """Server time, epoch seconds."""
        return self.clock()

    def now_ms(self) -> int:
        return round(self.clock() * 1000)

    @property
    def websocket_ping_interval(self) -> float | None:
        """Seconds between the websocket-level pings hypercorn sends; None: never (a venue pinging in JSON)."""
        return None

    def create_app(self) -> Starlette:
        """The venue's REST routes and websockets."""
        raise NotImplementedError

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The simulator's background tasks, run while it is served; none by default."""
        task_status.started()

    # ---- websocket connections ----------------------------------------------------------------------------------

    def attach(self, connection: Droppable) -> None:
        self._connections.add(connection)
        self.counters.ws_opened += 1
        self.counters.ws_open = len(self._connections)

    def detach(self, connection: Droppable) -> None:
        self._connections.discard(connection)
        self.counters.ws_open = len(self._connections)

    def drop_websockets(self, code: int = CLOSE_GOING_AWAY) -> int:
        """Close every websocket connection now (clients must reconnect); returns how many."""
        connections = list(self._connections)
        for connection in connections:
            connection.drop(code)
        return len(connections)


def hypercorn_config(sim: ProtocolSim, host: str, port: int) -> Config:
    """Bind ``host:port`` (an IPv6 host in brackets), quiet logs, a short graceful stop, the sim's ws pings."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.websocket_ping_interval = sim.websocket_ping_interval
    config.keep_alive_timeout = 75.0  # like the venue's load balancers: clients reuse connections
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.loglevel = "WARNING"
    return config


async def serve(
    sim: ProtocolSim,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[tuple[str, str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``sim`` and run its background tasks until cancelled; reports ``(rest_url, ws_url)``, e.g.
    ``("http://127.0.0.1:PORT", "ws://127.0.0.1:PORT" + sim.ws_path)``."""
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        binds: list[str] = await nursery.start(partial(hypercorn_serve, _asgi(sim.create_app()),
                                                       hypercorn_config(sim, host, port), mode="asgi"))  # fmt: skip
        rest_url = binds[0]
        task_status.started((rest_url, "ws://" + rest_url.removeprefix("http://") + sim.ws_path))


def _asgi(app: Starlette) -> ASGIFramework:
    """The same ASGI 3 callable as hypercorn types it (TypedDict scopes where starlette has MutableMappings)."""
    return cast("ASGIFramework", app)
