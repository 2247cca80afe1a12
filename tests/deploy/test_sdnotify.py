"""systemd's readiness protocol: a daemon on the simulator tells a real unix datagram socket ``STATUS=`` steps,
``READY=1`` once start-up is over, ``WATCHDOG=1`` every half of ``WATCHDOG_USEC`` and ``STOPPING=1`` on the way out.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import trio

from posmon.daemon import _announce_ready
from posmon.domain.orders import Side
from posmon.readiness import Readiness
from posmon.sdnotify import SdNotify, parse_address
from tests.harness import make_settings, running, settle


@dataclass
class Listener:
    """What systemd would receive: each datagram's ``KEY=value`` fields, with the trio time it was read."""

    sock: socket.socket
    got: list[tuple[float, list[str]]] = field(default_factory=list)

    async def run(self) -> None:
        tsock = trio.socket.from_stdlib_socket(self.sock)
        while True:
            data = await tsock.recv(4096)
            self.got.append((trio.current_time(), data.decode().split("\n")))

    def fields(self) -> list[str]:
        return [f for _, fs in self.got for f in fs]

    def times_of(self, wanted: str) -> list[float]:
        return [at for at, fs in self.got if wanted in fs]


@contextmanager
def datagram_socket(abstract: bool = False) -> Iterator[tuple[str, socket.socket]]:
    """A bound unix datagram socket and its ``NOTIFY_SOCKET`` value: a path in a temp dir, or an ``@`` name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory(prefix="pm-notify-") as tmp, sock:
        if abstract:
            name = f"@posmon-test-{os.getpid()}-{os.urandom(4).hex()}"
            sock.bind(b"\0" + name[1:].encode())
        else:
            name = os.path.join(tmp, "notify.sock")
            sock.bind(name)
        yield name, sock


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
async def test_daemon_reports_ready_pings_the_watchdog_and_says_stopping(
    tmp_path, autojump_clock, monkeypatch, abstract
):
    settings = make_settings(tmp_path)
    with datagram_socket(abstract) as (name, sock):
        monkeypatch.setenv("NOTIFY_SOCKET", name)
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # 2 s: a ping every second
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        listener = Listener(sock)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener.run)
            async with running(settings) as h:
                assert h.daemon.readiness.state == "ready"
                ready_at = listener.times_of("READY=1")
                assert len(ready_at) == 1
                await h.entry("BTCUSDT", Side.LONG, "1", "45000")  # the daemon works as usual meanwhile
                await trio.sleep(10.5)
                assert len(h.orders()) == 2  # its TP and SL rest
            await settle()
            nursery.cancel_scope.cancel()
    fields = listener.fields()
    statuses = [f for f in fields[: fields.index("READY=1")] if f.startswith("STATUS=")]
    assert statuses[:2] == ["STATUS=loading the venue's trading rules", "STATUS=starting the actors"]
    ready = listener.got[next(i for i, (_, fs) in enumerate(listener.got) if "READY=1" in fs)][1]
    assert ready == ["READY=1", "STATUS=watching sim (2 symbols), 0 positions"]
    pings = listener.times_of("WATCHDOG=1")
    assert len(pings) == 11  # at ready, then every second for 10.5 s
    assert [round(b - a, 6) for a, b in itertools.pairwise(pings)] == [1.0] * 10
    assert pings[0] >= ready_at[0]
    assert listener.got[-1][1] == ["STOPPING=1", "STATUS=stopping"]


async def test_without_a_watchdog_only_ready_and_stopping_are_sent(tmp_path, autojump_clock, monkeypatch):
    settings = make_settings(tmp_path)
    with datagram_socket() as (name, sock):
        monkeypatch.setenv("NOTIFY_SOCKET", name)
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        listener = Listener(sock)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener.run)
            async with running(settings):
                await trio.sleep(30)
            await settle()
            nursery.cancel_scope.cancel()
    fields = listener.fields()
    assert "WATCHDOG=1" not in fields
    assert fields.count("READY=1") == 1 and fields[-2:] == ["STOPPING=1", "STATUS=stopping"]


async def test_a_notify_socket_nobody_listens_on_does_not_stop_the_daemon(
    tmp_path, autojump_clock, monkeypatch, caplog
):
    settings = make_settings(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "1", "45000")
        await trio.sleep(5)
        assert h.daemon.readiness.state == "ready" and len(h.orders()) == 2
    warnings = [r for r in caplog.records if "systemd notification" in r.getMessage()]
    assert len(warnings) == 1  # said once, not once per ping


def test_notify_socket_values_are_parsed_like_libsystemd():
    assert parse_address("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_address("@posmon/notify") == b"\0posmon/notify"
    assert parse_address("relative/notify") is None
    assert parse_address("vsock:2:1234") is None
    assert parse_address("@") is None


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_pings_at_half_its_period_and_only_for_its_own_process(env, interval):
    notify = SdNotify.from_env({"NOTIFY_SOCKET": "/run/notify", **env}, pid=4242)
    assert notify is not None and notify.watchdog_interval == interval


def test_no_notify_socket_means_no_notifier(caplog):
    assert SdNotify.from_env({}) is None
    assert SdNotify.from_env({"NOTIFY_SOCKET": "notify.sock"}) is None
    assert "not an absolute path" in caplog.text


@dataclass
class _Actor:
    ready: trio.Event = field(default_factory=trio.Event)


@dataclass
class _Directory:
    items: list[_Actor]

    def actors(self) -> list[_Actor]:
        return list(self.items)

    def keys(self) -> list[int]:
        return list(range(len(self.items)))


async def test_readiness_waits_for_every_position_actor_including_a_restarted_one(autojump_clock):
    slow, crashed, restarted = _Actor(), _Actor(), _Actor()
    directory = _Directory([_Actor(), slow, crashed])
    directory.items[0].ready.set()
    readiness = Readiness()
    seen: list[tuple[str, str]] = []
    readiness.subscribe(lambda r: seen.append((r.state, r.detail)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_announce_ready, directory, readiness, "watching sim")
        await trio.sleep(5)
        slow.ready.set()
        await trio.sleep(5)
        assert readiness.state == "starting"
        directory.items[2] = restarted  # the supervisor replaced the incarnation that never got ready
        await trio.sleep(5)
        assert readiness.state == "starting"
        restarted.ready.set()
        await trio.sleep(1)
    assert readiness.state == "ready"
    assert seen[0] == ("starting", "reconciling positions: 2 of 3 not done yet")
    assert ("starting", "reconciling positions: 1 of 3 not done yet") in seen
    assert seen[-1] == ("ready", "watching sim, 3 positions")


async def test_posmon_run_under_a_service_manager_notifies_and_stops_on_sigterm(tmp_path):
    """The real command, as systemd starts it: the environment is read by ``posmon run`` itself."""
    with datagram_socket() as (name, sock):
        env = {
            **os.environ,
            "NOTIFY_SOCKET": name,
            "WATCHDOG_USEC": "200000",  # a ping every 0.1 s
            "POSMON_DAEMON_VENUE": "sim",
            "POSMON_DAEMON_STORE": str(tmp_path / "run.sqlite"),
            "POSMON_API_PORT": "0",
        }
        env.pop("WATCHDOG_PID", None)
        tsock = trio.socket.from_stdlib_socket(sock)
        got: list[str] = []

        async def until(field: str, count: int = 1) -> None:
            while got.count(field) < count:
                got.extend((await tsock.recv(4096)).decode().split("\n"))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                proc = await nursery.start(
                    functools.partial(
                        trio.run_process,
                        [sys.executable, "-m", "posmon.cli", "run"],
                        env=env,
                        cwd=tmp_path,
                        stderr=subprocess.DEVNULL,
                        check=False,
                    )
                )
                await until("READY=1")
                await until("WATCHDOG=1", 3)
                proc.send_signal(signal.SIGTERM)
                await until("STOPPING=1")
    assert proc.returncode == 0
    assert got[0] == "STATUS=loading the venue's trading rules"
    assert got.index("READY=1") < got.index("WATCHDOG=1") < got.index("STOPPING=1")
    assert got.count("READY=1") == 1
