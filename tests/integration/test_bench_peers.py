"""make bench's peers serve the archive production serves, and answer as twinserve does."""

import pytest
import requests

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
