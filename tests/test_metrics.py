"""Metrics: the actors' inc/set/get API, the Prometheus text at /metrics, and every used name declared."""

from __future__ import annotations

import ast
import logging
import platform
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import posmon
from posmon.metrics import METRICS, MetricError, Metrics, render

ROOT = Path(__file__).resolve().parent.parent


def scrape(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> {sorted labels: value}, parsed with prometheus-client's own text parser."""
    body, content_type = render(metrics)
    assert content_type.startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_counters_move_in_the_scraped_text_as_inc_is_called() -> None:
    m = Metrics(strict=True)
    assert scrape(m).get("posmon_price_frames_total", {}) == {}
    m.inc("price_frames", venue="aster")
    m.inc("price_frames", venue="aster")
    m.inc("orders", venue="aster", type="STOP_MARKET", result="placed")
    text = scrape(m)
    assert text["posmon_price_frames_total"] == {(("venue", "aster"),): 2}
    assert text["posmon_orders_total"] == {(("result", "placed"), ("type", "STOP_MARKET"), ("venue", "aster")): 1}
    m.inc("price_frames", 3, venue="aster")
    assert scrape(m)["posmon_price_frames_total"] == {(("venue", "aster"),): 5}


def test_get_reads_one_label_set_or_sums_a_counter_over_label_sets() -> None:
    m = Metrics(strict=True)
    m.inc("actor_restarts", actor="position")
    m.inc("actor_restarts", 2, actor="gateway")
    m.set("gateway_queue_depth", 7, venue="sim")
    m.set("position_actors", 3, venue="sim")
    assert m.get("actor_restarts", actor="position") == 1
    assert m.get("actor_restarts") == 3
    assert m.get("actor_restarts", actor="never") == 0
    assert m.get("gateway_queue_depth", venue="sim") == 7
    assert m.get("position_actors") == 3
    assert m.counters[("actor_restarts", (("actor", "gateway"),))] == 2
    m.inc("orders", venue="aster", type="LIMIT", result="placed")
    m.inc("orders", venue="aster", type="STOP_MARKET", result="placed")
    m.inc("orders", venue="aster", type="STOP_MARKET", result="rejected")
    assert m.get("orders", result="placed") == 2 and m.get("orders", type="STOP_MARKET") == 2


async def test_last_frame_age_is_computed_at_scrape_time(autojump_clock: trio.testing.MockClock) -> None:
    m = Metrics(strict=True)
    m.set("price_last_frame", trio.current_time(), venue="aster")
    await trio.sleep(12.5)
    assert scrape(m)["posmon_price_last_frame_age_seconds"] == {(("venue", "aster"),): 12.5}
    assert m.get("price_last_frame", venue="aster") == pytest.approx(trio.current_time() - 12.5)


def test_tick_to_order_histogram_observes_seconds() -> None:
    m = Metrics(strict=True)
    m.observe("tick_to_order_seconds", 0.004, venue="aster")
    m.observe("tick_to_order_seconds", 0.3, venue="aster")
    text = scrape(m)
    assert text["posmon_tick_to_order_seconds_count"] == {(("venue", "aster"),): 2}
    assert text["posmon_tick_to_order_seconds_bucket"][(("le", "0.005"), ("venue", "aster"))] == 1
    assert m.get("tick_to_order_seconds", venue="aster") == 2


def test_two_daemons_in_one_process_keep_separate_registries() -> None:
    a, b = Metrics(strict=True), Metrics(strict=True)
    a.inc("price_frames", venue="sim")
    assert a.get("price_frames") == 1 and b.get("price_frames") == 0


def test_openmetrics_is_served_when_the_scraper_asks_for_it() -> None:
    m = Metrics()
    m.inc("notify_sent", channel="telegram")
    body, content_type = render(m, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_undeclared_names_fail_in_strict_mode_and_are_logged_once_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(MetricError, match="not declared"):
        Metrics(strict=True).inc("price_framez", venue="sim")
    with pytest.raises(MetricError, match=r"takes labels \['venue'\]"):
        Metrics(strict=True).inc("price_frames", symbol="BTCUSDT")
    with pytest.raises(MetricError, match="is a gauge"):
        Metrics(strict=True).inc("price_stream_up", venue="sim")
    lenient = Metrics()
    with caplog.at_level(logging.ERROR, logger="posmon.metrics"):
        for _ in range(3):
            lenient.inc("price_framez", venue="sim")
    assert [r.getMessage().count("price_framez") > 0 for r in caplog.records] == [True]
    assert lenient.get("price_framez") == 0


def _metric_calls() -> list[tuple[str, str, str, frozenset[str]]]:
    """Every ``<...>metrics.inc/set/observe("name", ..., label=...)`` in posmon/ and bench/, found by parsing."""
    calls = []
    for path in sorted([*ROOT.joinpath("posmon").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("inc", "set", "observe")
                and "metrics" in ast.unparse(node.func.value)
            ):
                continue
            assert node.args and isinstance(node.args[0], ast.Constant), f"{path}:{node.lineno}: name not a literal"
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            calls.append((where, node.func.attr, node.args[0].value, frozenset(k.arg for k in node.keywords)))
    return calls


def test_every_metric_the_code_uses_is_declared_with_its_labels() -> None:
    calls = _metric_calls()
    assert len(calls) > 20  # the scan really found the actors' calls
    m = Metrics(strict=True)
    for where, method, name, labels in calls:
        try:
            getattr(m, method)(name, 1, **{label: "x" for label in labels})
        except MetricError as exc:
            pytest.fail(f"{where}: {exc}")


def test_every_declared_metric_has_help_and_a_unique_exported_name() -> None:
    assert all(spec.help for spec in METRICS)
    exported = [spec.exported for spec in METRICS]
    assert len(exported) == len(set(exported))


def test_process_and_platform_metrics_are_exported_on_posmons_own_registry() -> None:
    m = Metrics(strict=True)
    text = scrape(m)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds"):
        assert name in text and next(iter(text[name].values())) > 0, name
    assert "process_open_fds" in text
    (labels,) = text["python_info"]
    assert dict(labels)["implementation"] == platform.python_implementation()


def test_build_info_names_the_version_python_and_venue() -> None:
    m = Metrics(strict=True)
    assert scrape(m).get("posmon_build_info", {}) == {}
    m.set_build_info("aster")
    info = scrape(m)["posmon_build_info"]
    assert info == {
        (("python", platform.python_version()), ("venue", "aster"), ("version", posmon.__version__)): 1.0,
    }
