"""The peer benchmark's smoke run: posmon's side end to end at toy sizes, the peer skipped, figures as JSON.

No timing threshold (the values mean nothing at these sizes on a shared machine): it checks that every row
ran the real daemon on the seeded book, that quiet ticks closed nothing, and that the injected tick closed
exactly the trigger tranches.
"""

from __future__ import annotations

import json

from bench.peers.run import SMOKE_ROWS, main, table


def test_smoke_runs_posmons_side_only_and_writes_every_rows_figures(tmp_path, capsys):
    assert main(["--smoke", "--results", str(tmp_path)]) == 0

    [path] = tmp_path.glob("*-peers-smoke.json")
    data = json.loads(path.read_text())
    assert data["nautilus_trader"] is None and data["smoke"] is True
    assert [r["row"]["name"] for r in data["rows"]] == [r.name for r in SMOKE_ROWS]
    for entry in data["rows"]:
        row, p = entry["row"], entry["posmon"]
        assert "nautilus" not in entry and entry["ratio_handed"] is None and entry["ratio_wire"] is None
        assert p["handed_ticks_per_s"] > 0 and p["wire_ticks_per_s"] > 0
        assert p["tranches_held"] == row["stops"] + row["triggers"] * row["rounds"]
        assert p["closes_during_quiet_ticks"] == 0  # no quiet tick crosses a level
        if row["triggers"]:
            trig = p["trigger"]
            assert trig["ticks"] == row["rounds"] and trig["closes_sent"] == row["triggers"] * row["rounds"]
            assert trig["tranches_left"] == row["stops"]  # the trigger tranches closed, nothing else
            assert all(ms > 0 for ms in trig["to_last_close_ms"])
        else:
            assert "trigger" not in p
    printed = capsys.readouterr()
    assert printed.out.startswith(table(data["rows"]))
    assert "NautilusTrader's side skipped" in printed.err
