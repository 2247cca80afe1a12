"""``posmon open``'s exit-plan flags (issue 15): the body sent carries them as exact strings, a ladder that cannot be
followed is a usage error before any request, and the printout shows the plan and the ladder's first TP."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from posmon.api.client import ApiClient
from posmon.cli.commands import run_ops_command
from posmon.cli.exit_codes import ExitCode
from posmon.cli.parser import build_parser
from tests.api.test_api_fakes import FakeControl, served
from tests.cli.test_cli_ops import _no_api_environment, app_for, posmon  # noqa: F401 (autouse fixture)

OPEN = ("open", "long", "BTCUSDT", "--size-usd", "50", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2")
PLAN_FLAGS = (
    "--tp-levels",
    "1.1:30,2:30,3:40",
    "--trailing-activation-pct",
    "0.5",
    "--trailing-callback-pct",
    "1.2",
    "--trailing-min-step-pct",
    "0.05",
    "--breakeven-after-tp",
    "1",
    "--breakeven-offset-pct",
    "0.1",
    "--breakeven-trigger-pct",
    "2",
)


def test_the_flags_parse_into_exact_values():
    args = build_parser().parse_args([*OPEN, *PLAN_FLAGS])
    assert args.tp_levels == ((Decimal("1.1"), Decimal(30)), (Decimal(2), Decimal(30)), (Decimal(3), Decimal(40)))
    assert (args.trailing_activation_pct, args.trailing_callback_pct, args.trailing_min_step_pct) == (
        Decimal("0.5"),
        Decimal("1.2"),
        Decimal("0.05"),
    )
    assert (args.breakeven_after_tp, args.breakeven_offset_pct, args.breakeven_trigger_pct) == (
        1,
        Decimal("0.1"),
        Decimal(2),
    )
    unset = build_parser().parse_args(list(OPEN))
    assert all(getattr(unset, name) is None for name in ("tp_levels", "trailing_callback_pct", "breakeven_after_tp"))


def bodies_sent(*argv: str) -> list[dict]:
    """The JSON bodies ``posmon`` sends for ``argv`` (a mock transport answers each as a pending entry)."""
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(202, json={"side": "LONG", "symbol": "BTCUSDT", "tranche_id": 1, "qty": "0.001"})

    def client(target, timeout):
        return ApiClient(target.base_url, None, timeout=timeout, transport=httpx.MockTransport(handler))

    args = build_parser().parse_args([*argv, "--api", "http://127.0.0.1:1"])
    assert run_ops_command(args, {}, client=client) == ExitCode.OK
    return sent


def test_the_request_body_sent_carries_the_fields_as_exact_strings():
    [body] = bodies_sent(*OPEN, *PLAN_FLAGS)
    assert {k: v for k, v in body.items() if k not in ("symbol", "size_usd", "leverage", "sl_percent", "rr_ratio")} == {
        "tp_levels": [["1.1", "30"], ["2", "30"], ["3", "40"]],
        "trailing_activation_pct": "0.5",
        "trailing_callback_pct": "1.2",
        "trailing_min_step_pct": "0.05",
        "breakeven_after_tp": 1,
        "breakeven_offset_pct": "0.1",
        "breakeven_trigger_pct": "2",
    }


def test_without_flags_the_body_has_no_plan_field():
    [body] = bodies_sent(*OPEN)
    assert set(body) == {"symbol", "size_usd", "leverage", "sl_percent", "rr_ratio"}


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (("--tp-levels", "1:30,2:60"), "argument --tp-levels: tp_levels: shares sum to 90, expected 100"),
        (("--tp-levels", "2:50,1:50"), "argument --tp-levels: tp_levels: level 2 pct 1 must be above level 1's 2"),
        (("--tp-levels", "1-30"), "argument --tp-levels: '1-30': expected PCT:SHARE levels, e.g. 1:30,2:30,3:40"),
        (("--trailing-callback-pct", "0.05"), "argument --trailing-callback-pct: '0.05': expected 0 or 0.1 to 50"),
        (("--breakeven-after-tp", "x"), "argument --breakeven-after-tp: 'x' is not an integer"),
        (("--breakeven-offset-pct", "nan"), "argument --breakeven-offset-pct: 'nan': expected >= 0 and < 10"),
    ],
)
async def test_a_bad_flag_is_one_line_and_the_usage_exit_code_before_any_request(flags, line, capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        with pytest.raises(SystemExit) as exit_:
            await posmon(*OPEN, *flags, "--api", url)
    err = capsys.readouterr().err
    assert exit_.value.code == ExitCode.CONFIG and control.calls == []
    [error] = [x for x in err.splitlines() if x.startswith("posmon open: error:")]  # one line, after the usage
    assert error.startswith(f"posmon open: error: {line}") and "usage: posmon open" in err


async def test_the_printout_shows_the_plan_and_the_first_levels_tp(capsys):
    control = FakeControl()
    async with served(app_for(control)) as url:
        code = await posmon(*OPEN, "--tp-levels", "1.5:50,3:50", "--trailing-callback-pct", "1", "--api", url)
    out = capsys.readouterr().out.splitlines()
    assert code == ExitCode.OK
    assert out[2].startswith("  TP 101.500 (1.5 %)")  # level 1 of the ladder, not the RR's 6 %
    assert out[-1] == "  exit plan: ladder 1.5%x50% 3%x50%, trailing 1% from +0%"
    [(_, (request,))] = control.mutations()
    assert request.plan_fields["tp_levels"] == ((Decimal("1.5"), Decimal(50)), (Decimal(3), Decimal(50)))


async def test_no_plan_no_plan_line(capsys):
    async with served(app_for(FakeControl())) as url:
        assert await posmon(*OPEN, "--api", url) == ExitCode.OK
    assert "exit plan" not in capsys.readouterr().out


def test_help_lists_the_plan_flags_and_says_the_others_stay(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["open", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--tp-levels", "--trailing-callback-pct", "--breakeven-trigger-pct", "--trailing-min-step-pct"):
        assert flag in text
    assert "an entry giving only --trailing-callback-pct keeps the symbol's ladder" in text


async def test_a_pending_entry_shows_its_plan_too(capsys):
    async with served(app_for(FakeControl(fill=False))) as url:
        code = await posmon(*OPEN, "--breakeven-trigger-pct", "2", "--api", url)
    out = capsys.readouterr().out.splitlines()
    assert code == ExitCode.OK and "not filled yet" in out[1]
    assert out[-1] == "  exit plan: break-even +0% at +2%"
