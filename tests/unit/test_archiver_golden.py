"""archiver/golden.py: golden cases of any content type, recorded, replayed and checked against their rule."""

import json

import pytest

from archiver import golden
from archiver.modelconfig import GoldenRule, ModelConfigError, Payload

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def test_a_recorded_image_is_replayed_as_the_same_bytes_and_content_type():
    case = json.loads(json.dumps(golden.record(PNG, "image/png", label=3, probabilities=[0.1, 0.2, 0.3, 0.4])))
    assert golden.request_of(case) == Payload("golden_set[0]", "image/png", PNG)
    assert case["label"] == 3 and "base64" in case["request"]


def test_json_cases_are_replayed_as_json():
    assert golden.request_of({"data": [0.2, 0.6], "output": 1.0}, 4).body == b'{"data": [0.2, 0.6]}'
    assert golden.request_of({"request": {"json": {"text": "hi"}}, "label": 0}).content_type == "application/json"


@pytest.mark.parametrize(
    ("cases", "rule", "named"),
    [
        ([], GoldenRule("numbers", 1e-5), "non-empty list"),
        ([{"output": 1.0}], GoldenRule("numbers", 1e-5), 'golden_set[0] has no input: expected "data" or "request"'),
        ([{"data": [1], "output": float("nan")}], GoldenRule("numbers", 1e-5), '"output" is nan'),
        ([{"data": [1], "label": 1}], GoldenRule("label", 1e-4), 'golden_set[0]: no "probabilities"'),
        ([{"data": [1], "label": 7, "probabilities": [0.5, 0.5]}], GoldenRule("label", 1e-4), '"label" is 7'),
        ([{"request": {"content_type": "image/png", "base64": "%%"}, "output": 1}], GoldenRule("numbers", 1), "base64"),
        ([golden.record(PNG, "image/png", output=1.0)], GoldenRule("numbers", 1e-5, True), 'no "data" rows'),
    ],
)
def test_the_golden_set_is_checked_against_its_rule(cases, rule, named):
    with pytest.raises(ModelConfigError, match=named.replace("[", r"\[")):
        golden.check(cases, rule)


def test_a_good_golden_set_passes_its_check():
    golden.check([{"data": [1, 2], "output": [0.5]}, {"data": [3, 4], "output": 1}], GoldenRule("numbers", 1e-5, True))
    labelled = [{"data": [[0]], "label": 1, "probabilities": [0.2, 0.8]},
                golden.record(PNG, "image/png", label="1", probabilities={"0": 0.1, "1": 0.9})]  # fmt: skip
    golden.check(labelled, GoldenRule("label", 1e-4))
