"""The benchmark's smoke version runs end to end, writes every figure as valid JSON and leaves nothing behind.

It asserts that the pipeline produces each figure with a sane value, never a timing threshold: at toy sizes on a
shared CI machine the values say nothing about the targets (``make bench`` measures those).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _get(data: dict, path: str):
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


LATENCIES = [
    f"latency.{w}.{fig}.{k}"
    for w in ("1hz", "10hz")
    for fig in ("tick_to_order", "tick_to_close")
    for k in ("p50_ms", "p99_ms", "max_ms")
] + [  # the per-stage breakdown, the close's two stages included
    f"latency.{w}.breakdown.{stage}.p99_ms"
    for w in ("1hz", "10hz")
    for stage in (
        "write_to_router",
        "router_to_gateway_call",
        "gateway_call_to_received",
        "cancel_received_to_close_call",
        "close_call_to_received",
    )
]
# Differences of two processes' resident sizes: at smoke sizes a few dozen tranches apart, allocator noise (and the
# malloc_trim after start-up) can make them negative; they must be there and be numbers.
FINITE = ["memory.kib_per_tranche_marginal"]
POSITIVE = [  # numbers that must be there and above zero
    *LATENCIES,
    "throughput.max_updates_per_s",
    "memory.working_set.VmRSS",
    "memory.working_set.tranches",
    "memory.large_store.VmRSS",
    "memory.large_store.tranches",
    "memory.kib_per_tranche_large_store",
    "startup.working_set.recovered_s",
    "startup.large_store.recovered_s",
    "startup.large_store.actors_loaded_s",
    *(f"rest.per_event.{k}.calls_per_event" for k in ("protected_fill", "tranche_update", "instant_close", "tp_fill")),
    *(f"rest.comparison.{k}.baseline" for k in ("protected_fill", "tranche_update", "instant_close")),
    "lighter_burst.price_to_tx.p50_ms",
    "lighter_burst.price_to_tx.max_ms",
    *(
        f"parse.{i}.{f}"
        for i in (
            "aster_marks_doc",
            "aster_marks_sim",
            "lighter_market_stats",
            "aster_open_orders",
            "aster_position_risk",
        )
        for f in ("before_ms", "by_field_ms", "typed_ms")
    ),
]
NON_NEGATIVE = [
    "throughput.cpu_at_1hz_pct",
    "throughput.cpu_at_1hz_idle_pct",
    "rest.comparison.idle_polling_per_hour.posmon",
    "rest.example_hour.reduction_pct",
    "latency.1hz.machine_load.others_cpu_pct",
]
TARGETS = (
    "p99_tick_to_order_1hz_ms",
    "p99_tick_to_close_1hz_ms",
    "p99_tick_to_order_10hz_ms",
    "p99_tick_to_close_10hz_ms",
    "updates_per_s",
    "kib_per_idle_tranche",
    "startup_100k_s",
    "rest_calls_per_protected_fill",
    "rest_reduction_pct",
    "lighter_burst_p50_ms",
    "startup_12k_s",
    "kib_per_idle_tranche_after_startup",
    "mark_frame_parse_speedup",
)


def _our_processes(marker: str) -> list[int]:
    """Processes still running with ``marker`` in their environment (the benchmark's children carry it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in env:
            found.append(int(proc.name))
    return found


def test_smoke_benchmark_writes_every_figure_and_cleans_up(tmp_path):
    results, scratch = tmp_path / "results", tmp_path / "scratch"
    scratch.mkdir()
    # The benchmark's work directory goes under TMPDIR, and its processes inherit it: both must be gone after.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    files = list(results.glob("*-smoke.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["kind"] == "smoke"
    assert data["machine"]["cpu_count"] == os.cpu_count()
    assert len(data["git_commit"]) == 40 or data["git_commit"] == "unknown"
    for path in POSITIVE:
        value = _get(data, path)
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (path, value)
    for path in FINITE:
        value = _get(data, path)
        assert isinstance(value, int | float) and math.isfinite(value), (path, value)
    for path in NON_NEGATIVE:
        value = _get(data, path)
        assert isinstance(value, int | float) and value >= 0, (path, value)
    for w in ("1hz", "10hz"):
        lat = data["latency"][w]
        assert lat["tick_to_order"]["count"] == lat["triggers_planned"] > 0
        assert lat["missing"] == 0 and lat["unexpected_closes"] == 0
        assert lat["tick_to_order"]["p50_ms"] <= lat["tick_to_order"]["p99_ms"] <= lat["tick_to_order"]["max_ms"]
    assert data["throughput"]["levels"] and all(
        lv["frame_lag"]["received"] == lv["frame_lag"]["frames"] for lv in data["throughput"]["levels"]
    )
    assert data["startup"]["working_set"]["finished"] and data["startup"]["large_store"]["finished"]
    assert data["memory"]["large_store"]["tranches"] > data["memory"]["working_set"]["tranches"]
    # Counted, not timed: a protected fill is one batch call (TP and SL together) on any machine.
    assert data["rest"]["per_event"]["protected_fill"]["calls_per_event"] == 1
    assert data["rest"]["failures"] == []
    assert data["lighter_burst"]["missing"] == 0 and data["lighter_burst"]["price_to_tx"]["count"] > 0
    assert set(data["targets"]) == set(TARGETS)
    assert all(data["targets"][k]["value"] is not None for k in TARGETS)
    assert "Tick-to-order" in proc.stdout and "Targets" in proc.stdout

    assert list(scratch.iterdir()) == []  # the work directory (stores, logs) was removed
    assert _our_processes(f"TMPDIR={scratch}") == []  # the simulator and daemon processes are gone
