"""``posmon run`` with ``[daemon] venues``: several venue accounts in one process, as an operator starts it.

With no URLs both protocol simulators start in-process; a venue that does not answer holds up only its own
account (the other is watched and the process keeps running, saying which venue it is still trying).
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from posmon.config import ConfigError, load_settings
from posmon.sim.aster import credentials as aster_cred
from posmon.sim.lighter import credentials as cred


def config(tmp_path: Path, lighter: str = '[lighter]\nrest_url = ""\nws_url = ""\n') -> Path:
    """Both venues' simulators embedded (every URL empty: an unset one means the venue's real endpoint) unless
    ``lighter`` says otherwise; the API on a free port."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[daemon]
venues = ["aster", "lighter"]
store = "{tmp_path / "posmon.sqlite"}"
request_timeout_seconds = 0.5

[api]
port = 0

[sim]
trader_enabled = false

[aster]
rest_url = ""
ws_url = ""
auth = "v3"
signer_private_key = "{aster_cred.DEFAULT_SIGNER_PRIVATE_KEY}"
user = "{aster_cred.DEFAULT_USER_ADDRESS}"

{lighter}
"""
    )
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_until(nursery: trio.Nursery, path: Path, *markers: bytes, cwd: Path) -> bytes:
    """``posmon run`` until every marker has appeared on stderr, then SIGTERM; its stderr so far."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
    seen = bytearray()
    with trio.fail_after(90):
        proc = await nursery.start(
            functools.partial(
                trio.run_process,
                [sys.executable, "-m", "posmon.cli", "--config", str(path), "run"],
                env=env,
                cwd=cwd,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        while not all(m in seen for m in markers):
            chunk = await proc.stderr.receive_some()
            assert chunk, seen.decode()
            seen.extend(chunk)
        proc.terminate()
        await proc.wait()
    assert proc.returncode == 0, seen.decode()
    return bytes(seen)


def test_venues_and_venue_together_are_one_configuration_error(tmp_path):
    path = config(tmp_path)
    path.write_text(path.read_text().replace("[daemon]\n", '[daemon]\nvenue = "aster"\n', 1))
    result = subprocess.run(
        [sys.executable, "-m", "posmon.cli", "--config", str(path), "run"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("POSMON_")},
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "daemon.venues" in line and "daemon.venue" in line and "Traceback" not in result.stderr


def test_venues_names_each_venue_once_and_keeps_venue_as_the_first(tmp_path):
    settings = load_settings(config(tmp_path), env={})
    assert (settings.daemon.venue_names, settings.daemon.venue) == (("aster", "lighter"), "aster")
    single = tmp_path / "single.toml"
    single.write_text('[daemon]\nvenue = "lighter"\n')
    assert load_settings(single, env={}).daemon.venue_names == ("lighter",)
    with pytest.raises(ConfigError, match=r"daemon\.venues"):  # the file's venue and the environment's venues
        load_settings(single, env={"POSMON_DAEMON_VENUES": "aster,lighter"})


async def test_run_with_two_venues_and_no_urls_starts_both_simulators(tmp_path, nursery):
    seen = await run_until(
        nursery,
        config(tmp_path),
        b"posmon watching aster",
        b"posmon watching lighter",
        b"posmon ready",
        cwd=tmp_path,
    )
    assert b"embedded Aster-protocol simulator" in seen and b"embedded Lighter-protocol simulator" in seen


async def test_an_unreachable_venue_holds_up_only_its_own_account(tmp_path, nursery):
    port = closed_port()
    extra = (
        f'[lighter]\nrest_url = "http://127.0.0.1:{port}"\nws_url = "ws://127.0.0.1:{port}/stream"\n'
        f"account_index = {cred.DEFAULT_ACCOUNT_INDEX}\napi_key_index = {cred.DEFAULT_API_KEY_INDEX}\n"
        f'chain_id = {cred.DEFAULT_CHAIN_ID}\napi_private_key = "{cred.DEFAULT_API_PRIVATE_KEY}"\n'
    )
    seen = await run_until(
        nursery,
        config(tmp_path, extra),
        b"posmon watching aster",
        b"the other venues keep running",
        cwd=tmp_path,
    )
    assert b"posmon ready" not in seen and b"posmon watching lighter" not in seen
