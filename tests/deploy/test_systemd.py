"""deploy/systemd/posmon.service: ``systemd-analyze verify`` where it is installed, and the settings posmon's
behaviour relies on (readiness by sd_notify, restarts on failure within a budget, a hardened dedicated user)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from posmon.cli.exit_codes import ExitCode
from posmon.config import load_settings
from tests.deploy.files import DEPLOY, ROOT, parse_unit

UNIT_PATH = DEPLOY / "systemd" / "posmon.service"
UNIT = parse_unit(UNIT_PATH.read_text())
SERVICE = UNIT["Service"]


def one(section: str, key: str) -> str:
    values = UNIT[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * units[value[len(number) :]]


def posmon_executable() -> Path:
    """An existing ``posmon`` to stand in for the unit's (verify checks that ExecStart's binary exists)."""
    beside = Path(sys.executable).parent / "posmon"
    found = beside if beside.exists() else shutil.which("posmon")
    if found is None:
        pytest.skip("no posmon executable installed to stand in for ExecStart")
    return Path(found)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT_PATH.read_text()
    exec_start = one("Service", "ExecStart").split()[0]
    unit = tmp_path / "posmon.service"
    unit.write_text(text.replace(exec_start, str(posmon_executable())))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "posmon.service" in line]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr


def test_verify_would_catch_a_mistyped_key(tmp_path):
    """The check above is not vacuous: a misspelt key makes verify name the unit."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    exec_start = one("Service", "ExecStart").split()[0]
    text = UNIT_PATH.read_text().replace(exec_start, str(posmon_executable()))
    unit = tmp_path / "posmon.service"
    unit.write_text(text.replace("WatchdogSec=", "WatchdgSec="))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert "WatchdgSec" in done.stdout + done.stderr


def test_the_unit_waits_for_readiness_and_restarts_on_failure_within_a_budget():
    assert one("Service", "Type") == "notify"
    assert one("Service", "NotifyAccess") == "main"  # posmon's own process sends READY=1 (posmon/sdnotify.py)
    assert one("Service", "Restart") == "on-failure"
    assert int(one("Unit", "StartLimitBurst")) >= 2 and seconds(one("Unit", "StartLimitIntervalSec")) > 0
    assert seconds(one("Service", "WatchdogSec")) >= 10  # pinged every half of it from the event loop
    # Start-up may wait for an unreachable venue this long before exit 3: systemd must not kill it first.
    assert (
        seconds(one("Service", "TimeoutStartSec"))
        > load_settings(ROOT / "config.toml", env={}).daemon.startup_timeout_seconds
    )
    prevented = {int(code) for code in one("Service", "RestartPreventExitStatus").split()}
    assert prevented == {ExitCode.CONFIG, ExitCode.STORE}  # restarting cures neither
    assert one("Service", "KillSignal") == "SIGTERM"
    command = one("Service", "ExecStart").split()
    assert PurePosixPath(command[0]).name == "posmon" and command[1] == "run"


def test_the_store_lives_in_the_state_directory_of_a_dedicated_user():
    state = one("Service", "StateDirectory")
    store = [e for e in SERVICE.get("Environment", []) if e.startswith("POSMON_DAEMON_STORE=")]
    assert len(store) == 1
    assert PurePosixPath(store[0].partition("=")[2]).parent == PurePosixPath("/var/lib") / state
    assert one("Service", "User") not in ("root", "0")
    assert one("Service", "DynamicUser") == "yes" or one("Service", "User")


def test_the_unit_is_hardened():
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert one("Service", key) == value, key
    assert set(one("Service", "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    # The process_* metrics read /proc/stat; ProcSubset=pid would hide it and silently drop them.
    assert SERVICE.get("ProcSubset", ["all"]) != ["pid"]
