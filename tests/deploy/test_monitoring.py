"""deploy/prometheus/alerts.yml, prometheus.yml and deploy/grafana/posmon.json: they parse, have the shape Prometheus
and Grafana load, and every metric an alert or a panel names is one posmon's /metrics really exports (read from a
real ``Metrics`` instance, so renaming a metric in posmon/metrics.py breaks this test, not the operator's pager)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from posmon.metrics import Metrics
from posmon.notify.kinds import NoticeKind
from tests.deploy.files import DEPLOY, exported_names, label_matchers, metric_names

ALERTS = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
SCRAPE = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana" / "posmon.json").read_text())
EXPORTED = exported_names(Metrics())
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def rules() -> list[dict]:
    return [r for g in ALERTS["groups"] for r in g["rules"]]


def panel_targets() -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every query of every panel."""
    return [(p["title"], t["expr"]) for p in DASHBOARD["panels"] if p["type"] != "row" for t in p["targets"]]


def _balanced(expr: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for c in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if c in depth:
            depth[c] += 1
        elif c in closing:
            depth[closing[c]] -= 1
            if depth[closing[c]] < 0:
                return False
    return not any(depth.values())


def test_the_metric_name_reader_finds_names_and_only_names():
    expr = 'sum by (venue) (rate(posmon_orderz_total{kind="x"}[5m])) > bool 0 or absent(up) unless on(job) foo:bar'
    assert metric_names(expr) == {"posmon_orderz_total", "up", "foo:bar"}
    assert "posmon_orderz_total" not in EXPORTED  # so the check below fails on a misspelt name


def test_the_exported_names_come_from_the_registry():
    for name in ("posmon_price_stream_up", "posmon_orders_total", "posmon_tick_to_order_seconds_bucket"):
        assert name in EXPORTED
    assert {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_info",
        "posmon_build_info",
    } <= EXPORTED


def test_alert_rules_have_the_prometheus_rule_group_shape():
    assert set(ALERTS) == {"groups"} and ALERTS["groups"]
    names = [g["name"] for g in ALERTS["groups"]]
    assert len(names) == len(set(names))
    for group in ALERTS["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"], group.get("name")
    alerts = [r["alert"] for r in rules()]
    assert len(alerts) == len(set(alerts))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip() and _balanced(rule["expr"]), rule["alert"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_alerts_cover_streams_protection_restart_budget_and_failed_closes():
    by_name = {r["alert"]: metric_names(r["expr"]) for r in rules()}
    assert "posmon_price_stream_up" in by_name["PosmonPriceStreamDown"]
    assert "posmon_user_stream_up" in by_name["PosmonUserStreamDown"]
    assert "posmon_unprotected_positions" in by_name["PosmonUnprotectedPosition"]
    assert "posmon_actor_restarts_total" in by_name["PosmonRestartBudgetNear"]
    assert "posmon_restart_budget_exhausted_total" in by_name["PosmonRestartBudgetExhausted"]
    assert "process_start_time_seconds" in by_name["PosmonRestartingRepeatedly"]
    assert "posmon_close_slippage_exhausted_total" in by_name["PosmonCloseFailed"]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_metric_an_alert_names_is_exported(rule):
    names = metric_names(rule["expr"])
    assert names and names <= EXPORTED, names - EXPORTED


def test_every_notice_kind_an_alert_or_panel_matches_exists():
    exprs = [r["expr"] for r in rules()] + [e for _, e in panel_targets()]
    kinds = {value for e in exprs for metric, label, value in label_matchers(e) if metric == "posmon_notices_total"}
    assert kinds and kinds <= {k.value for k in NoticeKind}, kinds


def test_the_scrape_config_loads_the_rules_under_the_job_the_rules_select():
    assert "alerts.yml" in SCRAPE["rule_files"]
    jobs = {c["job_name"] for c in SCRAPE["scrape_configs"]}
    selected = {v for r in rules() for _, label, v in label_matchers(r["expr"]) if label == "job"}
    assert selected and selected <= jobs


def test_the_dashboard_parses_and_every_panel_has_a_query():
    assert DASHBOARD["title"] and DASHBOARD["uid"] and DASHBOARD["schemaVersion"] >= 36
    panels = DASHBOARD["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"], f"panel {p['title']!r} has no target"
        for t in p["targets"]:
            assert t["expr"].strip() and _balanced(t["expr"]) and t["refId"], p["title"]
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    for p in panels:
        used = set(re.findall(r"\$\{?(\w+)", json.dumps(p))) - {"__rate_interval", "__interval", "__range"}
        assert used <= variables, (p["title"], used - variables)


@pytest.mark.parametrize(("title", "expr"), panel_targets(), ids=lambda v: v if len(v) < 40 else None)
def test_every_metric_a_panel_names_is_exported(title, expr):
    names = metric_names(expr)
    assert names and names <= EXPORTED, (title, names - EXPORTED)


def test_the_dashboard_shows_what_an_operator_watches():
    shown = {n for _, e in panel_targets() for n in metric_names(e)}
    for name in (
        "posmon_price_stream_up",
        "posmon_user_stream_up",
        "posmon_open_tranches",
        "posmon_unprotected_positions",
        "posmon_tranches_closed_total",
        "posmon_tick_to_order_seconds_bucket",
        "posmon_rate_limit_headroom",
        "posmon_actor_restarts_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ):
        assert name in shown, name
    for variable in DASHBOARD["templating"]["list"]:
        query = variable.get("definition", "")
        for metric in re.findall(r"label_values\((\w+)", query):
            assert metric in EXPORTED, metric
