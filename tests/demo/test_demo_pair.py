"""``posmon demo --pair``: a hedge pair across both embedded simulators; the Aster leg's stop-out closes the Lighter
leg in the same tick, the same way every time (trio's MockClock, real loopback HTTP and websockets)."""

import re

import trio

from posmon.cli import main
from posmon.demo.pair import run_pair_demo
from posmon.store.store import Store


async def test_the_aster_stop_out_closes_the_lighter_leg_at_once_and_the_pair_ends_flat(tmp_path, autojump_clock):
    lines: list[str] = []
    began = trio.current_time()
    result = await run_pair_demo(tmp_path / "demo", emit=lines.append)
    assert 9 <= trio.current_time() - began <= 15

    order = [line.kind for line in result.lines if line.kind != "market"]
    assert order == ["operator", "opened", "protected", "pnl", "leg_exit", "pair_leg_exit", "other_leg", "pair_closed"]
    assert "alert" not in result.kinds
    opened = next(line.line for line in result.lines if line.kind == "opened")
    assert re.search(r"aster BTCUSDT LONG 0\.044 @ 45000\.0; lighter BTC SHORT 0\.04400 @ ", opened)
    protected = next(line for line in result.lines if line.kind == "protected")
    assert protected.data["resting"] == 2 and "STOP_MARKET 44100" in protected.line  # Aster's TP and SL rest
    assert "combined +0.00 USDT" in next(line.line for line in result.lines if line.kind == "pnl")

    assert result.exits["aster"][0] == "SL" and result.exits["lighter"][0] == "PAIR"
    assert result.gap_seconds is not None and 0 <= result.gap_seconds < 1.0  # within one tick of the stop's fill
    assert result.pair_status == "closed" and result.flat
    assert [line.line for line in result.lines] == lines[2:]  # everything narrated is in the result, in order

    store = Store.open(result.store_path)
    try:
        reasons = {v: [r["close_reason"] for r in store.closed_tranches(v)] for v in ("aster", "lighter")}
    finally:
        store.close()
    assert reasons == {"aster": ["SL"], "lighter": ["PAIR"]}
    assert "combined +0.0000 USDT" in result.summary() and "both venues flat" in result.summary()


async def test_two_runs_narrate_the_same_lines(tmp_path, autojump_clock):
    first = await run_pair_demo(tmp_path / "a", emit=lambda _line: None)
    again = await run_pair_demo(tmp_path / "b", emit=lambda _line: None)
    assert [line.line for line in first.lines] == [line.line for line in again.lines]


def test_demo_pair_refuses_a_directory_that_holds_a_store_in_one_line(tmp_path, capsys):
    (tmp_path / "demo-pair.sqlite").write_text("")
    code = main(["demo", "--pair", "--fast", "--dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "already holds a demo's store" in err[0]


def test_posmon_demo_pair_fast_prints_the_story_and_a_history_command_that_reads_it(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", "--pair", "--fast", "--dir", str(demo)]) == 0
    out = capsys.readouterr().out
    assert "pair #1: closed; legs aster SL" in out and "lighter PAIR" in out and "both venues flat" in out
    [history] = [line for line in out.splitlines() if line.startswith("history: ")]
    argv = history.removeprefix("history: posmon ").split()
    assert main(argv) == 0
    assert "PAIR" in capsys.readouterr().out  # the Lighter leg's close, read from the demo's store
