"""The hypercorn ``Config`` both venue simulators (Aster's and Lighter's) are served with on a loopback port."""

from __future__ import annotations

from hypercorn.config import Config


def hypercorn_config(host: str, port: int, *, websocket_ping_interval: float | None) -> Config:
    """Bind ``host:port`` (an IPv6 host in brackets), quiet logs, a short graceful stop; ``None``: no ws pings."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.websocket_ping_interval = websocket_ping_interval
    config.keep_alive_timeout = 75.0  # like the venue's load balancers: clients reuse connections
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.loglevel = "WARNING"
    return config
