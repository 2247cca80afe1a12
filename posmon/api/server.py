"""``serve_api``: the control API on hypercorn's trio worker, inside the caller's nursery.

Hypercorn's access log is off: its lines would carry request details the daemon's own log already states
without headers, and a header-bearing format could one day print the bearer token. A bind failure (port in
use, address not local) is a configuration problem, so it is raised as ``ConfigError`` naming ``api.port``.

A client that connects and then sends nothing (no headers, or a body that never comes) is dropped after
``READ_TIMEOUT_SECONDS`` of silence (the app itself answers 408 to a body not complete within its own limit),
so idle sockets cannot pile up.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework
from starlette.types import ASGIApp

from posmon.api.settings import ApiSettings
from posmon.config import ConfigError

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 30.0
READ_TIMEOUT_SECONDS = 30  # hypercorn applies it to every read, so it must not undercut the keep-alive


def hypercorn_config(settings: ApiSettings) -> Config:
    config = Config()
    host = settings.host.strip("[]")
    config.bind = [f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS
    config.read_timeout = READ_TIMEOUT_SECONDS
    config.include_server_header = False
    return config


async def serve_api(
    app: ASGIApp,
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
    listening = False
    try:
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(partial(serve, _asgi(app), hypercorn_config(settings), mode="asgi"))
            url = binds[0]
            log.info(
                "control API listening on %s (%s)",
                url,
                "bearer token required" if settings.token else "no token: loopback only",
            )
            listening = True
            task_status.started(url)
    except BaseException as exc:
        bind_error = None if listening else _bind_error(exc)
        if bind_error is None:
            raise
        raise ConfigError(
            f"api.port: cannot listen on {settings.host}:{settings.port} ({bind_error}); expected a "
            "free port on a local address (set [api] host/port or POSMON_API_HOST/POSMON_API_PORT)"
        ) from exc


def _asgi(app: ASGIApp) -> ASGIFramework:
    """The same ASGI 3 callable as hypercorn types it (TypedDict scopes where starlette has MutableMappings)."""
    return cast(ASGIFramework, app)


def _bind_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind a failure to start (hypercorn raises it inside nested exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None
