"""The delivery pipeline end to end on the real stack: promote a good version,
stop a broken one at the smoke test, roll back a degrading one during bake.

The pipeline runs as a user runs it (twinserve pipeline), against
the session's stack with shorter gates (a stack file with the same ports).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests
import torch
import yaml

from tests.checkout import REPO_ROOT
from tests.integration.conftest import train
from tests.integration.helpers import poll
from twinserve.pipeline import record as records
from twinserve.release import promote
from twinserve.settings import load_stack
from twinserve.store.state import read_production
from twinserve.tools.wrk import WrkRun

pytestmark = pytest.mark.integration
ROW = {"data": [0.2, 0.6]}
SLOW_FORWARD = """
    def forward(self, x):
        import os, time
        if os.path.exists({flag!r}):  # the test's switch: from now on every batch is slow
            time.sleep(0.4)
        return self.net(x).squeeze(-1)
"""


@pytest.fixture(scope="module")
def gated(stack, tmp_path_factory):
    """The session's stack (same ports, same state) with gates short enough for a test."""
    raw = yaml.safe_load(stack.path.read_text())
    raw["pipeline"] = {
        "load_users": 10, "load_seconds": 5, "load_min_rps": 5, "bake_seconds": 15,
        "bake_window_seconds": 15, "bake_max_p99_ms": 250, "bake_breaches_to_fail": 2,
    }  # fmt: skip
    path = tmp_path_factory.mktemp("pipeline") / "stack.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_stack(path)


def model_copy(root, tweak=None):
    """models/regressor copied under `root` (the directory name is the model name)."""
    model_dir = root / "regressor"
    shutil.copytree(REPO_ROOT / "models" / "regressor", model_dir, ignore=shutil.ignore_patterns("artifacts"))
    if tweak:
        tweak(model_dir)
    return model_dir


