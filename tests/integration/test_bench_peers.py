"""make bench's peers serve the archive production serves, and answer as twinserve does; the image kind's
peers answer the digits golden set (PNG bytes and JSON grids) by its rule."""

import shutil
import subprocess
import sys

import pytest
import requests

from archiver import build_archive, read_metadata
from archiver.golden import request_of
from tests.checkout import REPO_ROOT
from twinserve.release import smoke
from twinserve.store.archives import archive_for
from twinserve.store.state import read_deployments, read_production
from twinserve.tools.bench import peers

pytestmark = pytest.mark.integration

ROWS = [[0.2, 0.6], [1.0, -2.0], [3.5, 0.25]]
NAN_ROW = b'{"data": [0.2, NaN]}'


@pytest.fixture(scope="module")
def production(stack):
    """(production's archive, twinserve's answers for one row and for ROWS)."""
    version = read_deployments(stack)[read_production(stack)]["regressor"]
    archive, _ = archive_for(stack, "regressor", version)
    answers = [requests.post(f"{stack.nginx.url}/predict", json={"data": d}, timeout=10) for d in (ROWS[0], ROWS)]
    assert [a.status_code for a in answers] == [200, 200]
    return archive, [a.json() for a in answers]


def answers(url: str) -> list:
    return [requests.post(url, json={"data": d}, timeout=10).json() for d in (ROWS[0], ROWS)]


@pytest.mark.parametrize(("app", "bad_status"), [("workshop", 422), ("tuned", 400)])
def test_fastapi_peer_answers_as_twinserve(production, tmp_path, app, bad_status):
    archive, expected = production
    with peers.fastapi_uvicorn(archive, tmp_path, app) as url:
        assert answers(url) == expected
        bad = requests.post(url, data=NAN_ROW, headers={"Content-Type": "application/json"}, timeout=10)
        assert bad.status_code == bad_status
        assert "finite" in bad.json()["error"]
        too_many = requests.post(url, json={"data": [[0.1, 0.2]] * 65}, timeout=10)
        assert too_many.status_code == bad_status


def test_default_torchserve_peer_answers_as_twinserve(production, tmp_path):
    archive, expected = production
    with peers.default_torchserve(archive, tmp_path) as url:
        assert answers(url) == expected


@pytest.fixture(scope="module")
def digits_archive(tmp_path_factory):
    """models/digits trained briefly here and archived: the image kind's peers serve it."""
    root = tmp_path_factory.mktemp("digits-peers")
    model_dir = root / "digits"
    shutil.copytree(REPO_ROOT / "models" / "digits", model_dir, ignore=shutil.ignore_patterns("artifacts"))
    train = [sys.executable, str(REPO_ROOT / "models" / "digits" / "train.py"), "--epochs", "3"]
    subprocess.run([*train, "--out", str(model_dir / "artifacts")], check=True, capture_output=True)
    return build_archive(model_dir, "1.0", root / "store").path


def golden_answers(url: str, archive) -> list[str]:
    """Every golden case of the archive (PNG bytes and JSON grids) through `url`: the problems found."""
    meta = read_metadata(archive)
    rule = smoke.rule_of(meta)
    problems = []
    for i, case in enumerate(meta["golden_set"]):
        request = request_of(case, i)
        answer = requests.post(url, data=request.body, headers={"Content-Type": request.content_type}, timeout=10)
        found = smoke.compare(rule, answer.json(), case) if answer.status_code == 200 else f"HTTP {answer.status_code}"
        if found:
            problems.append(f"{request.name} ({request.content_type}): {found}")
    return problems


def test_image_peers_answer_the_golden_set_as_twinserve_must(digits_archive, tmp_path):
    with peers.fastapi_uvicorn(digits_archive, tmp_path / "fastapi", "workshop") as url:
        assert url.endswith("/predictions/digits")
        assert golden_answers(url, digits_archive) == []
        bad = requests.post(url, data=b"hello", headers={"Content-Type": "image/png"}, timeout=10)
        assert bad.status_code == 400 and "unknown signature" in bad.json()["error"]
    with peers.default_torchserve(digits_archive, tmp_path / "torchserve") as url:
        assert golden_answers(url, digits_archive) == []


def test_text_peers_answer_the_golden_set_as_twinserve_must(workdir, tmp_path):
    """The text kind's FastAPI peer (sentence-transformers on the same encoder, the archive's head) and
    default TorchServe answer the sentiment golden set by its rule: the bench compares like with like."""
    archive = workdir / "model_store" / "sentiment-1.0.mar"
    with peers.fastapi_uvicorn(archive, tmp_path / "fastapi", "workshop") as url:
        assert url.endswith("/predictions/sentiment")
        assert golden_answers(url, archive) == []
        texts = ["Terrible service.", "I loved every minute of it."]
        both = requests.post(url, json={"texts": texts}, timeout=30)
        assert [a["label"] for a in both.json()] == ["negative", "positive"]
        assert requests.post(url, json={"text": "  "}, timeout=10).status_code == 400
    with peers.default_torchserve(archive, tmp_path / "torchserve") as url:
        assert golden_answers(url, archive) == []
