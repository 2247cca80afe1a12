"""The ``posmon`` command as an operator uses it: bad config, run + signal, demo."""

import functools
import os
import signal
import subprocess
import sys

import trio

from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.config import load_settings
from posmon.store.store import Store


def test_bad_config_stops_startup_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[risk]\ntp_pct = "lots"\n')
    assert main(["--config", str(bad), "run"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "risk.tp_pct" in err and "'lots'" in err


def test_bad_environment_override_stops_startup(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSMON_RISK_SL_PCT", "150")
    monkeypatch.setenv("POSMON_DAEMON_STORE", str(tmp_path / "x.sqlite"))
    assert main(["run"]) == ExitCode.CONFIG
    assert "POSMON_RISK_SL_PCT" in capsys.readouterr().err
    assert not (tmp_path / "x.sqlite").exists()  # nothing started


async def _read_until(stream: trio.abc.ReceiveStream, marker: bytes, seen: bytearray) -> None:
    while marker not in seen:
        chunk = await stream.receive_some()
        if not chunk:
            raise AssertionError(f"process ended before {marker!r}; output:\n{seen.decode()}")
        seen.extend(chunk)


async def test_run_protects_positions_and_stops_cleanly_on_sigterm(tmp_path):
    store_path = tmp_path / "run.sqlite"
    env = {
        **os.environ,
        "POSMON_DAEMON_STORE": str(store_path),
        "POSMON_SIM_TICK_SECONDS": "0.05",
        "POSMON_SIM_TRADER_INTERVAL_SECONDS": "0.1",
        "POSMON_API_PORT": "0",
    }  # any free port: runs may overlap
    seen = bytearray()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [sys.executable, "-m", "posmon.cli", "run"],
                    env=env,
                    stderr=subprocess.PIPE,
                    check=False,
                )
            )
            await _read_until(proc.stderr, b": tranche 1 ", seen)  # another program's entry got tranche 1
            proc.send_signal(signal.SIGTERM)
            await _read_until(proc.stderr, b"posmon stopped", seen)
            async for chunk in proc.stderr:
                seen.extend(chunk)
    assert proc.returncode == 0, seen.decode()
    assert b"SIGTERM" in seen
    store = Store.open(store_path)
    try:
        assert store.open_tranches() or store.closed_tranches()
        assert all(e["data"]["reason"] != "SHUTDOWN" for e in store.events("close_started"))
    finally:
        store.close()


async def test_demo_prints_its_story_summary_and_where_its_store_is(tmp_path):
    demo = tmp_path / "demo"
    command = [sys.executable, "-m", "posmon.cli", "demo", "--fast", "--dir", str(demo)]
    result = await trio.run_process(command, capture_stdout=True, capture_stderr=True, cwd=tmp_path, check=False)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "dashboard: http://127.0.0.1:" in out and "=== posmon demo summary ===" in out
    assert f"history: posmon --config {demo.resolve() / 'config.toml'} history" in out
    # The printed command's configuration reads the demo's store.
    settings = load_settings(demo / "config.toml", env={})
    store = Store.open(settings.daemon.store)
    try:
        assert len(store.closed_tranches("aster")) == 7  # the summary's "over 7 closed tranches"
    finally:
        store.close()


def test_demo_refuses_a_directory_that_already_holds_a_store(tmp_path, capsys):
    (tmp_path / "demo.sqlite").write_bytes(b"")
    assert main(["demo", "--fast", "--dir", str(tmp_path)]) == ExitCode.STORE
    assert capsys.readouterr().err.splitlines() == [
        f"posmon: {tmp_path.resolve() / 'demo.sqlite'} already holds a demo's store; give the demo a new directory "
        "(--dir)"
    ]


def test_bad_aster_setting_stops_startup_before_any_network(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSMON_ASTER_AUTH", "v9")
    monkeypatch.setenv("POSMON_DAEMON_STORE", str(tmp_path / "x.sqlite"))
    assert main(["run"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "POSMON_ASTER_AUTH" in err and "'v9'" in err and "'v1', 'v3'" in err
