"""``python -m chaos --two-venue``: both simulators in one daemon, hedge pairs, ``no_pair_with_one_leg``.

The pair invariant is proved on hand-built stores (a pair left with one leg, a closed pair with a leg still open,
a pair stuck opening, legs further apart than a step); the schedule on its seed (marks of one base moving together
on both venues, one kill schedule, pair events); the smoke runs two short two-venue runs as CI does.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import orjson

from chaos.invariants import INVARIANTS, PAIR_INVARIANTS, check_pairs, check_state, read_pairs, read_store
from chaos.run import Options
from chaos.twovenue import TWO_VENUE, plan_two, two_venues
from chaos.venues import AsterVenue, LighterVenue
from posmon.domain.orders import Side
from posmon.store.store import Store

ROOT = Path(__file__).resolve().parents[2]


def pair_store(path: Path, status: str, legs: list[tuple[str, str, str, str, str | None]]) -> Path:
    """A store holding pair #1 (``status``) whose legs are (venue, symbol, side, step, open tranche qty or None)."""
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO pairs (id, status, rules) VALUES (1, ?, '{}')", (status,))
    exits = {"LONG": ("45450", "44100"), "SHORT": ("44550", "45900")}  # 1 % and 2 % from 45000
    for i, (venue, symbol, side, step, qty) in enumerate(legs):
        conn.execute(
            "INSERT INTO pair_legs (pair_id, leg, venue, symbol, side, target_qty, step, filled_qty, funding, residue) "
            "VALUES (1, ?, ?, ?, ?, '0.002', ?, ?, '0', '0')",
            (i, venue, symbol, side, step, (qty or "0") if status == "open" else "0"),
        )
        tid = 10 + i
        conn.execute(
            "INSERT INTO tranches (id, venue, symbol, side, idx, entry, qty, tp, sl, status) VALUES "
            "(?, ?, ?, ?, 0, '45000', ?, ?, ?, ?)",
            (tid, venue, symbol, side, qty or "0.002", *exits[side], "open" if qty else "closed"),
        )
        conn.execute("INSERT INTO pair_tranches (tranche_id, pair_id, leg, active) VALUES (?, 1, ?, 1)", (tid, i))
    conn.commit()
    conn.close()
    return path


def venues_holding(aster_long: str | None, lighter_short: str | None) -> dict[str, AsterVenue | LighterVenue]:
    aster, lighter = AsterVenue(("BTCUSDT",)), LighterVenue(("BTC",))
    if aster_long:
        aster.exchange.external_entry("BTCUSDT", Side.LONG, D(aster_long))
    if lighter_short:
        lighter.sim.external_entry("BTC", Side.SHORT, D(lighter_short))
    return {"aster": aster, "lighter": lighter}


def leg_violations(tmp_path: Path, status: str, aster: str | None, lighter: str | None, **held: str | None) -> list:
    store = pair_store(
        tmp_path / "s.sqlite",
        status,
        [
            ("aster", "BTCUSDT", "LONG", "0.001", held.get("aster_leg", aster)),
            ("lighter", "BTC", "SHORT", "0.00001", held.get("lighter_leg", lighter)),
        ],
    )
    return check_pairs(venues_holding(aster, lighter), read_pairs(store))


def test_an_open_pair_with_both_legs_held_and_equal_passes(tmp_path: Path):
    assert leg_violations(tmp_path, "open", "0.002", "0.002") == []


def test_an_open_pair_with_one_leg_flat_is_a_pair_with_one_leg(tmp_path: Path):
    (v,) = leg_violations(tmp_path, "open", "0.002", None)
    assert v.invariant == "no_pair_with_one_leg" and "leg flat" in v.detail and "tranches hold 0 (#-)" in v.detail


def test_a_closed_pair_with_a_leg_still_open_is_a_violation(tmp_path: Path):
    (v,) = leg_violations(tmp_path, "closed", "0.002", None)
    assert "closed with a leg still open" in v.detail
    assert leg_violations(tmp_path / "flat", "closed", None, None) == []


def test_a_pair_stuck_opening_or_closing_after_settling_is_a_violation(tmp_path: Path):
    for status in ("opening", "closing", "broken"):
        (v,) = leg_violations(tmp_path / status, status, "0.002", "0.002")
        assert f"pair #1 {status}: not settled" in v.detail


def test_legs_further_apart_than_the_coarser_step_are_a_violation(tmp_path: Path):
    (v,) = leg_violations(tmp_path, "open", "0.002", "0.00099", aster_leg="0.002", lighter_leg="0.00099")
    assert "differ by more than a step" in v.detail
    assert leg_violations(tmp_path / "within", "open", "0.002", "0.00101") == []  # within Aster's 0.001


