"""The sentiment model in a real TorchServe 0.12, through its worker protocol (the fast codec included):
trained by models/sentiment/train.py, archived with its tokenizer, served from the archive alone.
Sentences answer their label, texts a list in order, golden sentences their recorded answers, and every bad
request its own 4xx JSON while good requests sent at the same time are answered. TorchServe runs on its own
here; test_text_stack.py sends the same model's requests through the stack's Nginx."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from tests.checkout import REPO_ROOT
from tests.integration.helpers import standalone_torchserve

pytestmark = pytest.mark.integration
SENTIMENT = REPO_ROOT / "models" / "sentiment"
CONFIG = yaml.safe_load((SENTIMENT / "model-config.yaml").read_text())
LIMITS = CONFIG["handler"]
ARCHIVES: dict[str, Path] = {}  # TorchServe's URL -> the archive it serves
JSON = "application/json"
SAMPLES = [json.loads(p.read_text())["text"] for p in sorted((SENTIMENT / "samples").glob("text-*.json"))]


def _ready(url: str) -> bool:
    try:
        return predict(url, {"text": "ready?"}).status_code == 200
    except requests.RequestException:
        return False


def predict(url, body, content_type=JSON):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{url}/predictions/sentiment", data=data, headers={"Content-Type": content_type}, timeout=60)


@pytest.fixture(scope="module")
def sentiment_url(tmp_path_factory, workdir):
    """TorchServe with sentiment 1.0 (trained from models/sentiment by the session's `workdir`) on free
    loopback ports."""
    root = tmp_path_factory.mktemp("sentiment")
    archive = workdir / "model_store" / "sentiment-1.0.mar"
    with standalone_torchserve(root, "sentiment", archive, _ready) as url:
        ARCHIVES[url] = archive
        yield url


def test_a_sentence_answers_its_label_and_both_scores(sentiment_url):
    answer = predict(sentiment_url, {"text": "a wonderful, moving film"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model-Version"] == "1.0"
    body = answer.json()
    assert body["label"] == "positive" and body["truncated"] is False
    assert set(body["scores"]) == {"negative", "positive"}


def test_texts_answer_a_list_in_the_same_order(sentiment_url):
    texts = ["Crust is not good.", "I loved every minute of it.", "Worst purchase I ever made.", "Great value."]
    answer = predict(sentiment_url, {"texts": texts})
    assert answer.status_code == 200, answer.text
    assert [a["label"] for a in answer.json()] == ["negative", "positive", "negative", "positive"]


def test_golden_sentences_answer_what_training_recorded(sentiment_url):
    golden = json.loads(ARCHIVES[sentiment_url].with_suffix(".json").read_text())["golden_set"]
    assert len(golden) == 16
    for case in golden:
        body = predict(sentiment_url, case["request"]["json"]).json()
        assert body["label"] == case["label"]
        for label, score in case["probabilities"].items():  # 4 digits; float32 kernels may move the last one
            assert body["scores"][label] == pytest.approx(score, abs=1.5e-4)


def test_a_text_over_the_token_limit_is_truncated_and_the_answer_says_so(sentiment_url):
    long = "The staff were kind and the food was excellent. " * 60  # ~600 tokens, under the byte limit
    answer = predict(sentiment_url, {"texts": [long, "Fine."]})
    assert answer.status_code == 200, answer.text
    assert [a["truncated"] for a in answer.json()] == [True, False]


BAD = {
    "empty text": ({"text": ""}, JSON, 400, "empty or only whitespace"),
    "whitespace": ({"text": " \n "}, JSON, 400, "empty or only whitespace"),
    "not UTF-8": (b'{"text": "caf\xe9"}', JSON, 400, "not UTF-8"),
    "not JSON": (b"{text", JSON, 400, "not valid JSON"),
    "wrong type": ({"text": ["a"]}, JSON, 400, "expected a string"),
    "too many texts": ({"texts": ["ok"] * (LIMITS["max_texts"] + 1)}, JSON, 400, "at most 32 are allowed"),
    "text over the byte limit": ({"text": "a" * (LIMITS["max_text_bytes"] + 1)}, JSON, 413, "bytes of UTF-8"),
    "body over the byte limit": (
        b"a" * (CONFIG["twinserve"]["max_body"] + 1),
        "application/octet-stream",
        413,
        "at most 131072",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_request_answers_its_own_json_error(sentiment_url, case):
    body, content_type, status, message = BAD[case]
    answer = predict(sentiment_url, body, content_type)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert answer.headers["X-Model-Version"] == "1.0"


def test_bad_requests_sent_with_good_ones_do_not_fail_them(sentiment_url):
    good = [({"text": SAMPLES[k]}, JSON, 200, None) for k in range(48)]
    bad = list(BAD.values()) * 3
    mixed = [item for pair in zip(good, bad, strict=False) for item in pair] + good[len(bad) :]
    alone = {SAMPLES[k]: predict(sentiment_url, {"text": SAMPLES[k]}).json()["label"] for k in range(48)}

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda item: (item, predict(sentiment_url, item[0], item[1])), mixed))
    for (body, _, status, message), answer in results:
        assert answer.status_code == status, answer.text
        if status == 200:
            assert answer.json()["label"] == alone[body["text"]]
        else:
            assert message in answer.json()["error"]


def test_the_archive_records_both_accuracies_and_carries_its_tokenizer(sentiment_url):
    meta = json.loads(ARCHIVES[sentiment_url].with_suffix(".json").read_text())
    metrics = meta["metrics"]
    assert metrics["held_out"] == 600
    assert metrics["held_out_accuracy"] > metrics["baseline_tfidf_lr_accuracy"] > 0.75
    assert meta["twinserve"]["handler"] == "text"
    import zipfile

    assert "tokenizer.json" in zipfile.ZipFile(ARCHIVES[sentiment_url]).namelist()
