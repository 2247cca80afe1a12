"""``posmon open`` says what it commits before it sends: the notional (``--size-usd``), the margin at the leverage
and the USD at risk at the SL; after the fill it prints the same from the daemon's answer (real qty and price)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from posmon.cli.exit_codes import ExitCode
from tests.api.test_api_fakes import FakeControl, served
from tests.cli.test_cli_ops import _closed_port, _no_api_environment, app_for, posmon  # noqa: F401 (autouse fixture)

OPEN = ("open", "long", "DOGEUSDT", "--size-usd", "5.1", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2")
SENDING = "sending: notional 5.10 USD, margin 1.02 USD at 5x, 0.1530 USD at risk at the SL"


async def test_open_prints_notional_margin_and_risk_before_sending_and_from_the_fill_after(capsys):
    async with served(app_for(FakeControl())) as url:
        code = await posmon(*OPEN, "--api", url)
    lines = capsys.readouterr().out.splitlines()
    assert code == ExitCode.OK
    assert lines[0] == SENDING  # 5.1 notional / 5 = 1.02 margin; 3 % of 5.1 = 0.153 at risk
    assert lines[1] == "LONG DOGEUSDT: filled 0.5 at 100 (tranche 7)"
    # The fake fills 0.5 at 100 with the SL at 97: 50 notional, 10 margin at 5x, 0.5 x 3 = 1.5 at risk.
    assert lines[3] == "  filled: notional 50.00 USD, margin 10.00 USD at 5x, 1.50 USD at risk at the SL price"


async def test_the_sizing_is_printed_before_anything_is_sent(capsys):
    code = await posmon(*OPEN, "--api", f"http://127.0.0.1:{_closed_port()}")
    captured = capsys.readouterr()
    assert code == ExitCode.UNREACHABLE
    assert captured.out.splitlines() == [SENDING]  # said although the request never reached a daemon


async def test_json_output_stays_json_and_carries_the_sizing_fields(capsys):
    async with served(app_for(FakeControl())) as url:
        code = await posmon(*OPEN, "--api", url, "--json")
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert code == ExitCode.OK and SENDING in captured.err.splitlines()  # stderr: stdout is the JSON alone
    sizing = [Decimal(answer[k]) for k in ("notional_usd", "margin_usd", "risk_usd")]
    assert (sizing, answer["leverage"]) == ([50, 10, Decimal("1.5")], 5)


def test_open_help_says_size_usd_is_the_notional_and_the_leverage_only_sets_the_margin(capsys):
    from posmon.cli import main

    with pytest.raises(SystemExit):
        main(["open", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "notional value of the position in USD (qty x price); margin = notional / leverage" in text
    assert "set on the venue for the symbol before the entry (refused: nothing is sent)" in text
