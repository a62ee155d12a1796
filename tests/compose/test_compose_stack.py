"""`docker-compose up` on this machine, end to end, through the ports published on 127.0.0.1.

In file order: the stack turns healthy; the seed request and a bad input; network isolation;
a deploy to staging, swaps under wrk load, a rollback, `make pipeline`, state across `down` +
`up`; drift in Prometheus; every target up; a killed process restarted; an alert when a colour's container
stops; `down` leaves nothing. Figures (time to healthy, the swaps' wrk report) are printed in the summary.
"""

import json
import random
import re
import subprocess
import time

import pytest
import requests

from tests.checkout import REPO_ROOT
from tests.integration.helpers import poll as wait_for
from twinserve.compose.configs import COMPOSE_STACK, load
from twinserve.compose.images import VERSION
from twinserve.tools.wrk import WrkRun

from .conftest import PROJECT, prometheus

pytestmark = pytest.mark.compose

STACK, SETTINGS = load(REPO_ROOT / COMPOSE_STACK)
SEED = {"data": [0.2, 0.6]}


def predict(compose, route="/predict", body=SEED):
    return requests.post(f"{compose.url('NGINX')}{route}", json=body, timeout=10)


def production(compose) -> str:
    done = compose.script("which_is_production.sh")
    assert done.returncode == 0, done.stderr
    return re.search(r"production is (\w+)", done.stdout).group(1).lower()


def test_every_service_turns_healthy(compose):
    services = {c["Config"]["Labels"]["com.docker.compose.service"] for c in compose.containers()}
    expected = {"broker", "torchserve_blue", "torchserve_green", "nginx", "prometheus", "alertmanager", "node_exporter",
                "nginx_exporter", "exporter", "alert_receiver", "drift_consumer", "archives"}  # fmt: skip
    assert services == expected
    assert compose.unhealthy() == []
    compose.figures["healthy after `docker-compose up -d`"] = f"{compose.seconds_to_healthy:.0f} s"


def test_the_seed_request_is_answered_by_a_container(compose):
    answer = predict(compose)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Served-By"] == "blue" and answer.headers["X-Model-Version"] == "1.0"
    assert answer.json()["output"] == pytest.approx(0.12997, abs=1e-4)


@pytest.mark.parametrize("body", ['{"data": [0.2]}', '{"data": [0.2, "x"]}', "not json", '{"rows": []}'])
def test_a_bad_input_is_a_400_with_a_json_error(compose, body):
    answer = requests.post(f"{compose.url('NGINX')}/predict", data=body, timeout=10)
    assert answer.status_code == 400, answer.text
    assert "error" in answer.json()