def pipeline(gated, *args, **popen):
    argv = [sys.executable, "-m", "twinserve", "--stack", str(gated.path), "pipeline", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def served(stack):
    response = requests.post(f"{stack.nginx.url}/predict", json=ROW, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["X-Served-By"], response.headers["X-Model-Version"]


def last_run(gated) -> dict:
    return records.history(gated)[-1]


def test_a_good_version_goes_through_every_stage_to_production(gated, tmp_path):
    before = served(gated)
    model_dir = model_copy(tmp_path)
    proc = pipeline(gated, "run", "--model-dir", str(model_dir), "--version", "3.0", "--seed", "11", "--approve")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert served(gated) == (gated.other(before[0]), "3.0")
    run = last_run(gated)
    assert [(s["name"], s["status"]) for s in run["stages"]] == [
        (name, "passed") for name in ("test", "train", "archive", "deploy", "smoke", "loadgate", "approve")
    ] + [("promote", "passed"), ("bake", "passed")]
    assert run["outcome"] == f"promoted: 3.0 serves /predict from {gated.other(before[0])}"
    assert "outcome: promoted" in out and "loadgate  passed" in out


def test_without_approval_it_stops_before_promotion(gated, tmp_path):
    before = served(gated)
    proc = pipeline(gated, "run", "--model-dir", str(model_copy(tmp_path)), "--version", "3.1",
                    "--skip", "test", stdin=subprocess.DEVNULL)  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out
    assert "stopped at approve: needs approval" in last_run(gated)["outcome"]
    assert served(gated) == before
    assert requests.post(f"{gated.nginx.url}/test/predict", json=ROW, timeout=10).headers["X-Model-Version"] == "3.1"


def test_a_broken_version_stops_at_the_smoke_test_and_production_is_untouched(gated, tmp_path):
    before = served(gated)
    staging_before = requests.post(f"{gated.nginx.url}/test/predict", json=ROW, timeout=10).headers["X-Model-Version"]

    def nan_weights(model_dir):
        train(model_dir, seed=5)
        weights = model_dir / "artifacts" / "weights.pt"
        state = torch.load(weights)
        torch.save({k: torch.full_like(v, float("nan")) for k, v in state.items()}, weights)

    model_dir = model_copy(tmp_path, nan_weights)
    proc = pipeline(gated, "run", "--model-dir", str(model_dir), "--version", "3.2", "--approve",
                    "--skip", "test", "train")  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out
    run = last_run(gated)
    assert [s["status"] for s in run["stages"]][-1] == "failed"
    assert run["stages"][-1]["name"] == "smoke"
    assert run["outcome"].startswith("stopped at smoke: smoke test of")
    assert "staging put back as it was" in run["outcome"]
    assert served(gated) == before
    staging = requests.post(f"{gated.nginx.url}/test/predict", json=ROW, timeout=10)
    assert staging.headers["X-Model-Version"] == staging_before


def test_a_version_that_degrades_in_production_is_rolled_back_during_bake(gated, tmp_path):
    before = served(gated)
    flag = tmp_path / "slow-now"

    def slow_when_flagged(model_dir):
        source = (model_dir / "model.py").read_text()
        forward = "    def forward(self, x):\n        return self.net(x).squeeze(-1)\n"
        assert forward in source
        (model_dir / "model.py").write_text(source.replace(forward, SLOW_FORWARD.format(flag=str(flag))))

    model_dir = model_copy(tmp_path, slow_when_flagged)
    raw = yaml.safe_load(gated.path.read_text())
    raw["pipeline"]["bake_seconds"] = 90  # the rollback is expected well before
    slow_stack = tmp_path / "stack.yaml"
    slow_stack.write_text(yaml.safe_dump(raw))
    traffic = WrkRun(f"{gated.nginx.url}/predict", connections=4, duration_s=300)
    try:
        argv = [sys.executable, "-m", "twinserve", "--stack", str(slow_stack), "pipeline", "run", "--model-dir",
                str(model_dir), "--version", "3.3", "--approve", "--skip", "test"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert poll(lambda: read_production(gated) != before[0] or proc.poll() is not None, timeout=300, every=0.2)
        assert proc.poll() is None, proc.communicate()[0]
        flag.touch()  # the new version now answers in 0.4 s: over the bake's p99 limit of 250 ms
        started = time.monotonic()
        out, _ = proc.communicate(timeout=300)
        rolled_back_after = time.monotonic() - started
    finally:
        report = traffic.stop()
        flag.unlink(missing_ok=True)  # staging keeps 3.3: let it answer at normal speed for later tests
    assert proc.returncode == 1, out
    run = last_run(gated)
    assert run["stages"][-1]["name"] == "bake" and run["stages"][-1]["status"] == "failed"
    assert "p99" in run["stages"][-1]["figure"] and "> 250 ms" in run["stages"][-1]["figure"]
    assert run["rolled_back"] is True
    assert run["outcome"].startswith("rolled back: bake failed") and before[0] in run["outcome"]
    assert rolled_back_after < 60, out
    assert served(gated) == before
    assert report.requests > 100
    assert report.non_2xx == 0 and report.socket_errors == 0, report


def test_runs_are_recorded_and_shown(gated):
    runs = records.history(gated)
    assert [r["version"] for r in runs[-4:]] == ["3.0", "3.1", "3.2", "3.3"]
    shown = pipeline(gated, "show", "--run-id", runs[-1]["run_id"])
    out, _ = shown.communicate(timeout=60)
    assert shown.returncode == 0
    assert "bake      failed" in out and "outcome: rolled back" in out
    saved = json.loads((records.runs_dir(gated) / f"{runs[-1]['run_id']}.json").read_text())
    assert (saved["promoted"], saved["rolled_back"], saved["staging_change"]["version"]) == (True, True, "3.3")
    assert saved["production_before"] == read_production(gated)


def test_the_text_model_ships_through_every_stage_under_its_own_gates(gated, tmp_path):
    """`make pipeline MODEL=models/sentiment`: the transformer trains, archives (83 MB), passes smoke and
    a load gate of its own (models.sentiment.pipeline in config/stack.yaml: 8 users, p99 at most 1.5 s;
    the stack's 250 ms is a regressor's), and is promoted; the other models do not move."""
    model_dir = tmp_path / "sentiment"
    shutil.copytree(REPO_ROOT / "models" / "sentiment", model_dir, ignore=shutil.ignore_patterns("artifacts"))
    before = {m: read_production(gated, m) for m in gated.models}
    proc = pipeline(gated, "run", "--model-dir", str(model_dir), "--version", "3.0", "--seed", "11", "--approve",
                    env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    out, _ = proc.communicate(timeout=900)
    try:
        shipped(gated, before, proc.returncode, out)
    finally:  # the later tests meet sentiment as `make up` serves it: 1.0 in production
        if read_production(gated, "sentiment") != before["sentiment"]:
            promote.rollback(gated, "sentiment")
    assert read_production(gated, "sentiment") == before["sentiment"]


def shipped(gated, before, returncode, out):
    """The sentiment run's verdicts: every stage passed under sentiment's gates, 3.0 in production."""
    assert returncode == 0, out
    run = last_run(gated)
    assert run["model"] == "sentiment" and all(s["status"] == "passed" for s in run["stages"]), run["stages"]
    assert [s["name"] for s in run["stages"]][-2:] == ["promote", "bake"]
    loadgate = next(s["figure"] for s in run["stages"] if s["name"] == "loadgate")
    print(f"\nsentiment's load gate: {loadgate}")
    assert loadgate.startswith("8 users,") and "(at most 1500)" in loadgate, loadgate
    answer = requests.post(f"{gated.nginx.url}/predict/sentiment", json={"text": "a wonderful, moving film"},
                           headers={"Cache-Control": "no-cache"}, timeout=30)  # fmt: skip
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "3.0", answer.text
    assert answer.headers["X-Served-By"] == gated.other(before["sentiment"]) == read_production(gated, "sentiment")
    assert {m: read_production(gated, m) for m in gated.models if m != "sentiment"} == {
        m: c for m, c in before.items() if m != "sentiment"
    }
