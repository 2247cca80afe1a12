"""``serve_aster_sim``: the simulator on a loopback port, served by hypercorn's trio worker.

Port 0 lets every test and demo run its own venue without coordinating ports; the real
port is read back from hypercorn and reported through ``task_status`` so the caller
knows the URLs before it sends anything.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from posmon.sim import serving
from posmon.sim.aster.app import create_app
from posmon.sim.aster.sim import AsterSim


def hypercorn_config(sim: AsterSim, host: str, port: int) -> Config:
    return serving.hypercorn_config(host, port, websocket_ping_interval=sim.ws.ping_interval)


async def serve_aster_sim(
    sim: AsterSim,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[tuple[str, str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``sim`` until cancelled; reports ``(rest_url, ws_url)``, e.g. ``("http://127.0.0.1:PORT", "ws://...")``."""
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, create_app(sim), hypercorn_config(sim, host, port),
                                                       mode="asgi"))
        rest_url = binds[0]
        task_status.started((rest_url, "ws://" + rest_url.removeprefix("http://")))
