"""Failures a user meets at start, over the CLI: ``posmon run`` as its own process with a temp config.

Each must end in one line naming what is wrong and an exit code (2 configuration, 3 exchange, 4 store), never a
traceback, and with nothing sent. The exchanges are the protocol simulators served by the test on loopback,
with scripted faults; read-only and full filesystems are real mounts in a private mount namespace
(``unshare -rm``), skipped where the kernel does not allow one.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import trio

from posmon.cli.exit_codes import ExitCode
from posmon.cli.run import _unwrap
from posmon.exchange.errors import AuthRejected, OutcomeUnknown, RateLimited
from posmon.exchange.venue import VenueTraits
from posmon.sim.aster import credentials as aster_cred
from posmon.sim.aster import serve_aster_sim
from posmon.sim.aster.sim import AsterSim
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.startup import CredentialsRejected, StartupFailure, VenueUnreachable, connect_venue
from posmon.store.schema import SCHEMA_VERSION
from posmon.store.store import Store
from tests.store.test_store_failures import corrupt_pages_behind_the_header, locked_by_another_process

EXIT_CONFIG, EXIT_UNREACHABLE = 2, 3


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(tmp_path: Path, *, store: Path | None = None, venue: str = "sim", **sections: dict[str, Any]) -> Path:
    daemon = {
        "venue": venue,
        "store": str(store or tmp_path / "posmon.sqlite"),
        "request_timeout_seconds": 0.5,
        **sections.pop("daemon", {}),
    }
    tables = {"daemon": daemon, "api": {"port": 0}, "sim": {"tick_seconds": 0.05}, **sections}
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()) for name, table in tables.items()
    )
    path = tmp_path / "posmon.toml"
    path.write_text(text)
    return path


async def run_posmon(config: Path, *args: str, wrap: tuple[str, ...] = (), limit: float = 90) -> tuple[int, str]:
    """Exit code and stderr of ``posmon --config CONFIG run ARGS``; no POSMON_* variable leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
    with trio.fail_after(limit):
        result = await trio.run_process(
            [*wrap, sys.executable, "-m", "posmon.cli", "--config", str(config), "run", *args],
            env=env,
            cwd=config.parent,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return result.returncode, result.stderr.decode()


def assert_one_line_failure(err: str, *needles: str) -> str:
    """No traceback, no exception group; the last line is posmon's own and names every needle."""
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("posmon: "), err
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    return last


def assert_nothing_started(err: str) -> None:
    assert "posmon watching" not in err and "control API listening" not in err, err


# --- the exchange: rejected credentials, outages ---------------------------------------------------------------


async def serve_aster(nursery: trio.Nursery) -> tuple[AsterSim, str, str]:
    exchange = SimExchange(rules_for(["BTCUSDT"]))
    exchange.set_mark("BTCUSDT", D("45000"))
    sim = AsterSim(exchange)
    rest, ws = await nursery.start(serve_aster_sim, sim)
    return sim, rest, ws


def aster_table(rest: str, ws: str, **over: Any) -> dict[str, Any]:
    return {
        "rest_url": rest,
        "ws_url": ws,
        "auth": "v1",
        "api_key": aster_cred.DEFAULT_API_KEY,
        "api_secret": aster_cred.DEFAULT_API_SECRET,
        "symbols": ["BTCUSDT"],
        **over,
    }


def only_reads(sim: AsterSim) -> None:
    sent = {k: n for k, n in sim.counters.requests.items() if not k.startswith("GET ")}
    assert sent == {}, f"posmon sent {sent}"


async def test_aster_rejecting_the_api_key_is_one_line_naming_the_settings_and_exit_3(tmp_path, nursery):
    sim, rest, ws = await serve_aster(nursery)
    config = write_config(tmp_path, venue="aster", aster=aster_table(rest, ws, api_key="not-a-key-of-this-account"))
    code, err = await run_posmon(config)
    assert code == EXIT_UNREACHABLE, err
    assert_one_line_failure(
        err, "aster rejected the credentials", "-2015", "[aster] api_key / api_secret", "POSMON_ASTER_API_KEY"
    )
    assert "retrying" not in err  # a refused key is not retried
    assert_nothing_started(err)
    only_reads(sim)


async def test_lighter_not_finding_the_account_is_one_line_naming_the_settings_and_exit_3(tmp_path, nursery):
    if importlib.util.find_spec("lighter") is None:
        pytest.skip("lighter-sdk (its Go signer) is not installed")
    from posmon.sim.lighter import credentials as cred
    from posmon.sim.lighter.session import start_embedded_lighter

    sim, rest, ws = await start_embedded_lighter(nursery)
    config = write_config(
        tmp_path,
        venue="lighter",
        lighter={
            "rest_url": rest,
            "ws_url": ws,
            "account_index": cred.DEFAULT_ACCOUNT_INDEX + 1,
            "api_key_index": cred.DEFAULT_API_KEY_INDEX,
            "api_private_key": cred.DEFAULT_API_PRIVATE_KEY,
            "chain_id": cred.DEFAULT_CHAIN_ID,
        },
    )
    code, err = await run_posmon(config)
    assert code == EXIT_UNREACHABLE, err
    assert_one_line_failure(
        err, "lighter rejected the credentials", "21100", "[lighter] account_index", "POSMON_LIGHTER_ACCOUNT_INDEX"
    )
    assert sim.counters.txs_accepted == 0 and sim.counters.txs_rejected == 0


def _fail(sim: AsterSim) -> None:
    sim.fail_next("/fapi/v1/time", n=10_000)


def _rate_limit(sim: AsterSim) -> None:
    sim.reject_next("/fapi/v1/time", status=429, n=10_000, retry_after=0.2)


def _ban(sim: AsterSim) -> None:
    sim.reject_next("/fapi/v1/time", status=418, n=10_000, retry_after=600)


def _hang(sim: AsterSim) -> None:
    sim.stall_next("/fapi/v1/time", n=10_000)


@pytest.mark.parametrize(
    ("fault", "last_error"),
    [
        (_fail, "execution status unknown"),
        (_rate_limit, "(code -1003)"),
        (_ban, "banned"),
        (_hang, "no answer within"),
    ],
    ids=["5xx", "429", "418-banned", "hanging"],
)
async def test_an_exchange_failing_at_start_is_retried_with_a_line_per_try_then_exit_3(
    tmp_path, nursery, fault: Callable[[AsterSim], None], last_error: str
):
    sim, rest, ws = await serve_aster(nursery)
    fault(sim)
    config = write_config(tmp_path, venue="aster", aster=aster_table(rest, ws))
    code, err = await run_posmon(config, "--connect-timeout", "3")
    assert code == EXIT_UNREACHABLE, err
    if fault is _ban:  # asking again inside a ban lengthens it: no second try
        assert_one_line_failure(err, "aster unreachable: connecting refused for 600 s (Retry-After)", last_error)
        assert sim.counters.requests["GET /fapi/v1/time"] == 1
    else:
        assert_one_line_failure(
            err, "aster unreachable: connecting failed", "over 3 s", last_error, "--connect-timeout"
        )
        assert "connecting failed (try 1)" in err  # a log line per try, the wait it takes
    assert_nothing_started(err)
    only_reads(sim)
    assert sim.counters.requests["GET /fapi/v1/time"] >= 1


async def _garbage_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Answers every connection with HTTP 200 and a body that is not JSON."""

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n<garbage>")

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(answer, listeners)


async def test_an_exchange_answering_garbage_is_retried_then_exit_3(tmp_path, nursery):
    port = await nursery.start(_garbage_server)
    config = write_config(
        tmp_path, venue="aster", aster=aster_table(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    )
    code, err = await run_posmon(config, "--connect-timeout", "1")
    assert code == EXIT_UNREACHABLE, err
    assert_one_line_failure(err, "aster unreachable", "unreadable body", "<garbage>")
    assert_nothing_started(err)


async def test_an_unreachable_exchange_is_retried_then_exit_3(tmp_path):
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(
        tmp_path, venue="aster", aster=aster_table(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    )
    code, err = await run_posmon(config, "--connect-timeout", "1")
    assert code == EXIT_UNREACHABLE, err
    assert_one_line_failure(err, "aster unreachable", "connection failed")
    assert err.count("retrying in") >= 1


async def test_an_exchange_that_recovers_within_the_connect_timeout_is_traded(tmp_path, nursery):
    sim, rest, ws = await serve_aster(nursery)
    sim.fail_next("/fapi/v1/time", n=2)
    config = write_config(tmp_path, venue="aster", aster=aster_table(rest, ws))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSMON_")}
    seen = bytearray()
    with trio.fail_after(60):
        proc = await nursery.start(
            functools.partial(
                trio.run_process,
                [sys.executable, "-m", "posmon.cli", "--config", str(config), "run"],
                env=env,
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        while b"posmon watching" not in seen:
            chunk = await proc.stderr.receive_some()
            assert chunk, seen.decode()
            seen.extend(chunk)
        proc.terminate()
        await proc.wait()
    assert seen.count(b"connecting failed (try") == 2 and proc.returncode == 0


# --- the store ----------------------------------------------------------------------------------------------------


@functools.cache
def can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=16k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=16k tmpfs /tmp",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def in_mount_namespace(script: str) -> tuple[str, ...]:
    """Run the command after ``script`` (mounts) in a private user+mount namespace: real EROFS / ENOSPC."""
    if not can_mount():
        pytest.skip("no private mount namespace here (unshare -rm)")
    return ("unshare", "-rm", "sh", "-c", script + ' && exec "$@"', "sh")


async def test_a_store_on_a_read_only_filesystem_is_refused_with_exit_4(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    Store.open(state / "posmon.sqlite").close()
    config = write_config(tmp_path, store=state / "posmon.sqlite")
    wrap = in_mount_namespace(f"mount --bind {state} {state} && mount -o remount,ro,bind {state}")
    code, err = await run_posmon(config, wrap=wrap)
    assert code == ExitCode.STORE, err
    assert_one_line_failure(err, f"store {state / 'posmon.sqlite'}", "Read-only file system")
    assert_nothing_started(err)


async def test_a_store_on_a_full_filesystem_is_refused_with_exit_4(tmp_path):
    state = tmp_path / "tiny"
    state.mkdir()
    config = write_config(tmp_path, store=state / "posmon.sqlite")
    code, err = await run_posmon(config, wrap=in_mount_namespace(f"mount -t tmpfs -o size=64k tmpfs {state}"))
    assert code == ExitCode.STORE, err
    assert_one_line_failure(err, f"store {state / 'posmon.sqlite'}", "the disk is full")
    assert_nothing_started(err)


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"posmon? no: a text file where the store should be\n" * 50)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_foreign, "is not a posmon store"),
        (corrupt_pages_behind_the_header, "is corrupt (PRAGMA quick_check"),
        (_newer, f"schema version {SCHEMA_VERSION + 1} is newer than this posmon supports"),
        (_not_sqlite, "is corrupt or not an SQLite database"),
    ],
    ids=["foreign-same-user-version", "pages-corrupted-behind-the-header", "newer", "not-sqlite"],
)
async def test_an_unusable_store_file_is_refused_with_exit_4(tmp_path, make: Callable[[Path], None], says: str):
    path = tmp_path / "posmon.sqlite"
    make(path)
    code, err = await run_posmon(write_config(tmp_path, store=path))
    assert code == ExitCode.STORE, err
    assert_one_line_failure(err, f"store {path}", says)
    assert_nothing_started(err)


async def test_a_store_locked_by_another_process_is_named_then_exit_4_not_a_silent_hang(tmp_path):
    path = tmp_path / "posmon.sqlite"
    Store.open(path).close()
    config = write_config(tmp_path, store=path)
    with locked_by_another_process(path):
        code, err = await run_posmon(config)
    assert code == ExitCode.STORE, err
    assert f"store {path} is locked by another process; waiting up to" in err  # said at once, not after the wait
    assert_one_line_failure(err, f"store {path} is locked by another process")
    assert_nothing_started(err)


async def test_a_store_held_by_another_posmon_is_exit_4(tmp_path):
    from posmon.ops.lock import hold_store_lock

    path = tmp_path / "posmon.sqlite"
    with hold_store_lock(path):
        code, err = await run_posmon(write_config(tmp_path, store=path))
    assert code == ExitCode.STORE, err
    assert_one_line_failure(err, "held by another process", "not starting a second daemon")


async def test_a_mistyped_recording_is_a_configuration_error_before_anything_starts(tmp_path):
    path = tmp_path / "posmon.sqlite"
    code, err = await run_posmon(write_config(tmp_path, store=path, sim={"recording": "XRP_USDT-5m-futures"}))
    assert code == EXIT_CONFIG, err
    assert_one_line_failure(err, "sim.recording", "'XRP_USDT-5m-futures'", "'XRP_USDT_USDT-5m-futures.json'")
    assert not path.exists()  # checked before the store is even created


# --- exception groups ---------------------------------------------------------------------------------------------


def test_an_expected_failure_wrapped_in_nested_groups_with_cancellations_is_unwrapped():
    failure = CredentialsRejected("aster rejected the credentials")
    cancelled = trio.Cancelled._create()
    group = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [cancelled, failure]), cancelled])
    assert _unwrap(group) is failure


def test_a_group_holding_an_unexpected_error_is_not_hidden():
    group = BaseExceptionGroup("g", [StartupFailure("x"), KeyError("bug")])
    assert _unwrap(group) is group


# --- connect_venue: the daemon's rule loading with retries (MockClock) --------------------------------------------


class FlakyVenue:
    """``load_rules`` fails with the queued outcomes (an exception, or "hang"), then answers."""

    name = "aster"
    traits = VenueTraits()

    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def load_rules(self) -> dict[str, Any]:
        self.calls += 1
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome == "hang":
                await trio.sleep_forever()
            assert isinstance(outcome, BaseException)
            raise outcome
        return {"BTCUSDT": "rules"}


async def test_connect_venue_retries_transient_failures_with_backoff_and_a_line_per_try(autojump_clock, caplog):

    venue = FlakyVenue(OutcomeUnknown("HTTP 503"), "hang", RateLimited("slow down", retry_after=7.0))
    start = trio.current_time()
    rules = await connect_venue(venue, give_up_after=60, log=logging.getLogger("t"), per_try=5)
    assert rules == {"BTCUSDT": "rules"} and venue.calls == 4
    tries = [r.getMessage() for r in caplog.records if "loading the trading rules failed" in r.getMessage()]
    assert [t.split("(try ")[1][0] for t in tries] == ["1", "2", "3"]
    assert "no answer within 5 s" in tries[1] and "retrying in 7.0 s" in tries[2]  # Retry-After honoured
    assert trio.current_time() - start == pytest.approx(0.5 + 5 + 1.0 + 7.0)


async def test_connect_venue_gives_up_after_the_configured_time(autojump_clock):

    venue = FlakyVenue(*[OutcomeUnknown("HTTP 502") for _ in range(100)])
    start = trio.current_time()
    with pytest.raises(
        VenueUnreachable,
        match=r"aster unreachable: loading the trading rules failed \d+ time\(s\) "
        r"over 30 s, last: HTTP 502",
    ):
        await connect_venue(venue, give_up_after=30, log=logging.getLogger("t"))
    assert trio.current_time() - start == pytest.approx(30)
    assert VenueUnreachable.exit_code == EXIT_UNREACHABLE


async def test_connect_venue_does_not_retry_rejected_credentials(autojump_clock):

    venue = FlakyVenue(AuthRejected("API-key format invalid.", code=-2014, request="GET /fapi/v1/exchangeInfo"))
    with pytest.raises(CredentialsRejected, match=r"aster rejected the credentials: .*-2014.*\[aster\] api_key"):
        await connect_venue(venue, give_up_after=60, log=logging.getLogger("t"))
    assert venue.calls == 1 and CredentialsRejected.exit_code == EXIT_UNREACHABLE


async def test_a_missing_lighter_signer_is_a_configuration_line_not_a_retry(autojump_clock):
    from posmon.exchange.lighter.signer import SignerUnavailable
    from posmon.startup import retry_startup

    async def opening() -> None:
        raise SignerUnavailable("lighter-sdk is not installed: pip install --no-deps lighter-sdk==1.1.8")

    with pytest.raises(StartupFailure, match="configuration error: lighter: lighter-sdk is not installed") as info:
        await retry_startup(opening, venue="lighter", what="connecting", give_up_after=60, log=logging.getLogger("t"))
    assert info.value.exit_code == EXIT_CONFIG
