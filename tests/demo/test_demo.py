"""``posmon demo``: one run shows every kind of exit, the tranche rules, a restart and one of each exit plan (a TP
ladder with break-even, a trailing stop) and a risk limit, the same way every time.

The demo runs under trio's MockClock (autojump): its ~30 scripted seconds take no wall time, over real loopback
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
    Happening.LEVEL,
    Happening.BREAK_EVEN,
    Happening.TRAILING,
    Happening.TRAIL_OUT,
    Happening.REFUSED,
}
# A price in a line: after "@", "TP", "SL", "mark", "entry" or "to" (e.g. "0.020 @ 45000.0", "TP 45675.0").
PRICE = re.compile(r"(?:@|\bTP|\bSL|\bmark|\bentry|\bto) (\d+(?:\.\d+)?)\b")


async def test_one_run_shows_every_exit_kind_the_tranche_rules_and_a_restart(tmp_path, autojump_clock):
    lines: list[str] = []
    began = trio.current_time()
    result = await run_demo(tmp_path / "demo", emit=lines.append)
    assert 25 <= trio.current_time() - began <= 35  # the default run's length in seconds

    assert result.kinds >= THE_STORY
    assert Happening.ALERT not in result.kinds  # nothing needed a human
    summary = result.summary()
    for kind in THE_STORY:
        assert f"{kind.value} " in summary.split("what happened: ")[1].splitlines()[0]
    assert {(e.symbol, e.kind) for e in result.events if e.kind in THE_STORY - {Happening.RESTART}} == {
        ("BTCUSDT", Happening.TP_FILL),
        ("ETHUSDT", Happening.INSTANT_TP),
        ("SOLUSDT", Happening.SL),
        ("XRPUSDT", Happening.TIMEOUT),
        ("DOGEUSDT", Happening.NEW_TRANCHE),
        ("DOGEUSDT", Happening.MERGED),
        ("BNBUSDT", Happening.REFUSED),
        ("BNBUSDT", Happening.LEVEL),
        ("BNBUSDT", Happening.BREAK_EVEN),
        ("BNBUSDT", Happening.TP_FILL),  # its last level
        ("SOLUSDT", Happening.TRAILING),  # the operator's entry after the restart
        ("SOLUSDT", Happening.TRAIL_OUT),
    }
    assert [e.line for e in result.events] == lines[3:]  # everything narrated is in the result, in order

    # The summary's figures are the store's: what `posmon history` reads.
    store = Store.open(result.store_path)
    try:
        closed = store.closed_tranches("aster")
    finally:
        store.close()
    assert result.exits == {"TP": 3, "SL": 2, "TIMEOUT": 1, "MERGED": 1}
    assert sorted(r["close_reason"] for r in closed) == ["MERGED", "SL", "SL", "TIMEOUT", "TP", "TP", "TP"]
    assert result.realized_pnl == sum(Decimal(r["realized_pnl"]) for r in closed) != 0
    [shown] = re.findall(r"realized PnL: ([-+]\d+\.\d+) USDT over 7 closed tranches", summary)
    assert Decimal(shown) == result.realized_pnl  # shown exactly, not rounded to the cent
    assert f"history: posmon --config {result.config_path} history" in summary
    assert result.protected == 11 and result.open_tranches == result.open_fully_protected == 4


async def test_restart_keeps_the_tranches_and_books_what_filled_while_down(tmp_path, autojump_clock):
    result = await run_demo(tmp_path / "demo", emit=lambda _: None)
    check = [e for e in result.events if e.kind is Happening.RESTART][-1].data
    sl = next(e for e in result.events if e.kind is Happening.SL)
    assert check["closed"] == {sl.tranche_id: "SL"}  # the stop filled on the exchange while posmon was down
    assert sorted(check["open"]) == sorted(set(check["before"]) - {sl.tranche_id})  # the same ids, none new
    assert check["placed"] == 0 and check["covered"] == len(check["open"]) > 0  # nothing doubled


async def test_the_ladder_fills_level_by_level_with_break_even_after_tp1(tmp_path, autojump_clock):
    result = await run_demo(tmp_path / "demo", emit=lambda _: None)
    bnb = [
        e
        for e in result.events
        if e.symbol == "BNBUSDT" and e.kind not in (Happening.ENTRY, Happening.MOVE, Happening.OPERATOR)
    ]
    assert [e.kind for e in bnb] == [
        Happening.OPENED,
        Happening.REFUSED,
        Happening.LEVEL,  # level 1: its resting limit traded
        Happening.BREAK_EVEN,  # only once level 1 filled
        Happening.LEVEL,  # level 2: the mark spiked through it, closed at market
        Happening.TP_FILL,  # level 3 takes the rest
    ]
    opened, _, one, be, two, last = (e.line for e in bnb)
    assert "1.00 @ 600.00, protected: TP 606.00 / SL 552.00" in opened
    assert "level 1 of 3 filled: the resting TP limit traded 0.30 @ 606.00, PnL +1.80 USDT" in one
    assert "SL resized to 0.70, level 2 rests: TP 0.30 @ 612.00" in one
    assert "SL moved from 552.00 to break-even 600.60 (entry 600.00 + 0.1 %)" in be
    assert "the mark ran through level 2 of 3 (TP 612.00): closed 0.30 @ 612.60 at market" in two
    assert "SL resized to 0.40, level 3 rests: TP 0.40 @ 618.00" in two
    assert "0.40 @ 618.00 (level 3 of 3); 1.00 closed in all" in last and "PnL +12.78 USDT" in last

    # The journal has what the narration says: two partial closes with their PnL, one break-even move.
    store = Store.open(result.store_path)
    try:
        partial = [e["data"] for e in store.events("partial_close") if e["symbol"] == "BNBUSDT"]
        moved = [e["data"] for e in store.events("stop_moved") if e["symbol"] == "BNBUSDT"]
    finally:
        store.close()
    assert [(d["level"], Decimal(d["qty"]), Decimal(d["pnl"])) for d in partial] == [
        (1, Decimal("0.30"), Decimal("1.80")),
        (2, Decimal("0.30"), Decimal("3.78")),
    ]
    assert [(Decimal(d["new"]), d["why"]) for d in moved] == [(Decimal("600.60"), "break-even")]
    [bnb_closed] = [c for c in result.history.tranches if c.symbol == "BNBUSDT"]
    assert (bnb_closed.exit_reason, bnb_closed.qty, bnb_closed.realized_pnl) == (
        "TP",
        Decimal("1.00"),
        Decimal("12.78"),
    )


async def test_the_trailing_stop_follows_the_best_mark_and_stops_out_on_the_callback(tmp_path, autojump_clock):
    result = await run_demo(tmp_path / "demo", emit=lambda _: None)
    trail = [e for e in result.events if e.kind is Happening.TRAILING]
    stops = [Decimal(re.findall(r"to (\S+) \(best mark", e.line)[0]) for e in trail]
    bests = [Decimal(re.findall(r"best mark (\S+)\)", e.line)[0]) for e in trail]
    assert len(trail) >= 3 and stops == sorted(set(stops)) and bests == sorted(set(bests))  # never loosens
    assert all(
        s == (b * Decimal("0.99")).quantize(Decimal("0.01"), rounding="ROUND_UP")
        for s, b in zip(stops, bests, strict=True)
    )
    assert "trailing stop active at +1.02 %: SL moved from 136.22 to 139.02 (best mark 140.42)" in trail[0].line
    [out] = [e for e in result.events if e.kind is Happening.TRAIL_OUT]
    assert out.tranche_id == trail[0].tranche_id and out.reason == "SL"
    [sol] = [c for c in result.history.tranches if c.id == out.tranche_id]
    # Triggered on the callback: at or under the last stop, above the entry (the trail locked a profit).
    assert sol.entry == Decimal("139.00") < sol.exit_price <= stops[-1] and sol.realized_pnl > 0
    assert f"stopped out by the trail at {sol.exit_price}" in out.line


async def test_a_risk_limit_refuses_the_operator_entry_in_one_line_and_sends_nothing(tmp_path, autojump_clock):
    result = await run_demo(tmp_path / "demo", emit=lambda _: None)
    [refused] = [e for e in result.events if e.kind is Happening.REFUSED]
    assert refused.data == {"field": "max_notional_per_symbol", "status": 422, "sent": 0}
    assert "\n" not in refused.line and "max_notional_per_symbol is 1000 USD" in refused.line
    assert refused.line.endswith("HTTP 422, nothing sent")
    store = Store.open(result.store_path)
    try:  # the BNB position is the other program's one tranche: nothing opened for the refused entry
        assert [t for t in store.closed_tranches("aster") if t["symbol"] == "BNBUSDT"] != []
        assert len({e["tranche_id"] for e in store.events() if e["symbol"] == "BNBUSDT"}) == 1
    finally:
        store.close()


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
    assert sorted(r["exit_reason"] for r in rows) == ["MERGED", "SL", "SL", "TIMEOUT", "TP", "TP", "TP"]
    assert all(r["exit_price"] for r in rows if r["exit_reason"] != "MERGED")
    assert sum(Decimal(r["realized_pnl"]) for r in rows) == Decimal(shown[1]) == result.realized_pnl
