"""bench.trailing_moves counts the stop moves of a trailing tranche, fewer with a larger minimum step."""

import json
from decimal import Decimal as D

from bench.trailing_moves import Recording, _run, main, measure
from posmon.domain.orders import Side


def rising(n: int) -> list[tuple[float, D]]:
    """A mark rising 1 (of 45,000) per second for ``n`` seconds, then falling through any stop."""
    up = [(float(i), D(45000 + i)) for i in range(n)]
    return [*up, (float(n), D(40000))]


def test_every_improvement_moves_the_stop_without_a_minimum_step_and_fewer_with_one():
    ticks = rising(600)
    hours, every = _run(ticks, 0, Side.LONG, "1", "0")
    _, paced = _run(ticks, 0, Side.LONG, "1", "0.1")
    assert hours == 600 / 3600
    assert len(every) == 599  # each new best mark moves a 0.1-tick stop
    assert 0 < len(paced) < 20  # 0.1 % of ~44,800 is ~45: one move per ~45 s of climb


def test_measure_reports_one_row_per_callback_and_step(tmp_path, capsys):
    rows = measure(Recording("synthetic", "1s", rising(7300)))
    assert [(r["callback_pct"], r["min_step_pct"]) for r in rows] == [
        (c, s) for c in ("0.5", "1") for s in ("0", "0.1", "0.25")
    ]
    assert rows[0]["moves_per_hour"] > rows[2]["moves_per_hour"] > 0
    candles = [
        [1_000_000 + 300_000 * i, 1 + i / 1000, 1 + i / 1000 + 0.001, 1 + i / 1000, 1 + i / 1000 + 0.001, 1]
        for i in range(40)
    ]
    (tmp_path / "XRP_USDT_USDT-5m-futures.json").write_text(json.dumps(candles))
    assert main(["--data", str(tmp_path), "--json", str(tmp_path / "out.json")]) == 0
    assert len(json.loads((tmp_path / "out.json").read_text())) == 6
    assert "moves_per_hour" in capsys.readouterr().out
