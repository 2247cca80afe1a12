"""The operator commands against a served API with a fake control: output, requests made, exit codes.

The CLI is synchronous (one request, then exit), so each command runs in a worker thread while the trio
loop serves the API on a loopback port.
"""

import dataclasses
import json
import socket
from decimal import Decimal

import pytest
import trio

from posmon.api import create_app
from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.domain.orders import Side
from tests.api.test_api_fakes import NOW, TOKEN, FakeControl, served, tranche


@pytest.fixture(autouse=True)
def _no_api_environment(monkeypatch):
    for name in ("POSMON_API_TOKEN", "POSMON_API_HOST", "POSMON_API_PORT", "POSMON_API_ENABLED", "POSMON_CONFIG"):
        monkeypatch.delenv(name, raising=False)


async def posmon(*argv: str) -> int:
    return await trio.to_thread.run_sync(main, list(argv))


def app_for(control, token=None):
    return create_app(control, metrics_render=None, token=token)


async def test_status_prints_a_table_of_tranches_and_stream_health(capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        code = await posmon("status", "--api", url)
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "posmon on aster: running" in out
    assert "stream price  up" in out and "last frame 0.4 s ago" in out and "stream user   DOWN" in out
    header = next(line for line in out.splitlines() if line.startswith("ID"))
    assert header.split() == [
        "ID",
        "SYMBOL",
        "SIDE",
        "QTY",
        "ENTRY",
        "MARK",
        "TP",
        "SL",
        "uPnL",
        "OPENED",
        "(UTC)",
        "REMAINING",
        "EXITS",
        "LIVE",
        "STATE",
    ]
    row = next(line for line in out.splitlines() if line.startswith("1 "))
    assert row.split()[:9] == ["1", "BTCUSDT", "LONG", "0.002", "60000.1", "60100", "63600.106", "58200.097", "0.1998"]
    assert "58m00s" in row and row.split()[-3:] == ["exchange", "yes", "open"]
    assert "not monitored (stopped by the operator): ETHUSDT" in out


async def test_status_shows_a_tranche_whose_exits_are_not_live_and_which_leg(capsys):
    unprotected = dataclasses.replace(tranche(4), exits_live=False, exit_orders={"tp": "LIVE", "sl": "MISSING"})
    async with served(app_for(FakeControl(tranches=[unprotected]))) as url:
        code = await posmon("status", "--api", url)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("4 "))
    assert code == ExitCode.OK and "exchange  NO: SL MISSING  open" in row


async def test_status_shows_long_averages_to_ten_digits_and_pnl_to_four_places(capsys):
    averaged = dataclasses.replace(
        tranche(3, symbol="ETHUSDT"),
        entry=Decimal("2998.1320000000000000000000001"),
        qty=Decimal("0.020"),
        unrealized_pnl=Decimal("-4.45203000000000000000001"),
    )
    async with served(app_for(FakeControl(tranches=[averaged]))) as url:
        code = await posmon("status", "--api", url)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("3 "))
    assert code == ExitCode.OK
    assert row.split()[3:5] == ["0.020", "2998.132"] and row.split()[8] == "-4.4520"


async def test_status_json_prints_the_daemons_answer(capsys):
    async with served(app_for(FakeControl())) as url:
        code = await posmon("status", "--api", url, "--json")
    answer = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK and answer["tranches"][0]["entry"] == "60000.1" and answer["running"] is True
    assert answer["tranches"][0]["opened_at"] == NOW - 120  # numbers stay numbers


