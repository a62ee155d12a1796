"""Prometheus, Alertmanager and Grafana files, checked by their own tools where they exist here."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve.runtime.render import (
    ALERTMANAGER_TEMPLATE,
    PROMETHEUS_RULES,
    render_alertmanager,
    render_prometheus,
)
from twinserve.settings import load_stack

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make install)")
RULE_FILES = sorted((REPO_ROOT / PROMETHEUS_RULES).glob("*.yml"))
ALERTS = [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r]


@needs_promtool
def test_promtool_checks_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass():
    tests = REPO_ROOT / "config" / "prometheus" / "tests" / "alerts_test.yml"
    result = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent():
    tests = yaml.safe_load((REPO_ROOT / "config" / "prometheus" / "tests" / "alerts_test.yml").read_text())["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{alert['alert']} never shown firing"
        assert any(not c["exp_alerts"] for c in mine), f"{alert['alert']} never shown silent"


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a["alert"])
def test_every_alert_has_severity_summary_and_description(alert):
    assert alert["labels"]["severity"] in {"critical", "warning"}
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_every_alert_is_explained_in_the_monitoring_doc():
    doc = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    for alert in ALERTS:
        assert f"| `{alert['alert']}` |" in doc, f"{alert['alert']} has no row in docs/monitoring.md"


@needs_promtool
def test_rendered_prometheus_config_is_valid_and_scrapes_every_stack_port(tmp_path):
    stack = load_stack()
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus(stack))
    result = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    targets = {
        t
        for job in yaml.safe_load(config.read_text())["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    expected = {f"127.0.0.1:{c.metrics_port}" for c in stack.colours.values()} | {
        f"127.0.0.1:{stack.nginx.admin_port}",
        f"127.0.0.1:{stack.monitoring.exporter_port}",
        f"127.0.0.1:{stack.monitoring.node_exporter_port}",
        f"127.0.0.1:{stack.monitoring.nginx_exporter_port}",
        f"127.0.0.1:{stack.drift.consumer_metrics_port}",
    }
    assert expected <= targets
    assert not any(str(c.management_port) in t for c in stack.colours.values() for t in targets)


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (make install)")
def test_rendered_alertmanager_config_is_valid(tmp_path):
    stack = load_stack()
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager(stack))
    result = subprocess.run([AMTOOL, "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f":{stack.monitoring.alert_receiver_port}/alerts" in config.read_text()
    assert (REPO_ROOT / ALERTMANAGER_TEMPLATE).is_file()


DASHBOARDS = sorted((REPO_ROOT / "config" / "grafana" / "dashboards").glob("*.json"))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_are_well_formed(path: Path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        # A latency panel plots quantiles or histograms, never a rate of a latency sum.
        for t in panel["targets"]:
            assert "duration_seconds_sum" not in t["expr"] and "latency_microseconds[" not in t["expr"]


def test_grafana_provisioning_points_at_prometheus():
    datasources = yaml.safe_load((REPO_ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert [d["uid"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((REPO_ROOT / "config/grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert providers["providers"][0]["type"] == "file"


def test_prometheus_lifecycle_api_is_off_unless_the_stack_asks_for_it(tmp_path):
    """/-/quit and /-/reload let any local user stop Prometheus: only a stack setting turns them on."""
    import dataclasses

    from twinserve.runtime.monitoring import services

    stack = load_stack(DEFAULT_STACK)
    argv = {s.name: s.argv for s in services(stack)}["prometheus"]
    assert not any("lifecycle" in arg for arg in argv)
    asked = dataclasses.replace(stack, monitoring=dataclasses.replace(stack.monitoring, prometheus_lifecycle=True))
    assert "--web.enable-lifecycle" in {s.name: s.argv for s in services(asked)}["prometheus"]