PROBE = """
import json, sys, urllib.request, urllib.error
out = {}
for name, url in json.loads(sys.argv[1]).items():
    try:
        out[name] = urllib.request.urlopen(url, timeout=3).status
    except urllib.error.HTTPError as exc:
        out[name] = exc.code
    except OSError as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""


def probe(network: str, urls: dict[str, str]) -> dict:
    """What a fresh container on `network` alone gets from each URL: an HTTP status or an error name."""
    argv = ["docker", "run", "--rm", "--network", f"{PROJECT}_{network}", "--entrypoint", "python3",
            f"twinserve:{VERSION}", "-c", PROBE, json.dumps(urls)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_only_the_control_network_reaches_the_switch_and_management(compose):
    blue = STACK.colours["blue"]
    switch = f"http://nginx:{STACK.nginx.admin_port}/production"
    urls = {
        "switch": switch,
        "management": f"http://torchserve_blue:{blue.management_port}/models",
        "metrics": f"http://torchserve_blue:{blue.metrics_port}/metrics",
        "inference": f"http://torchserve_blue:{blue.inference_port}/ping",
    }
    control = probe("control", urls)
    # The switch answers the control network, and without the admin token refuses it (401, not 403).
    assert control["switch"] == 401 and control["management"] == 200, control
    serving = probe("serving", urls)
    assert serving["inference"] == 200, serving
    assert serving["switch"] == 403, serving  # Nginx is there, its admin server refuses this network
    assert serving["management"] == "URLError" and serving["metrics"] == "URLError", serving  # not bound there
    monitoring = probe("monitoring", urls)
    assert monitoring["metrics"] == 200, monitoring
    assert monitoring["management"] == "URLError" and monitoring["inference"] == "URLError", monitoring
    drift = probe("drift", urls)
    assert set(drift.values()) == {"URLError"}, drift  # Nginx is not on it; no TorchServe API binds there


def test_a_deploy_puts_a_new_version_on_staging(compose):
    done = compose.script("deploy_model.sh", "models/regressor")
    assert done.returncode == 0, done.stderr
    version = re.search(r"regressor (\S+) is on green \(staging\)", done.stdout).group(1)
    answer = predict(compose, "/test/predict")
    assert answer.status_code == 200 and answer.headers["X-Served-By"] == "green"
    assert answer.headers["X-Model-Version"] == version
    assert predict(compose).headers["X-Served-By"] == "blue"
    compose.deployed = version


def test_ten_swaps_under_load_fail_no_request(compose):
    load = WrkRun(f"{compose.url('NGINX')}/predict", connections=50)
    seen = []
    try:
        time.sleep(1)
        for _ in range(10):
            done = compose.script("swap_deploy.sh")
            assert done.returncode == 0, done.stderr
            seen.append(predict(compose).headers["X-Served-By"])
    finally:
        report = load.stop()
    compose.figures["10 swaps under wrk -t2 -c50 on /predict"] = (
        f"{report.requests} requests in {report.seconds:.1f} s, socket errors {report.socket_errors}, "
        f"non-2xx {report.non_2xx}, p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms"
    )
    assert seen == ["green", "blue"] * 5
    assert report.requests > 0 and report.socket_errors == 0 and report.non_2xx == 0, report


def test_a_rollback_returns_production_to_the_previous_colour(compose):
    assert compose.script("swap_deploy.sh").returncode == 0
    assert production(compose) == "green"
    done = compose.script("rollback.sh")
    assert done.returncode == 0, done.stderr
    assert "production is BLUE (was GREEN)" in done.stdout
    assert predict(compose).headers["X-Served-By"] == "blue"


def test_make_pipeline_ships_a_version_through_every_gate(compose):
    done = subprocess.run(
        ["make", "-s", "pipeline", "APPROVE=1"], cwd=REPO_ROOT, env=compose.env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    version = re.search(r"outcome: promoted: (\S+) serves /predict from green", done.stdout).group(1)
    for stage in ("test", "train", "archive", "deploy", "smoke", "loadgate", "approve", "promote", "bake"):
        assert re.search(rf"^{stage} +passed", done.stdout, re.M), (stage, done.stdout[-3000:])
    answer = predict(compose)
    assert answer.headers["X-Served-By"] == "green" and answer.headers["X-Model-Version"] == version
    compose.deployed = version


def test_production_and_versions_survive_down_and_up(compose):
    assert production(compose) == "green"  # where the pipeline promoted its version
    compose.run("down")
    compose.figures["healthy again after `down` + `up -d`"] = f"{compose.up():.0f} s"
    assert production(compose) == "green"
    answer = predict(compose)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Served-By"] == "green" and answer.headers["X-Model-Version"] == compose.deployed
    staging = predict(compose, "/test/predict")
    assert staging.headers["X-Served-By"] == "blue" and staging.headers["X-Model-Version"] == "1.0"


def test_shifted_inputs_move_the_drift_zscore_in_prometheus(compose):
    stats = json.loads((REPO_ROOT / "model_store" / f"regressor-{compose.deployed}.json").read_text())
    x1, x2 = stats["reference_stats"]["x1"], stats["reference_stats"]["x2"]
    rng = random.Random(7)
    for _ in range(12):  # 768 rows, x1 shifted by one training std: z ~ sqrt(500) ~ 22 over the window
        rows = [[rng.gauss(x1["mean"] + x1["std"], x1["std"]), rng.gauss(x2["mean"], x2["std"])] for _ in range(64)]
        assert predict(compose, body={"data": rows}).status_code == 200
    query = f'twinserve_drift_zscore{{version="{compose.deployed}"}}'

    def zscores():
        found = {r["metric"]["feature"]: float(r["value"][1]) for r in prometheus(compose, query)}
        return found if found.get("x1", 0) > 10 else None

    found = wait_for(zscores, timeout=90)
    assert found, prometheus(compose, query)
    assert abs(found["x2"]) < 4, found


def test_every_prometheus_target_is_up(compose):
    def targets():
        active = requests.get(f"{compose.url('PROMETHEUS')}/api/v1/targets", timeout=10).json()["data"]
        return {f"{t['labels']['job']} {t['scrapeUrl']}": t["health"] for t in active["activeTargets"]}

    found = wait_for(lambda: (t := targets()) and set(t.values()) == {"up"} and t, timeout=60)
    assert found, targets()
    jobs = {name.split()[0] for name in found}
    assert {"torchserve", "nginx", "nginx_exporter", "twinserve", "drift", "node", "prometheus"} <= jobs, jobs


def test_a_service_whose_process_dies_is_restarted(compose):
    """Supervision in compose is the restart policy: the exporter's process is killed, Docker starts it again."""

    def restarts() -> int:
        [container] = compose.containers("exporter")
        return container["RestartCount"]

    before = restarts()
    kill = "import os, signal; os.kill(1, signal.SIGTERM)"  # PID 1 is the init, which passes it on
    compose.run("exec", "-T", "exporter", "python", "-c", kill, check=False)
    assert wait_for(lambda: restarts() > before, timeout=60, every=1), "the exporter was not restarted"
    assert wait_for(lambda: "exporter" not in " ".join(compose.unhealthy()), timeout=90, every=2)


def test_a_stopped_colour_reaches_the_alert_receiver(compose):
    compose.run("stop", "torchserve_blue")  # staging now: production (green) goes on serving
    try:
        assert predict(compose).status_code == 200

        def received():
            alerts = requests.get(
                f"{compose.url('ALERTS')}/alerts",
                params={"alertname": "TwinserveTargetDown", "status": "firing"},
                timeout=5,
            ).json()
            return [a for a in alerts if a["labels"].get("colour") == "blue"]

        alerts = wait_for(received, timeout=180, every=5)
        assert alerts, prometheus(compose, 'ALERTS{alertname="TwinserveTargetDown"}')
        assert alerts[0]["severity"] == "critical"
    finally:
        compose.run("start", "torchserve_blue")


def test_down_leaves_no_container_or_network_of_the_project(compose):
    compose.run("down", "-v")
    assert compose.leftovers() == []
