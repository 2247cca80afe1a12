"""``serve_lighter_sim``: the simulator on a loopback port (hypercorn's trio worker), with its background tasks.

Port 0 lets every test run its own venue; the real port is read back from hypercorn and
reported through ``task_status``. The Lighter Go signer replaces the URL path, so the
simulator serves at the host root.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from posmon.sim import serving
from posmon.sim.lighter.app import create_app
from posmon.sim.lighter.sim import LighterSim


def hypercorn_config(host: str, port: int) -> Config:
    # Lighter pings in JSON ({"type":"ping"}), see streams.py: no websocket-level pings.
    return serving.hypercorn_config(host, port, websocket_ping_interval=None)


async def serve_lighter_sim(
    sim: LighterSim,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[tuple[str, str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``sim`` until cancelled; reports ``(rest_url, ws_url)``: ``("http://127.0.0.1:P", "ws://127.0.0.1:P/stream")``."""
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        binds: list[str] = await nursery.start(partial(serve, create_app(sim), hypercorn_config(host, port),
                                                       mode="asgi"))  # fmt: skip
        rest_url = binds[0]
        task_status.started((rest_url, "ws://" + rest_url.removeprefix("http://") + "/stream"))
