"""Blue/green against the real stack: routing, deploy, swap, rollback, restarts.

The tests share one stack but not its history: each starts by putting the
stack into the state it needs (helpers.arrange: the production colour and the
version each colour serves), so they pass in any order. The file's order is
still the story an operator would live.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import threading

import pytest
import requests

from archiver import read_metadata
from tests.checkout import REPO_ROOT
from tests.integration.conftest import free_ports
from tests.integration.helpers import arrange, poll
from twinserve.errors import ConfigError, PreflightError
from twinserve.release import deploy, promote
from twinserve.runtime import nginx, torchserve
from twinserve.runtime import stack as stack_mod
from twinserve.store.archives import next_version
from twinserve.store.state import production_file, read_deployments, read_production
from twinserve.tools.swapcheck import swaps_under_load

pytestmark = pytest.mark.integration
ROW = {"data": [0.2, 0.6]}


def predict(stack, path="/predict"):
    return requests.post(f"{stack.nginx.url}{path}", json=ROW, timeout=10)


def served(stack, path="/predict"):
    response = predict(stack, path)
    assert response.status_code == 200, response.text
    return response.headers["X-Served-By"], response.headers["X-Model-Version"]


def cli(stack, script, *args):
    env = {**os.environ, "TWINSERVE_STACK": str(stack.path)}
    return subprocess.run([str(REPO_ROOT / "scripts" / script), *args], env=env, capture_output=True, text=True)


@pytest.fixture
def blue_serves_1_0_green_1_0(stack):
    """As after `make up` on a new install: blue is production, both colours serve 1.0."""
    arrange(stack, "blue", {"blue": "1.0", "green": "1.0"})


@pytest.fixture
def blue_serves_1_0_green_1_1(stack):
    """A new version deployed to staging (green), not promoted yet."""
    arrange(stack, "blue", {"blue": "1.0", "green": "1.1"})


@pytest.fixture
def green_serves_1_1_blue_1_0(stack):
    """The new version promoted: green is production, blue keeps the previous version."""
    arrange(stack, "green", {"green": "1.1", "blue": "1.0"})


@pytest.fixture
def running(stack):
    """Every part runs (an earlier test may have stopped a colour or the whole stack); the rest as found."""
    stack_mod.up(stack)


@pytest.mark.usefixtures("blue_serves_1_0_green_1_0")
def test_as_after_a_new_install_blue_is_production_green_is_staging(stack):
    assert served(stack) == ("blue", "1.0")
    assert served(stack, "/test/predict") == ("green", "1.0")
    result = cli(stack, "which_is_production.sh")
    assert result.returncode == 0
    assert result.stdout.strip() == "production is BLUE"


@pytest.mark.usefixtures("blue_serves_1_0_green_1_0")
def test_deploy_reaches_staging_while_production_keeps_answering(stack, workdir):
    answers, stop = [], threading.Event()

    def production_traffic():
        while not stop.is_set():
            answers.append(served(stack))

    thread = threading.Thread(target=production_traffic)
    thread.start()
    try:
        result = cli(stack, "deploy_model.sh", str(stack.model_store / "regressor-1.1.mar"))
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert "regressor 1.1 is on green" in result.stdout
    assert answers and set(answers) == {("blue", "1.0")}
    assert served(stack, "/test/predict") == ("green", "1.1")
    versions = [d["modelVersion"] for d in torchserve.Management(stack, "green").describe("regressor")]
    assert versions == ["1.1"], "older versions on staging are retired"
    stored = sorted(p.name for p in stack.colour_store("green").glob("regressor-*.mar"))
    assert stored == ["regressor-1.1.mar"], "and their copies pruned from the colour's store"
    assert (stack.colour_store("green") / "digits-1.0.mar").is_file(), "another model's archive is not touched"
    assert (stack.colour_store("blue") / "regressor-1.0.mar").is_file(), "production's archive stays"
    assert read_deployments(stack) == {
        "blue": {"regressor": "1.0", "digits": "1.0", "sentiment": "1.0"},
        "green": {"regressor": "1.1", "digits": "1.0", "sentiment": "1.0"},  # the other models are not touched
    }


def test_deploy_refuses_an_archive_outside_the_model_store(stack, tmp_path):
    outside = tmp_path / "regressor-1.1.mar"
    shutil.copy(stack.model_store / "regressor-1.1.mar", outside)
    with pytest.raises(ConfigError, match="not in the model store"):
        deploy.deploy(stack, outside)
    result = cli(stack, "deploy_model.sh", str(tmp_path / "nothing-here"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "error:" in result.stderr


@pytest.mark.usefixtures("blue_serves_1_0_green_1_1")
def test_swap_is_refused_when_the_smoke_test_fails(stack):
    meta_path = stack.model_store / "regressor-1.1.json"
    original = meta_path.read_text()
    meta = json.loads(original)
    meta["golden_set"][0]["output"] += 1.0
    meta_path.write_text(json.dumps(meta))
    try:
        result = cli(stack, "swap_deploy.sh")
    finally:
        meta_path.write_text(original)
    assert result.returncode == 1
    assert "smoke test of green 1.1" in result.stderr and result.stderr.count("\n") == 1
    assert read_production(stack) == "blue"
    assert nginx.get_production(stack) == "blue"
    assert served(stack) == ("blue", "1.0")


@pytest.mark.usefixtures("blue_serves_1_0_green_1_1")
def test_swap_promotes_staging(stack):
    result = cli(stack, "swap_deploy.sh")
    assert result.returncode == 0, result.stderr
    assert served(stack) == ("green", "1.1")
    assert served(stack, "/test/predict") == ("blue", "1.0")
    assert cli(stack, "which_is_production.sh").stdout.strip() == "production is GREEN"
    assert production_file(stack).read_text().strip() == "green"


@pytest.mark.usefixtures("green_serves_1_1_blue_1_0")
def test_rollback_returns_to_the_previous_colour(stack):
    result = cli(stack, "rollback.sh")
    assert result.returncode == 0, result.stderr
    assert served(stack) == ("blue", "1.0")
    assert cli(stack, "which_is_production.sh").stdout.strip() == "production is BLUE"


@pytest.mark.usefixtures("blue_serves_1_0_green_1_1")
def test_swaps_and_a_deploy_under_load_fail_no_request(stack, workdir):
    """The bounded CI version of `make swapcheck`: wrk -c50 keep-alive on /predict."""
    before = read_production(stack)
    version = next_version(stack, "regressor")  # the model directory is archived at the next version
    result = swaps_under_load(stack, swaps=6, deploy_source=workdir / "models" / "regressor")
    report = result.report
    assert report.requests > 1000
    assert report.socket_errors == 0
    assert report.non_2xx == 0
    assert f"regressor {version} is on" in result.deployed
    assert read_production(stack) == before  # an even number of swaps
    assert nginx.get_production(stack) == before


@pytest.mark.usefixtures("running")
def test_access_logs_are_split_by_route_with_upstream_timing(stack):
    logs = stack.var_dir / "logs"
    routes = {"/predict": logs / "access_production.log", "/test/predict": logs / "access_test.log"}

    def lines(path):
        return path.read_text().splitlines() if path.is_file() else []

    before = {route: len(lines(log)) for route, log in routes.items()}
    for route in routes:
        predict(stack, route)
    for route, log in routes.items():  # Nginx writes its buffer at least once a second
        assert poll(lambda log=log, route=route: len(lines(log)) > before[route], timeout=10, every=0.5), log.name
        assert all(f"POST {route} " in line or f"POST {route}/" in line for line in lines(log))  # any model's
        assert "urt=" in lines(log)[-1] and "colour=" in lines(log)[-1]
        assert all(any(f" model={m} " in line for m in stack.models) for line in lines(log))


@pytest.mark.usefixtures("blue_serves_1_0_green_1_1")
def test_a_colour_that_is_down_gives_json_502_and_cannot_be_promoted(stack):
    staging = stack.other(read_production(stack))
    torchserve.stop(stack, staging)
    try:
        response = predict(stack, "/test/predict")
        assert response.status_code == 502
        assert "error" in response.json()
        assert response.headers["X-Served-By"] == staging
        with pytest.raises(PreflightError, match=f"{staging} is down"):
            promote.swap(stack)
        assert predict(stack).status_code == 200
        assert requests.get(f"{stack.nginx.url}/healthz", timeout=5).status_code == 200
    finally:
        assert stack_mod.up(stack) == [torchserve.process_name(staging)]
    assert predict(stack, "/test/predict").status_code == 200


@pytest.mark.usefixtures("blue_serves_1_0_green_1_1")
def test_state_survives_a_restart(stack):
    promote.swap(stack)
    production = read_production(stack)
    deployments = read_deployments(stack)
    stack_mod.down(stack)
    with pytest.raises(requests.ConnectionError):
        predict(stack)
    stack_mod.up(stack)
    assert read_production(stack) == production
    assert served(stack) == (production, deployments[production]["regressor"])
    staging = stack.other(production)
    assert served(stack, "/test/predict") == (staging, deployments[staging]["regressor"])


@pytest.mark.usefixtures("running")
def test_rate_limit_gives_json_429(stack, tmp_path):
    """A second Nginx, rendered with a tiny rate, in front of the same colours."""
    port, admin_port = free_ports(2)
    strict = dataclasses.replace(
        stack,
        var_dir=tmp_path,
        nginx=dataclasses.replace(stack.nginx, port=port, admin_port=admin_port, rate_per_second=1, rate_burst=1),
    )
    for colour in stack.colours:  # the running colours' TorchServe keys, where this Nginx reads them at start
        strict.key_file(colour).parent.mkdir(parents=True)
        shutil.copy(stack.key_file(colour), strict.key_file(colour))
    nginx.start(strict)
    try:
        nginx.wait_ready(strict)
        statuses = [predict(strict).status_code for _ in range(10)]
        assert 200 in statuses and 429 in statuses
        limited = predict(strict)
        assert limited.status_code == 429
        assert "too many requests" in limited.json()["error"]
    finally:
        nginx.stop(strict)


@pytest.mark.usefixtures("running")
def test_golden_set_matches_the_archive_that_answers(stack):
    production = read_production(stack)
    version = read_deployments(stack)[production]["regressor"]
    golden = read_metadata(stack.model_store / f"regressor-{version}.mar")["golden_set"]
    assert predict(stack).json()["output"] == pytest.approx(golden[0]["output"], abs=1e-6)
