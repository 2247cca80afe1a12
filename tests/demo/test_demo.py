"""``posmon demo``: one run shows every kind of exit, the tranche rules and a restart, the same way every time.

The demo runs under trio's MockClock (autojump): its ~23 scripted seconds take no wall time, over real loopback
HTTP and websockets to the Aster-protocol simulator.
"""

import csv
import functools
import re
from decimal import Decimal

import trio
import trio.testing

from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.demo import Happening, run_demo
from posmon.demo.session import _open_dashboard
from posmon.store.store import Store

THE_STORY = {
    Happening.TP_FILL,
    Happening.INSTANT_TP,
    Happening.SL,
    Happening.TIMEOUT,
    Happening.NEW_TRANCHE,
    Happening.MERGED,
    Happening.RESTART,
}
# A price in a line: after "@", "TP", "SL", "mark", "entry" or "to" (e.g. "0.020 @ 45000.0", "TP 45675.0").
PRICE = re.compile(r"(?:@|\bTP|\bSL|\bmark|\bentry|\bto) (\d+(?:\.\d+)?)\b")


async def test_one_run_shows_every_exit_kind_the_tranche_rules_and_a_restart(tmp_path, autojump_clock):
    lines: list[str] = []
    began = trio.current_time()
    result = await run_demo(tmp_path / "demo", emit=lines.append)
    assert 20 <= trio.current_time() - began <= 40  # the default run's length in seconds

    assert result.kinds >= THE_STORY
    assert Happening.ALERT not in result.kinds  # nothing needed a human
    summary = result.summary()
    for kind in THE_STORY:
        assert f"{kind.value} " in summary.split("what happened: ")[1].splitlines()[0]
    assert {e.symbol: e.kind for e in result.events if e.kind in THE_STORY - {Happening.RESTART}} == {
        "BTCUSDT": Happening.TP_FILL,
        "ETHUSDT": Happening.INSTANT_TP,
        "SOLUSDT": Happening.SL,
        "XRPUSDT": Happening.TIMEOUT,
        "DOGEUSDT": Happening.MERGED,  # after its two new tranches
    }
    assert [e.line for e in result.events] == lines[3:]  # everything narrated is in the result, in order

    # The summary's figures are the store's: what `posmon history` reads.
    store = Store.open(result.store_path)
    try:
        closed = store.closed_tranches("aster")
    finally:
        store.close()
    assert result.exits == {"TP": 2, "SL": 1, "TIMEOUT": 1, "MERGED": 1}
    assert sorted(r["close_reason"] for r in closed) == ["MERGED", "SL", "TIMEOUT", "TP", "TP"]
    assert result.realized_pnl == sum(Decimal(r["realized_pnl"]) for r in closed) != 0
    [shown] = re.findall(r"realized PnL: ([-+]\d+\.\d+) USDT over 5 closed tranches", summary)
    assert Decimal(shown) == result.realized_pnl  # shown exactly, not rounded to the cent
    assert f"history: posmon --config {result.config_path} history" in summary
    assert result.protected == 9 and result.open_tranches == result.open_fully_protected == 4


async def test_restart_keeps_the_tranches_and_books_what_filled_while_down(tmp_path, autojump_clock):
    result = await run_demo(tmp_path / "demo", emit=lambda _: None)
    check = [e for e in result.events if e.kind is Happening.RESTART][-1].data
    sl = next(e for e in result.events if e.kind is Happening.SL)
    assert check["closed"] == {sl.tranche_id: "SL"}  # the stop filled on the exchange while posmon was down
    assert sorted(check["open"]) == sorted(set(check["before"]) - {sl.tranche_id})  # the same ids, none new
    assert check["placed"] == 0 and check["covered"] == len(check["open"]) > 0  # nothing doubled


async def test_narrated_prices_sit_on_the_symbols_tick(tmp_path, autojump_clock):
    result = await run_demo(tmp_path / "demo", emit=lambda _: None)
    checked = 0
    for event in result.events:
        if event.symbol not in result.rules:
            continue
        tick = result.rules[event.symbol].tick_size
        decimals = -tick.as_tuple().exponent
        for text in PRICE.findall(event.line):
            value = Decimal(text)
            assert len(text.partition(".")[2]) == decimals and value % tick == 0, (text, event.line)
            checked += 1
    assert checked >= 40


async def test_two_runs_tell_the_same_story(tmp_path, autojump_clock):
    first = await run_demo(tmp_path / "one", emit=lambda _: None)
    second = await run_demo(tmp_path / "two", emit=lambda _: None)
    assert [e.line for e in first.events] == [e.line for e in second.events]
    assert (first.exits, first.realized_pnl) == (second.exits, second.realized_pnl)


def test_open_uses_a_graphical_browser_only(monkeypatch):
    opened: list[str] = []
    said: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, new=0: opened.append(url) or True)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    _open_dashboard("http://127.0.0.1:1234/", said.append)
    assert opened == [] and said == ["no graphical browser here: open http://127.0.0.1:1234/ yourself"]
    monkeypatch.setenv("DISPLAY", ":0")
    _open_dashboard("http://127.0.0.1:1234/", said.append)
    assert opened == ["http://127.0.0.1:1234/"] and len(said) == 1


def test_history_csv_of_a_demo_run_sums_to_the_realized_pnl_it_reports(tmp_path, capsys):
    run = functools.partial(run_demo, tmp_path / "demo", emit=lambda _: None)
    result = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    shown = re.search(r"realized PnL: ([-+][\d.]+) USDT", result.summary())
    assert shown is not None

    csv_path = tmp_path / "history.csv"
    assert main(["--config", str(result.config_path), "history", "--csv", str(csv_path)]) == ExitCode.OK
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["exit_reason"] for r in rows) == ["MERGED", "SL", "TIMEOUT", "TP", "TP"]
    assert all(r["exit_price"] for r in rows if r["exit_reason"] != "MERGED")
    assert sum(Decimal(r["realized_pnl"]) for r in rows) == Decimal(shown[1]) == result.realized_pnl
