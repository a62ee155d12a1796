"""twinserve/release/smoke.py: judging one answer against the golden set, and the smoke run."""

import math

import pytest
from requests.structures import CaseInsensitiveDict

from twinserve.errors import PreflightError
from twinserve.release import smoke

HEADERS = CaseInsensitiveDict({"x-served-by": "green", "x-model-version": "1.1", "content-type": "application/json"})


def problem(status=200, headers=HEADERS, body=None, expected=0.5, colour="green", version="1.1"):
    return smoke.problem_with(status, headers, {"output": 0.5} if body is None else body, expected, colour, version)


def test_a_right_answer_has_no_problem():
    assert problem() is None
    assert problem(body={"output": [0.5, -1.25]}, expected=[0.5, -1.25]) is None


def test_within_the_tolerance_is_right():
    assert problem(body={"output": 1000.0 + 0.009}, expected=1000.0) is None  # 1e-5 relative
    assert problem(body={"output": 5e-6}, expected=0.0) is None  # 1e-5 absolute near zero


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"status": 503, "body": {"error": "unavailable"}}, "HTTP 503: {'error': 'unavailable'}"),
        ({"colour": "blue"}, "served by 'green', expected 'blue'"),
        ({"headers": CaseInsensitiveDict({"X-Model-Version": "1.1"})}, "served by None, expected 'green'"),
        ({"version": "1.0"}, "model version '1.1', expected '1.0'"),
        ({"body": "<html>oops</html>"}, "has no output"),
        ({"body": {"result": 0.5}}, "has no output"),
        ({"body": {"output": [0.5]}}, "does not have the shape"),
        ({"body": {"output": 0.5}, "expected": [0.5]}, "does not have the shape"),
        ({"body": {"output": [0.5]}, "expected": [0.5, 0.7]}, "does not have the shape"),
        ({"body": {"output": 0.51}}, "output 0.51 differs from the golden 0.5"),
        ({"body": {"output": [0.5, 0.8]}, "expected": [0.5, 0.7]}, "output 0.8 differs from the golden 0.7"),
        ({"body": {"output": "0.5"}}, "differs"),
        ({"body": {"output": None}}, "differs"),
        ({"body": {"output": math.nan}}, "differs"),
    ],
)
def test_each_wrong_answer_is_named(kwargs, says):
    found = problem(**kwargs)
    assert found is not None
    assert says in found


def test_headers_are_read_case_insensitively():
    """HTTP header names may arrive in any case; requests hands problem_with a case-insensitive mapping."""
    headers = CaseInsensitiveDict({"X-SERVED-BY": "green", "X-Model-Version": "1.1"})
    assert problem(headers=headers) is None


def test_smoke_sends_every_golden_row_then_all_of_them_as_one_batch(monkeypatch):
    golden = [{"data": [0.1, 0.2], "output": 1.0}, {"data": [0.3, 0.4], "output": 2.0}]
    sent = []

    def post(url, payload):
        sent.append(payload)
        rows = payload["data"]
        output = [g["output"] for g in golden] if isinstance(rows[0], list) else golden[len(sent) - 1]["output"]
        return 200, HEADERS, {"output": output}

    monkeypatch.setattr(smoke, "_post", post)
    assert smoke.run_smoke("http://x/test/predict", golden, "green", "1.1") == 3
    assert sent == [{"data": [0.1, 0.2]}, {"data": [0.3, 0.4]}, {"data": [[0.1, 0.2], [0.3, 0.4]]}]


def test_smoke_stops_at_the_first_wrong_answer(monkeypatch):
    monkeypatch.setattr(smoke, "_post", lambda url, payload: (200, HEADERS, {"output": 9.0}))
    with pytest.raises(PreflightError, match="smoke test of green 1.1 via http://x failed: output 9.0 differs"):
        smoke.run_smoke("http://x", [{"data": [0, 1], "output": 1.0}], "green", "1.1")


def test_smoke_without_a_golden_set_is_refused():
    with pytest.raises(PreflightError, match="no golden set for version 1.1"):
        smoke.run_smoke("http://x", [], "green", "1.1")