async def test_open_sends_exact_values_and_prints_entry_and_exits(capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        code = await posmon(
            "open",
            "long",
            "dogeusdt",
            "--size-usd",
            "5.1",
            "--leverage",
            "5",
            "--sl-percent",
            "3",
            "--rr",
            "1:2",
            "--api",
            url,
        )
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "LONG DOGEUSDT: filled 0.5 at 100 (tranche 7)" in out
    assert "TP 106.00 (6 %)" in out and "SL 97.00 (3 %)" in out
    [(_, (request,))] = control.calls
    assert (str(request.size_usd), request.leverage, str(request.sl_pct), request.side) == ("5.1", 5, "3", Side.LONG)
    assert [str(x) for x in request.rr_ratio] == ["1", "2"]


async def test_a_pending_entry_is_reported_as_such(capsys):
    async with served(app_for(FakeControl(fill=False))) as url:
        code = await posmon(
            "open",
            "SHORT",
            "BTCUSDT",
            "--size-usd",
            "50",
            "--leverage",
            "2",
            "--sl-percent",
            "1",
            "--rr",
            "1:3",
            "--api",
            url,
        )
    assert code == ExitCode.OK and "not filled yet" in capsys.readouterr().out


async def test_a_refused_open_exits_1_naming_the_field(capsys):
    control = FakeControl()
    control.refuse("size below the minimum notional 5", field="size_usd")
    async with served(app_for(control)) as url:
        code = await posmon(
            "open",
            "long",
            "BTCUSDT",
            "--size-usd",
            "1",
            "--leverage",
            "5",
            "--sl-percent",
            "3",
            "--rr",
            "1:2",
            "--api",
            url,
        )
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED
    assert "HTTP 422" in err and "[size_usd]" in err and "minimum notional" in err


@pytest.mark.parametrize(
    "args",
    [
        ["open", "long", "BTCUSDT", "--size-usd", "0", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2"],
        ["open", "long", "BTCUSDT", "--size-usd", "5", "--leverage", "500", "--sl-percent", "3", "--rr", "1:2"],
        ["open", "long", "BTCUSDT", "--size-usd", "5", "--leverage", "5", "--sl-percent", "3", "--rr", "2"],
        ["open", "up", "BTCUSDT", "--size-usd", "5", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2"],
        ["open", "long", "BTCUSDT", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2"],
        ["close", "BTC/USDT"],
        ["close", "BTCUSDT", "--side", "LONG", "--tranche", "3"],
        ["stop"],
    ],
)
async def test_usage_errors_exit_2_before_any_request(args, capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        with pytest.raises(SystemExit) as exit_:
            await posmon(*args, "--api", url)
    assert exit_.value.code == ExitCode.CONFIG and control.calls == []
    assert "usage:" in capsys.readouterr().err


async def test_close_a_position_a_side_or_one_tranche(capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        codes = [
            await posmon("close", "BTCUSDT", "--api", url),
            await posmon("close", "BTCUSDT", "--side", "short", "--api", url),
            await posmon("close", "BTCUSDT", "--tranche", "1", "--api", url),
        ]
    out = capsys.readouterr().out
    assert codes == [ExitCode.OK] * 3
    assert "closing BTCUSDT LONG: tranche(s) 1" in out and "closing BTCUSDT SHORT: tranche(s) 2" in out
    assert control.calls == [
        ("close", ("BTCUSDT", None, None)),
        ("close", ("BTCUSDT", Side.SHORT, None)),
        ("close", ("BTCUSDT", None, 1)),
    ]


async def test_closing_nothing_exits_1(capsys):
    async with served(app_for(FakeControl())) as url:
        code = await posmon("close", "ETHUSDT", "--api", url)
    assert code == ExitCode.FAILED and "HTTP 404" in capsys.readouterr().err


async def test_stop_and_resume(capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        stopped = await posmon("stop", "BTCUSDT", "--api", url)
        resumed = await posmon("resume", "BTCUSDT", "--api", url)
    out = capsys.readouterr().out
    assert (stopped, resumed) == (ExitCode.OK, ExitCode.OK)
    assert (
        "stopped monitoring BTCUSDT: posmon cancelled its TP and SL orders of tranches 1, 2 on the venue; "
        "the position is left open and UNPROTECTED" in out
    )
    assert "monitoring BTCUSDT again" in out
    assert control.calls == [("stop_monitoring", ("BTCUSDT",)), ("resume_monitoring", ("BTCUSDT",))]


async def test_the_token_comes_from_the_environment(capsys, monkeypatch):
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url:
        missing = await posmon("status", "--api", url)
        monkeypatch.setenv("POSMON_API_TOKEN", TOKEN + "x")
        wrong = await posmon("status", "--api", url)
        monkeypatch.setenv("POSMON_API_TOKEN", TOKEN)
        right = await posmon("status", "--api", url)
    captured = capsys.readouterr()
    assert (missing, wrong, right) == (ExitCode.CONFIG, ExitCode.CONFIG, ExitCode.OK)
    assert "HTTP 401" in captured.err and "POSMON_API_TOKEN" in captured.err
    assert TOKEN not in captured.err + captured.out


async def test_url_and_token_come_from_the_config_without_api(tmp_path, capsys):
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url:
        port = url.rsplit(":", 1)[1]
        config = tmp_path / "posmon.toml"
        config.write_text(f'[api]\nhost = "0.0.0.0"\nport = {port}\ntoken = "{TOKEN}"\n')
        code = await posmon("--config", str(config), "stop", "BTCUSDT")
    assert code == ExitCode.OK and control.calls == [("stop_monitoring", ("BTCUSDT",))]


async def test_config_after_the_command_is_read_and_beats_one_before_it(tmp_path, capsys):
    control = FakeControl()
    async with served(app_for(control, TOKEN)) as url:
        port = url.rsplit(":", 1)[1]
        good = tmp_path / "good.toml"
        good.write_text(f'[api]\nport = {port}\ntoken = "{TOKEN}"\n')
        bad = tmp_path / "bad.toml"
        bad.write_text('[api]\nport = "many"\n')
        after = await posmon("status", "--config", str(good))
        later_wins = await posmon("--config", str(bad), "status", "--config", str(good))
        earlier_loses = await posmon("--config", str(good), "stop", "BTCUSDT", "--config", str(bad))
    assert (after, later_wins, earlier_loses) == (ExitCode.OK, ExitCode.OK, ExitCode.CONFIG)
    assert control.calls == [("status", ()), ("status", ())]
    assert "api.port" in capsys.readouterr().err


def test_every_command_has_a_config_option():
    from posmon.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(sub.choices) >= 10
    without = [name for name, p in sub.choices.items() if "--config" not in p._option_string_actions]
    assert without == ["demo", "completion"]  # they read no configuration ...


def test_config_with_a_command_that_reads_none_is_refused_not_ignored(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["--config", "mine.toml", "demo"])
    assert refused.value.code == 2 and "demo reads no configuration file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["run", "status", "open", "close", "stop", "resume", "verify", "protect", "history", "report"]
)
def test_every_command_accepts_config_after_its_name(command):
    from posmon.cli.parser import build_parser

    parser = build_parser()
    required = {"open": ["LONG", "BTCUSDT", "--size-usd", "1", "--leverage", "1", "--sl-percent", "1", "--rr", "1:2"]}
    argv = [command, *required.get(command, ["BTCUSDT"] if command in ("close", "stop", "resume") else [])]
    assert parser.parse_args([*argv, "--config", "x.toml"]).config == "x.toml"
    assert parser.parse_args(argv).config is None


def test_version_comes_from_the_package_metadata(capsys, monkeypatch):
    from importlib import metadata

    import posmon
    from posmon.cli import parser

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"posmon {metadata.version('posmon')}"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(parser.metadata, "version", not_installed)
    assert parser.version() == posmon.__version__


async def test_a_bad_api_config_exits_2(tmp_path, capsys):
    config = tmp_path / "posmon.toml"
    config.write_text('[api]\nport = "many"\n')
    assert await posmon("--config", str(config), "status") == ExitCode.CONFIG
    assert "api.port" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_daemon_exits_3(capsys):
    code = await posmon("status", "--api", f"http://127.0.0.1:{_closed_port()}")
    assert code == ExitCode.UNREACHABLE and "cannot reach the posmon daemon" in capsys.readouterr().err


async def test_a_daemon_that_does_not_answer_in_time_exits_3(capsys):
    async with served(app_for(FakeControl(status_hangs=True))) as url:
        code = await posmon("status", "--api", url, "--timeout", "0.2")
    assert code == ExitCode.UNREACHABLE and "may still have been carried out" in capsys.readouterr().err


def test_run_refuses_an_api_bound_off_loopback_without_a_token(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSMON_API_HOST", "0.0.0.0")
    monkeypatch.setenv("POSMON_DAEMON_STORE", str(tmp_path / "x.sqlite"))
    assert main(["run"]) == ExitCode.CONFIG
    assert "POSMON_API_HOST" in capsys.readouterr().err
    assert not (tmp_path / "x.sqlite").exists()


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "3  the daemon is unreachable" in out
