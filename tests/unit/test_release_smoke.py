"""twinserve/release/smoke.py: golden answers compared by the model's rule, inputs replayed with their content type."""

import json
import math

import pytest
from requests.structures import CaseInsensitiveDict

from archiver import golden
from archiver.modelconfig import GoldenRule, Payload
from twinserve.errors import PreflightError
from twinserve.release import smoke

HEADERS = CaseInsensitiveDict({"x-served-by": "green", "x-model-version": "1.1", "content-type": "application/json"})
NUMBERS = GoldenRule("numbers", 1e-5)
LABEL = GoldenRule("label", 1e-4)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def problem(status=200, headers=HEADERS, body=None, expected=0.5, colour="green", version="1.1"):
    body = {"output": 0.5} if body is None else body
    return smoke.problem_with(status, headers, body, {"output": expected}, NUMBERS, colour, version)


# --- numbers ---------------------------------------------------------------------


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


def test_the_numbers_tolerance_is_the_rules():
    assert smoke.compare(GoldenRule("numbers", 0.1), {"output": 1.09}, {"output": 1.0}) is None
    assert "differs" in smoke.compare(GoldenRule("numbers", 0.01), {"output": 1.09}, {"output": 1.0})


# --- labels ------------------------------------------------------------------------

GOLDEN_LABEL = {"label": 1, "probabilities": [0.25, 0.75]}


def answer(label=1, p0=0.25, p1=0.75, **extra):
    return {"label": label, "probabilities": {"0": p0, "1": p1, **extra}}


def test_the_right_label_with_probabilities_within_the_tolerance_is_right():
    assert smoke.compare(LABEL, answer(), GOLDEN_LABEL) is None
    assert smoke.compare(LABEL, answer(p0=0.25009, p1=0.74991), GOLDEN_LABEL) is None
    golden_as_mapping = {"label": "1", "probabilities": {"0": 0.25, "1": 0.75}}  # a recorded mapping, string label
    assert smoke.compare(LABEL, answer(), golden_as_mapping) is None


def test_a_text_model_s_scores_are_compared_as_its_probabilities():
    text_golden = {"label": "positive", "probabilities": {"negative": 0.1034, "positive": 0.8966}}
    right = {"label": "positive", "scores": {"negative": 0.1034, "positive": 0.8966}, "truncated": False}
    assert smoke.compare(LABEL, right, text_golden) is None
    wrong = {"label": "positive", "scores": {"negative": 0.2, "positive": 0.8}}
    assert "probability of negative 0.2 differs" in smoke.compare(LABEL, wrong, text_golden)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (answer(label=0), "label 0 differs from the golden 1"),
        (answer(label=True), "label True differs"),
        (answer(p0=0.2502, p1=0.7498), "probability of 0 0.2502 differs from the golden 0.25 by more than 0.0001"),
        (answer(p1=math.nan), "probability of 1 nan differs"),
        (answer(p1="0.75"), "probability of 1 0.75 differs"),
        (answer(**{"2": 0.0}), "classes ['0', '1', '2'] differ from the golden ['0', '1']"),
        ({"label": 1}, "has no label and probabilities"),
        ({"output": 0.75}, "has no label and probabilities"),
        ("<html>", "has no label and probabilities"),
    ],
)
def test_each_wrong_label_answer_is_named(body, says):
    found = smoke.compare(LABEL, body, GOLDEN_LABEL)
    assert found is not None and says in found


def test_the_label_rule_is_also_applied_after_the_status_and_headers():
    case = {"data": [[0]], **GOLDEN_LABEL}
    assert smoke.problem_with(200, HEADERS, answer(), case, LABEL, "green", "1.1") is None
    assert "differs" in smoke.problem_with(200, HEADERS, answer(label=0), case, LABEL, "green", "1.1")
    assert smoke.problem_with(400, HEADERS, {"error": "x"}, case, LABEL, "green", "1.1").startswith("HTTP 400")


# --- replaying -----------------------------------------------------------------------


def test_smoke_sends_every_golden_row_then_all_of_them_as_one_batch(monkeypatch):
    cases = [{"data": [0.1, 0.2], "output": 1.0}, {"data": [0.3, 0.4], "output": 2.0}]
    sent = []

    def post(url, payload):
        sent.append((payload.content_type, json.loads(payload.body)))
        rows = json.loads(payload.body)["data"]
        output = [g["output"] for g in cases] if isinstance(rows[0], list) else cases[len(sent) - 1]["output"]
        return 200, HEADERS, {"output": output}

    monkeypatch.setattr(smoke, "_post", post)
    assert smoke.run_smoke("http://x/test/predict", cases, "green", "1.1", GoldenRule("numbers", 1e-5, True)) == 3
    assert [body for _, body in sent] == [
        {"data": [0.1, 0.2]},
        {"data": [0.3, 0.4]},
        {"data": [[0.1, 0.2], [0.3, 0.4]]},
    ]
    assert {content_type for content_type, _ in sent} == {"application/json"}


