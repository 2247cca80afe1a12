"""``serve_api``: the control API on hypercorn's trio worker, inside the caller's nursery.

Hypercorn's access log is off: its lines would carry request details the daemon's own log already states
without headers, and a header-bearing format could one day print the bearer token. A bind failure (port in
use, address not local) is a configuration problem, so it is raised as ``ConfigError`` naming ``api.port``.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from posmon.api.settings import ApiSettings
from posmon.config import ConfigError

log = logging.getLogger(__name__)


def hypercorn_config(settings: ApiSettings) -> Config:
    config = Config()
    host = settings.host.strip("[]")
    config.bind = [f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 30.0
    config.include_server_header = False
    return config


async def serve_api(
    app: ASGIFramework,
    settings: ApiSettings,
    *,
    task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until cancelled; reports the base URL (e.g. ``http://127.0.0.1:8787``), or None if disabled."""
    if not settings.enabled:
        log.info("control API disabled ([api] enabled = false)")
        task_status.started(None)
        return
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    async with trio.open_nursery() as nursery:
        try:
            binds: list[str] = await nursery.start(partial(serve, app, hypercorn_config(settings), mode="asgi"))
        except OSError as exc:
            raise ConfigError(_bind_error(settings, exc)) from exc
        except BaseExceptionGroup as group:
            matched, _rest = group.split(OSError)
            if matched is None:
                raise
            raise ConfigError(_bind_error(settings, _first(matched))) from group
        url = binds[0]
        log.info("control API listening on %s (%s)", url,
                 "bearer token required" if settings.token else "no token: loopback only")
        task_status.started(url)


def _first(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _bind_error(settings: ApiSettings, exc: BaseException) -> str:
    return (f"api.port: cannot listen on {settings.host}:{settings.port} ({exc}); expected a free port on a local "
            f"address (set [api] host/port or POSMON_API_HOST/POSMON_API_PORT)")