def test_a_leg_tranche_grown_by_an_adopted_fill_is_no_violation_and_one_short_of_its_leg_is(tmp_path: Path):
    store = pair_store(
        tmp_path / "s.sqlite",
        "open",
        [("aster", "BTCUSDT", "LONG", "0.001", "0.005"), ("lighter", "BTC", "SHORT", "0.00001", "0.002")],
    )
    conn = sqlite3.connect(store)
    conn.execute("UPDATE pair_legs SET filled_qty = '0.002'")  # the pair's legs: 0.002 each; Aster's tranche grew
    conn.commit()
    assert check_pairs(venues_holding("0.005", "0.002"), read_pairs(store)) == []
    conn.execute("UPDATE pair_legs SET filled_qty = '0.006' WHERE leg = 0")
    conn.execute("UPDATE pair_legs SET filled_qty = '0.00600' WHERE leg = 1")
    conn.commit()
    conn.close()
    details = [v.detail for v in check_pairs(venues_holding("0.005", "0.002"), read_pairs(store))]
    assert details and "leg's tranches hold less than the leg" in details[0]


def test_a_leg_the_venue_does_not_hold_is_a_violation(tmp_path: Path):
    (v,) = leg_violations(tmp_path, "open", "0.001", "0.002", aster_leg="0.002", lighter_leg="0.002")
    assert "aster holds 0.001 of BTCUSDT LONG, less than its leg" in v.detail


def test_state_invariants_read_only_the_venues_own_tranches_from_a_two_venue_store(tmp_path: Path):
    store = pair_store(
        tmp_path / "s.sqlite",
        "open",
        [("aster", "BTCUSDT", "LONG", "0.001", "0.002"), ("lighter", "BTC", "SHORT", "0.00001", "0.002")],
    )
    venues = venues_holding("0.002", "0.002")
    view = read_store(store)
    lighter = check_state(venues["lighter"], view, by_venue=True)
    assert lighter == []  # the Aster tranche is not taken for a Lighter one
    assert {v.invariant for v in check_state(venues["aster"], view, by_venue=True)} == {"covered"}  # no TP/SL rests
    assert "store_matches_venue" in {v.invariant for v in check_state(venues["lighter"], view)}  # both taken as one


def test_a_two_venue_seed_replays_moves_a_base_on_both_venues_together_and_has_pair_events():
    opts = Options(duration=5.0)
    first, again = plan_two(41, two_venues(), opts), plan_two(41, two_venues(), opts)
    assert first.actions == again.actions and first.kills == again.kills and first.pre_entries == again.pre_entries
    assert first.venue == TWO_VENUE and 1 <= len(first.kills) <= 3
    marks: dict[float, dict[str, dict[str, float]]] = {}
    for a in first.actions:
        if a.kind == "marks":
            marks.setdefault(a.t, {})[a.venue] = a.args["offsets"]
    for step in marks.values():
        assert abs(step["aster"]["BTCUSDT"] - step["lighter"]["BTC"]) < 0.3  # one path, a little basis noise
        assert abs(step["aster"]["ETHUSDT"] - step["lighter"]["ETH"]) < 0.3
    kinds = {a.kind for s in range(40, 50) for a in plan_two(s, two_venues(), opts).actions}
    assert {"pair_open", "leg_mark", "leg_liquidate", "venue_down", "fault", "entry"} <= kinds
    assert {a.venue for a in first.actions if a.kind == "fault"} == {"aster", "lighter"}


def test_two_venue_smoke_runs_both_simulators_in_one_daemon_with_pairs_and_no_violation(tmp_path: Path):
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", "--smoke", "--two-venue", "--seed", "11", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = orjson.loads(out.read_bytes())
    assert summary["runs"] == 2 and set(summary["by_venue"]) == {TWO_VENUE}
    assert set(summary["violations_by_invariant"]) == set(INVARIANTS + PAIR_INVARIANTS)
    assert summary["kills"] >= 1 and summary["faults"] >= 4
    assert summary["workload"].get("pair_open", 0) >= 1, summary["workload"]
    assert "violations no_pair_with_one_leg" in proc.stdout and "--two-venue" not in proc.stdout.split("FAILED")[0]
    failures = "\n".join(f"{f['replay']}: {f['invariants']}" for f in summary["failing_seeds"])
    assert summary["failed_runs"] == 0 and proc.returncode == 0, failures + proc.stdout[-3000:]
