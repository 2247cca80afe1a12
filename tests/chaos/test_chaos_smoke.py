"""``make chaos``: the invariants catch what they name, and the campaign's smoke runs end to end.

The invariant checks are proved on hand-built accounts and stores (an unprotected position, an orphan, a doubled
leg, a fill past zero, a traceback); the smoke runs ``python -m chaos --smoke`` as CI does: both venues, the real
daemon as a process, SIGKILLs and faults, and the JSON and table it must produce.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import orjson

from chaos.invariants import INVARIANTS, check_history, check_log, check_state, read_store
from chaos.run import Options, plan, venue_for
from chaos.venues import AsterVenue, LighterVenue
from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side
from posmon.store.store import Store

ROOT = Path(__file__).resolve().parents[2]


def store_with(
    path: Path,
    tranches: list[tuple[int, str, str, str]],
    orders: list[tuple[str, int, str, str]],
) -> Path:
    """A posmon store holding open tranches (id, symbol, side, qty) and active orders (client id, tranche, ...)."""
    Store.open(path).close()
    conn = sqlite3.connect(path)
    for tid, symbol, side, qty in tranches:
        tp, sl = ("45450", "44100") if side == "LONG" else ("44550", "45900")  # 1 % and 2 % from 45000
        conn.execute(
            "INSERT INTO tranches (id, venue, symbol, side, idx, entry, qty, tp, sl, status) VALUES "
            "(?, 'aster', ?, ?, 0, '45000', ?, ?, ?, 'open')",
            (tid, symbol, side, qty, tp, sl),
        )
    for client_id, tid, purpose, qty in orders:
        conn.execute(
            "INSERT INTO orders (client_id, tranche_id, venue, symbol, purpose, qty, state) VALUES "
            "(?, ?, 'aster', 'BTCUSDT', ?, ?, 'LIVE')",
            (client_id, tid, purpose, qty),
        )
    conn.commit()
    conn.close()
    return path


def aster_long(qty: str = "0.01") -> AsterVenue:
    venue = AsterVenue(("BTCUSDT",))
    venue.exchange.external_entry("BTCUSDT", Side.LONG, D(qty))
    return venue


def rest(venue: AsterVenue, client_id: str, qty: str, *, sl: bool) -> None:
    kind = (
        dict(type=OrderType.STOP_MARKET, stop_price=D("44100")) if sl else dict(type=OrderType.LIMIT, price=D("45450"))
    )
    venue.exchange.place_orders([OrderRequest(client_id, "BTCUSDT", OrderSide.SELL, "LONG", qty=D(qty), **kind)])


def names(violations) -> set[str]:
    return {v.invariant for v in violations}


def test_a_position_with_its_tp_and_sl_for_the_tranche_passes(tmp_path: Path):
    venue = aster_long()
    rest(venue, "pm-1-T1", "0.01", sl=False)
    rest(venue, "pm-1-S1", "0.01", sl=True)
    store = store_with(tmp_path / "s.sqlite", [(1, "BTCUSDT", "LONG", "0.01")], [])
    assert check_state(venue, read_store(store)) == []


def test_a_position_without_a_tranche_is_unprotected_and_disagrees_with_the_store(tmp_path: Path):
    venue = aster_long()
    store = store_with(tmp_path / "s.sqlite", [], [])
    assert names(check_state(venue, read_store(store))) == {"covered", "store_matches_venue"}


def test_a_missing_sl_a_doubled_tp_and_a_short_leg_each_break_coverage(tmp_path: Path):
    venue = aster_long("0.02")
    rest(venue, "pm-1-T1", "0.01", sl=False)
    rest(venue, "pm-1-T2", "0.01", sl=False)
    rest(venue, "pm-2-T1", "0.01", sl=False)
    rest(venue, "pm-2-S1", "0.005", sl=True)
    store = store_with(tmp_path / "s.sqlite", [(1, "BTCUSDT", "LONG", "0.01"), (2, "BTCUSDT", "LONG", "0.01")], [])
    details = [v.detail for v in check_state(venue, read_store(store)) if v.invariant == "covered"]
    assert len(details) == 3
    assert any("#1" in d and "2 resting TP" in d for d in details)
    assert any("#1" in d and "0 resting SL" in d for d in details)
    assert any("#2" in d and "SL pm-2-S1 for 0.005" in d for d in details)


def test_an_exit_of_a_closed_tranche_or_a_foreign_purpose_is_an_orphan(tmp_path: Path):
    venue = aster_long()
    rest(venue, "pm-1-T1", "0.01", sl=False)
    rest(venue, "pm-1-S1", "0.01", sl=True)
    rest(venue, "pm-7-S1", "0.01", sl=True)  # tranche 7 is not open
    store = store_with(tmp_path / "s.sqlite", [(1, "BTCUSDT", "LONG", "0.01")], [])
    (violation,) = check_state(venue, read_store(store))
    assert violation.invariant == "no_orphan_order" and "pm-7-S1" in violation.detail


def test_lighter_rests_no_posmon_order_and_needs_the_tranches_to_sum_to_the_position(tmp_path: Path):
    venue = LighterVenue(("BTC",))
    venue.sim.external_entry("BTC", Side.SHORT, D("0.01"))
    store = store_with(tmp_path / "s.sqlite", [(1, "BTC", "SHORT", "0.004")], [])
    (violation,) = check_state(venue, read_store(store))
    assert violation.invariant == "store_matches_venue" and "venue 0.01" in violation.detail


def test_lighter_tranche_left_open_with_the_mark_through_its_stop_is_not_covered(tmp_path: Path):
    venue = LighterVenue(("BTC",))
    venue.sim.external_entry("BTC", Side.LONG, D("0.01"))
    store = store_with(tmp_path / "s.sqlite", [(1, "BTC", "LONG", "0.01")], [])  # TP 45450, SL 44100
    assert check_state(venue, read_store(store)) == []
    venue.set_marks({"BTC": D("44000")})
    (violation,) = check_state(venue, read_store(store))
    assert violation.invariant == "covered" and "through its exit" in violation.detail


def test_history_flags_a_fill_that_grew_or_flipped_a_position_and_an_id_traded_twice():
    venue = LighterVenue(("BTC",))
    venue.sim.external_entry("BTC", Side.LONG, D("0.01"))
    from posmon.sim.engine import Fill

    venue.fill_log.fills.append(Fill("pm-1-C1", "BTC", "BOTH", True, D("0.02"), D("0.01"), D("-0.01")))
    venue.fill_log.executed_by_client["pm-1-C1"] = {"281474976710657", "281474976710660"}
    found = check_history(venue.fill_log)
    assert names(found) == {"no_close_past_zero", "no_double_execution"}


def test_a_traceback_in_the_log_is_a_violation_naming_the_exception():
    text = "ok\nTraceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'BTC'\nmore\n"
    (violation,) = check_log(text)
    assert violation.invariant == "no_traceback" and "KeyError: 'BTC'" in violation.detail
    assert check_log("INFO all fine\n") == []


def test_a_seed_replays_the_same_schedule_and_both_alternates_venues_by_seed():
    opts = Options(duration=5.0)
    first, again = plan(41, AsterVenue(), opts), plan(41, AsterVenue(), opts)
    assert first.actions == again.actions and first.kills == again.kills and first.pre_entries == again.pre_entries
    assert plan(42, AsterVenue(), opts).actions != first.actions
    assert {venue_for(s, "both") for s in (41, 42)} == {"aster", "lighter"} and venue_for(41, "both") == venue_for(
        41, "both"
    )
    assert 1 <= len(first.kills) <= 3 and any(a.kind == "fault" for a in first.actions)


def test_smoke_campaign_kills_injects_faults_checks_every_invariant_and_reports(tmp_path: Path):
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", "--smoke", "--seed", "7", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = orjson.loads(out.read_bytes())
    for key in (
        "runs",
        "kills",
        "faults",
        "faults_by_kind",
        "violations_by_invariant",
        "time_to_protect_s",
        "settle_s",
        "seeds",
        "failing_seeds",
        "by_venue",
        "results",
    ):
        assert key in summary, key
    assert summary["runs"] == 4 and set(summary["by_venue"]) == {"aster", "lighter"}
    assert summary["kills"] >= 2 and summary["faults"] >= 4
    assert set(summary["violations_by_invariant"]) == set(INVARIANTS)
    assert summary["time_to_protect_s"]["count"] >= 1
    assert "violations covered" in proc.stdout and "SIGKILLs" in proc.stdout
    failures = "\n".join(f"{f['replay']}: {f['invariants']}" for f in summary["failing_seeds"])
    assert summary["failed_runs"] == 0 and proc.returncode == 0, failures
