"""``posmon status --watch``: redraws until Ctrl-C (exit 0), and rides out a daemon that is briefly unreachable.

Waiting is injected: ``sleep`` records how long the command would have waited and plays Ctrl-C when told to.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
import trio

from posmon.api import create_app
from posmon.api.client import ApiClient
from posmon.cli.commands import run_ops_command
from posmon.cli.exit_codes import ExitCode
from posmon.cli.parser import build_parser
from tests.api.test_api_fakes import NOW, FakeControl, served

NO_TOKEN = {"POSMON_API_TOKEN": ""}


class Sleeps:
    """Stands in for ``time.sleep``: records each wait; the ``ctrl_c_at``-th one is interrupted by Ctrl-C."""

    def __init__(self, ctrl_c_at: int) -> None:
        self.waits: list[float] = []
        self.ctrl_c_at = ctrl_c_at

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) == self.ctrl_c_at:
            raise KeyboardInterrupt


def parse(*argv: str):
    return build_parser().parse_args(["status", *argv])


async def test_watch_redraws_the_table_every_n_seconds_until_ctrl_c_and_exits_0(capsys):
    control = FakeControl()
    sleeps = Sleeps(ctrl_c_at=2)
    async with served(create_app(control, metrics_render=None, token=None)) as url:
        args = parse("--api", url, "--watch", "5")
        code = await trio.to_thread.run_sync(lambda: run_ops_command(args, NO_TOKEN, sleep=sleeps, clock=lambda: NOW))
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert control.calls == [("status", ()), ("status", ())]  # two refreshes, then Ctrl-C during the wait
    assert sleeps.waits == [5.0, 5.0]
    assert out.count("posmon status at 2023-11-14 22:13:20 UTC, every 5 s (Ctrl-C to stop)") == 2
    assert out.count("posmon on aster: running") == 2 and "BTCUSDT" in out


def test_watch_defaults_to_2_seconds_and_refuses_nonsense(capsys):
    assert parse("--watch").watch == 2.0 and parse().watch is None
    with pytest.raises(SystemExit) as refused:
        parse("--watch", "0")
    assert refused.value.code == 2 and "expected seconds" in capsys.readouterr().err


def test_watch_shows_an_unreachable_daemon_and_keeps_trying(capsys):
    answers = iter(["down", "up", "down", "up"])

    def daemon(request: httpx.Request) -> httpx.Response:
        if next(answers) == "down":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"running": True, "venue": "sim", "started_at": NOW, "tranches": []})

    def client(target, timeout):
        return ApiClient(target.base_url, target.token, timeout=timeout, transport=httpx.MockTransport(daemon))

    sleeps = Sleeps(ctrl_c_at=4)
    code = run_ops_command(
        parse("--api", "http://127.0.0.1:9", "--watch", "1"), NO_TOKEN, client=client, sleep=sleeps, clock=lambda: NOW
    )
    out = capsys.readouterr().out
    assert code == ExitCode.OK and len(sleeps.waits) == 4
    screens = out.split("posmon status at ")[1:]
    assert ["cannot reach the posmon daemon" in s for s in screens] == [True, False, True, False]
    assert all("posmon on sim: running" in s for s in screens[1::2])
    assert "retrying every 1 s" in screens[0]


def test_watch_json_prints_one_document_per_refresh_and_a_wrong_token_ends_it(capsys):
    calls = []

    def daemon(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 3:
            return httpx.Response(401, json={"error": "missing or wrong bearer token", "field": None})
        return httpx.Response(200, json={"running": True, "venue": "sim", "started_at": NOW, "tranches": []})

    def client(target, timeout):
        return ApiClient(target.base_url, target.token, timeout=timeout, transport=httpx.MockTransport(daemon))

    code = run_ops_command(
        parse("--api", "http://127.0.0.1:9", "--watch", "--json"), NO_TOKEN, client=client, sleep=Sleeps(99)
    )
    captured = capsys.readouterr()
    assert code == ExitCode.CONFIG and "HTTP 401" in captured.err
    assert [json.loads(line)["venue"] for line in captured.out.splitlines()] == ["sim", "sim"]


async def test_ctrl_c_ends_a_real_watch_with_exit_0_and_no_traceback():
    """The real signal path: SIGINT may land anywhere (in the request, in the wait); the answer is always exit 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    env = {**os.environ, "POSMON_API_TOKEN": ""}
    argv = [sys.executable, "-m", "posmon.cli", "status", "--api", f"http://127.0.0.1:{closed}", "--watch", "0.1"]
    seen = bytearray()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(
                functools.partial(
                    trio.run_process, argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False
                )
            )
            while seen.count(b"cannot reach the posmon daemon") < 2:  # it survived one failed refresh
                seen.extend(await proc.stdout.receive_some())
            proc.send_signal(signal.SIGINT)
            err = bytearray()
            async for chunk in proc.stderr:
                err.extend(chunk)
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
