"""The operator commands take a unified instrument name (``BTC/USDT:USDT``) wherever they take a symbol, and the
status table shows it beside the venue symbol."""

import dataclasses

import pytest

from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.domain.orders import Side
from tests.api.test_api_fakes import FakeControl, served, tranche
from tests.cli.test_cli_ops import _no_api_environment, app_for, posmon  # noqa: F401 (autouse fixture)
from tests.harness import make_settings


async def test_open_close_stop_and_resume_pass_a_unified_name_through_unchanged(capsys):
    control = FakeControl()
    args = ("--size-usd", "100", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2")
    async with served(app_for(control)) as url:
        opened = await posmon("open", "long", "btc/usdt:usdt", *args, "--api", url)
        closed = await posmon("close", "ETH/USDT:USDT", "--side", "short", "--api", url)
        stopped = await posmon("stop", "BTC/USDT:USDT", "--api", url)
        resumed = await posmon("resume", "BTC/USDT:USDT", "--api", url)
    assert opened == ExitCode.OK and (stopped, resumed) == (ExitCode.OK, ExitCode.OK)
    assert closed == ExitCode.FAILED  # the fake holds nothing of it: the name reached the daemon's control
    [(_, (request,)), *rest] = control.calls
    assert request.symbol == "BTC/USDT:USDT"
    assert rest == [
        ("close", ("ETH/USDT:USDT", Side.SHORT, None)),
        ("stop_monitoring", ("BTC/USDT:USDT",)),
        ("resume_monitoring", ("BTC/USDT:USDT",)),
    ]


async def test_a_spot_style_name_is_refused_before_any_request_showing_the_unified_form(capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        with pytest.raises(SystemExit) as exit_:
            await posmon("close", "BTC/USDT", "--api", url)
    assert exit_.value.code == ExitCode.CONFIG and control.calls == []
    assert "a unified name BASE/QUOTE:SETTLE such as 'BTC/USDT:USDT'" in capsys.readouterr().err


async def test_status_shows_the_instrument_beside_the_symbol_when_the_daemon_names_one(capsys):
    named = dataclasses.replace(tranche(1), instrument="BTC/USDT:USDT")
    async with served(app_for(FakeControl(tranches=[named, tranche(2)]))) as url:
        code = await posmon("status", "--api", url)
    lines = capsys.readouterr().out.splitlines()
    assert code == ExitCode.OK
    assert next(line for line in lines if line.startswith("ID")).split()[:4] == ["ID", "SYMBOL", "INSTRUMENT", "SIDE"]
    assert next(line for line in lines if line.startswith("1 ")).split()[:3] == ["1", "BTCUSDT", "BTC/USDT:USDT"]
    assert next(line for line in lines if line.startswith("2 ")).split()[2] == "-"


def test_offline_history_refuses_a_unified_name_saying_what_to_give_instead(tmp_path, capsys):
    # The store records venue symbols and `posmon history` reads it without the venue's market list: a unified
    # name there would silently match nothing, so it is refused with what to do instead.
    config = str(make_settings(tmp_path).source)
    assert main(["--config", config, "history", "--symbol", "BTC/USDT:USDT"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "--symbol: BTC/USDT:USDT is a unified name" in err and "GET /api/history?symbol=BTC/USDT:USDT" in err
