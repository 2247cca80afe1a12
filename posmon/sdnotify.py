"""systemd's notification protocol (``sd_notify``), so a ``Type=notify`` unit knows when posmon is ready.

systemd passes ``NOTIFY_SOCKET`` (a unix datagram socket: a path, or ``@name`` in the abstract namespace) and, with
``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). posmon sends ``STATUS=<step>`` as start-up proceeds,
``READY=1`` once ``Readiness`` says so, ``WATCHDOG=1`` every half watchdog period from then on, and ``STOPPING=1``
when the daemon's nursery is torn down. The pings come from the trio loop itself, so a loop stuck in a busy actor
stops them and systemd restarts the service (``Restart=on-failure``), within its start limit.

Sending never blocks and never fails the daemon: a datagram that cannot go (no listener, a full queue) is logged
once and dropped, as libsystemd's ``sd_notify`` returns an error the caller ignores. Without ``NOTIFY_SOCKET``
nothing here runs. No dependency on libsystemd: the protocol is one ``sendto`` of ``KEY=value`` lines.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from posmon.readiness import Readiness

__all__ = ["SdNotify", "parse_address"]

log = logging.getLogger(__name__)


def parse_address(value: str) -> str | bytes | None:
    """The ``sendto`` address of a ``NOTIFY_SOCKET`` value: an absolute path, or ``@name`` -> ``b"\\0name"``.

    None for anything else (a relative path, or ``vsock:`` addresses, which posmon does not speak).
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


@dataclass(slots=True)
class SdNotify:
    """One daemon's notifier: the socket address and, when systemd asked for one, the watchdog ping interval."""

    address: str | bytes
    watchdog_interval: float | None = None  # seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC
    _sock: socket.socket | None = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], pid: int | None = None) -> SdNotify | None:
        """The notifier systemd's environment asks for, or None (not started by systemd, or an unusable address).

        ``WATCHDOG_PID``, when set, must name this process (as ``sd_watchdog_enabled`` checks): a child started
        with its parent's environment must not ping for it.
        """
        raw = env.get("NOTIFY_SOCKET", "")
        if not raw:
            return None
        address = parse_address(raw)
        if address is None:
            log.warning("NOTIFY_SOCKET=%r is not an absolute path or @abstract name; not notifying systemd", raw)
            return None
        interval = None
        usec, wd_pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not wd_pid or wd_pid == str(os.getpid() if pid is None else pid)):
            interval = int(usec) / 2_000_000
        return cls(address, interval)

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False (logged once) when it could not go."""
        message = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("systemd notification %r not sent (%s); the daemon runs on regardless", fields[0], exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _on_change(self, readiness: Readiness) -> None:
        status = f"STATUS={readiness.detail}"
        if readiness.is_ready:
            self.send("READY=1", status)
        else:
            self.send(status)

    def follow(self, readiness: Readiness) -> None:
        """Send the current start-up step now and every later one (and ``READY=1``) as it happens."""
        readiness.subscribe(self._on_change)
        self._on_change(readiness)

    async def run(self, readiness: Readiness, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Once ready, ping the watchdog every ``watchdog_interval``; say ``STOPPING=1`` when cancelled."""
        try:
            task_status.started()
            await readiness.wait()
            if self.watchdog_interval is None:
                await trio.sleep_forever()
            while True:
                self.send("WATCHDOG=1")
                await trio.sleep(self.watchdog_interval)
        finally:
            self.send("STOPPING=1", "STATUS=stopping")
            self.close()