def test_without_batch_only_the_cases_are_sent(monkeypatch):
    sent = []
    monkeypatch.setattr(smoke, "_post", lambda url, p: sent.append(p) or (200, HEADERS, {"output": 1.0}))
    assert smoke.run_smoke("http://x", [{"data": [0, 1], "output": 1.0}], "green", "1.1", NUMBERS) == 1
    assert len(sent) == 1


def test_a_recorded_image_is_sent_as_its_bytes_with_its_content_type(monkeypatch):
    """The golden PNG goes out byte for byte as image/png (through JSON and base64 in the metadata)."""
    cases = json.loads(json.dumps([golden.record(PNG, "image/png", **GOLDEN_LABEL), {"data": [[1]], **GOLDEN_LABEL}]))
    sent: list[Payload] = []
    monkeypatch.setattr(smoke, "_post", lambda url, p: sent.append(p) or (200, HEADERS, answer()))
    assert smoke.run_smoke("http://x/test/predict", cases, "green", "1.1", LABEL) == 2
    assert [(p.content_type, p.body) for p in sent] == [("image/png", PNG), ("application/json", b'{"data": [[1]]}')]


def test_a_wrong_label_to_an_image_stops_the_smoke_test_naming_it(monkeypatch):
    cases = [golden.record(PNG, "image/png", **GOLDEN_LABEL)]
    monkeypatch.setattr(smoke, "_post", lambda url, p: (200, HEADERS, answer(label=0, p0=0.75, p1=0.25)))
    with pytest.raises(
        PreflightError, match=r"via http://x failed: golden_set\[0\]: label 0 differs from the golden 1"
    ):
        smoke.run_smoke("http://x", cases, "green", "1.1", LABEL)


def test_post_sends_the_payloads_bytes_and_content_type(monkeypatch):
    seen = {}

    class Response:
        status_code, headers = 200, HEADERS

        def json(self):
            return {"output": 1.0}

    def fake_post(url, data, headers, timeout):
        seen.update(url=url, data=data, headers=headers)
        return Response()

    monkeypatch.setattr(smoke.requests, "post", fake_post)
    assert smoke._post("http://x", Payload("p", "image/jpeg", b"\xff\xd8\xff"))[0] == 200
    assert seen == {"url": "http://x", "data": b"\xff\xd8\xff", "headers": {"Content-Type": "image/jpeg"}}


def test_smoke_stops_at_the_first_wrong_answer(monkeypatch):
    monkeypatch.setattr(smoke, "_post", lambda url, payload: (200, HEADERS, {"output": 9.0}))
    with pytest.raises(PreflightError, match="smoke test of green 1.1 via http://x failed: .*output 9.0 differs"):
        smoke.run_smoke("http://x", [{"data": [0, 1], "output": 1.0}], "green", "1.1", NUMBERS)


def test_smoke_without_a_golden_set_is_refused():
    with pytest.raises(PreflightError, match="no golden set for version 1.1"):
        smoke.run_smoke("http://x", [], "green", "1.1", NUMBERS)


def test_an_unreplayable_case_is_refused_before_anything_is_sent(monkeypatch):
    monkeypatch.setattr(smoke, "_post", lambda url, p: pytest.fail("sent"))
    with pytest.raises(PreflightError, match="cannot be replayed"):
        smoke.run_smoke("http://x", [{"output": 1.0}], "green", "1.1", NUMBERS)


# --- which rule --------------------------------------------------------------------------


def test_the_rule_comes_from_the_metadata():
    meta = {"twinserve": {"golden": {"compare": "label", "probability_tolerance": 0.01}}, "golden_set": []}
    assert smoke.rule_of(meta) == GoldenRule("label", 0.01)


def test_without_a_rule_in_the_metadata_the_golden_set_implies_it():
    """Archives built before twinserve.golden existed, and callers that pass no rule."""
    assert smoke.rule_of({"golden_set": [{"data": [1], "output": 1.0}]}) == GoldenRule("numbers", 1e-5, True)
    assert smoke.implied_rule([{"data": [[1]], **GOLDEN_LABEL}]) == GoldenRule("label", 1e-4)
    assert smoke.implied_rule([golden.record(PNG, "image/png", output=1.0)]) == GoldenRule("numbers", 1e-5, False)
