"""Monitoring against the real stack: targets, dashboards' queries, an alert end to end."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.checkout import REPO_ROOT
from twinserve.runtime import stack as stack_mod
from twinserve.runtime import torchserve
from twinserve.store.state import read_production

from .helpers import poll

pytestmark = pytest.mark.integration
DASHBOARDS = sorted((REPO_ROOT / "config" / "grafana" / "dashboards").glob("*.json"))


def prometheus(stack, path, **params):
    response = requests.get(
        f"http://127.0.0.1:{stack.monitoring.prometheus_port}/api/v1/{path}", params=params, timeout=10
    )
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def traffic(stack):
    """A short burst of good and bad requests on both routes, then two scrapes."""

    def send(i):
        body = b'{"data": [0.2, 0.6]}' if i % 10 else b'{"data": [true]}'
        route = "/predict" if i % 3 else "/test/predict"
        requests.post(f"{stack.nginx.url}{route}", data=body, headers={"Content-Type": "application/json"}, timeout=10)

    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(300)))
        time.sleep(stack.monitoring.scrape_interval_seconds * 1.5)


def test_every_scrape_target_is_up(stack):
    def all_up():
        targets = prometheus(stack, "targets")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = poll(all_up, timeout=60)
    assert targets, prometheus(stack, "targets")["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    assert jobs == {"torchserve", "nginx", "nginx_exporter", "twinserve", "drift", "node", "prometheus", "alertmanager"}
    assert {t["labels"].get("colour") for t in targets if t["labels"]["job"] == "torchserve"} == set(stack.colours)


def test_prometheus_loaded_the_rules(stack):
    groups = prometheus(stack, "rules")["groups"]
    alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert alerts >= {"TwinserveTargetDown", "TwinserveErrorBudgetBurnFast", "TwinserveHighProductionLatency"}
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_query_returns_data(stack, traffic, dashboard):
    panels = json.loads(dashboard.read_text())["panels"]
    assert panels
    # Each template variable as Grafana sends it with "All" selected (the serving dashboard's `model`).
    templating = json.loads(dashboard.read_text()).get("templating", {}).get("list", [])
    variables = {v["name"]: v.get("allValue", ".*") for v in templating}
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(f"${name}", value)
            result = poll(lambda e=expr: prometheus(stack, "query", query=e)["result"], timeout=30)
            assert result, f"{dashboard.stem}: panel {panel['title']!r}: {target['expr']} returned no data"


def test_production_colour_and_latency_histogram_are_exported(stack, traffic):
    production = read_production(stack)
    result = prometheus(stack, "query", query="twinserve_production == 1")["result"]
    assert {r["metric"]["model"]: r["metric"]["colour"] for r in result} == {
        "regressor": production,
        "digits": read_production(stack, "digits"),
        "sentiment": read_production(stack, "sentiment"),
    }
    query = 'twinserve:latency_seconds:p99{route="production",model="regressor"}'
    p99 = prometheus(stack, "query", query=query)["result"]
    assert p99 and 0 < float(p99[0]["value"][1]) < 5


def test_stopping_production_torchserve_fires_target_down_into_the_receiver(stack):
    production = read_production(stack)
    receiver = f"http://127.0.0.1:{stack.monitoring.alert_receiver_port}/alerts"

    def fired():
        alerts = requests.get(
            receiver, params={"alertname": "TwinserveTargetDown", "status": "firing"}, timeout=5
        ).json()
        return [a for a in alerts if a["labels"].get("colour") == production]

    assert fired() == []
    torchserve.stop(stack, production)
    stopped_at = time.monotonic()
    try:
        # for: 30s, plus a scrape interval, an evaluation and Alertmanager's group_wait.
        alerts = poll(fired, timeout=90)
        took = time.monotonic() - stopped_at
    finally:
        stack_mod.up(stack)
    assert alerts, "TwinserveTargetDown never reached the receiver"
    assert alerts[0]["severity"] == "critical"
    assert alerts[0]["labels"]["job"] == "torchserve"
    assert "roll back" in alerts[0]["annotations"]["description"]
    assert took >= 30, "fired before the rule's 30s 'for'"
