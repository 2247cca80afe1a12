"""``posmon pair open|link|close|status`` against a served API with a fake control: what is sent, what is shown."""

from decimal import Decimal as D

import pytest
import trio

from posmon.api import create_app
from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.control import PairLegRef
from posmon.domain.orders import Side
from tests.api.test_api_fakes import FakeControl, served


@pytest.fixture(autouse=True)
def _no_api_environment(monkeypatch):
    for name in ("POSMON_API_TOKEN", "POSMON_API_HOST", "POSMON_API_PORT", "POSMON_API_ENABLED", "POSMON_CONFIG"):
        monkeypatch.delenv(name, raising=False)


async def posmon(control: FakeControl, *argv: str) -> int:
    async with served(create_app(control, metrics_render=None, token=None)) as url:
        return await trio.to_thread.run_sync(main, [*argv, "--api", url])


async def test_pair_open_sends_both_legs_the_side_and_the_size_and_shows_the_pair(capsys):
    control = FakeControl()
    code = await posmon(
        control, "pair", "open", "long", "aster:BTC/USDT:USDT", "lighter", "--qty", "0.01", "--on-leg-exit", "protect"
    )
    assert code == ExitCode.OK
    [(name, (request,))] = control.mutations()
    assert name == "open_pair"
    assert request.legs == (PairLegRef("aster", "BTC/USDT:USDT"), PairLegRef("lighter"))
    assert (request.side, request.qty, request.rules.on_leg_exit.value) == (Side.LONG, D("0.01"), "protect")
    out = capsys.readouterr().out
    assert "BTCUSDT" in out and "lighter" in out and "pair 2: combined PnL" in out


async def test_pair_link_close_and_status(capsys):
    control = FakeControl()
    assert await posmon(control, "pair", "link", "aster:BTCUSDT@LONG", "lighter:BTC") == ExitCode.OK
    assert await posmon(control, "pair", "close", "4") == ExitCode.OK
    assert await posmon(control, "pair", "status") == ExitCode.OK
    names = [name for name, _ in control.mutations()]
    assert names == ["link_pair", "close_pair", "pairs"]
    assert control.mutations()[0][1][0].legs[0] == PairLegRef("aster", "BTCUSDT", Side.LONG)
    out = capsys.readouterr().out
    assert "STALE" not in out and "live" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("open", "LONG", "aster:BTC USDT", "lighter", "--qty", "1"),
        ("open", "LONG", "aster:BTCUSDT", "lighter", "--qty", "0"),
        ("open", "LONG", "aster:BTCUSDT", "lighter"),  # no size
        ("open", "LONG", "aster:BTCUSDT", "lighter@UP", "--qty", "1"),
        ("close", "abc"),
    ],
)
def test_a_bad_leg_size_or_id_is_a_usage_error_before_anything_is_sent(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pair", *argv, "--api", "http://127.0.0.1:9"])  # nothing listens there: nothing may be sent
    assert exit_.value.code == 2
    assert "error: " in capsys.readouterr().err


async def test_a_refusal_names_the_field_and_exits_1(capsys):
    control = FakeControl()
    control.refuse("qty: 0.00001 is below the minimum", field="qty")
    code = await posmon(control, "pair", "open", "LONG", "aster:BTCUSDT", "lighter", "--qty", "0.00001")
    assert code == ExitCode.FAILED
    assert "[qty]" in capsys.readouterr().err
