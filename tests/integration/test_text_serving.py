"""The sentiment model served by the stack beside the others, through Nginx: the README's curl, its
staging route, every bad request's own 4xx JSON (the handler's or Nginx's), and swaps of it under load on
all three models failing no request. The model itself (batches, truncation, golden set) is tested on a
TorchServe of its own in test_text_model.py.

The tests share one stack (tests/integration/conftest.py).
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.test_models import ROW, SAMPLES, assert_swaps_failed_no_request, colours
from tests.integration.test_text_model import BAD
from twinserve.tools.swapcheck import swaps_under_load

pytestmark = pytest.mark.integration


def post(stack, path, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{stack.nginx.url}{path}", data=data, headers={"Content-Type": content_type}, timeout=30)


def test_the_readme_sentence_answers_a_label_and_scores_from_production(stack):
    answer = post(stack, "/predict/sentiment", {"text": "a wonderful, moving film"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["label"] == "positive" and set(body["scores"]) == {"negative", "positive"}
    assert abs(sum(body["scores"].values()) - 1) < 1e-3
    assert answer.headers["X-Served-By"] == colours(stack)["sentiment"][0]
    assert answer.headers["X-Model-Version"] == "1.0"
    staging = post(stack, "/test/predict/sentiment", {"texts": ["Terrible service.", "Loved it!"]})
    assert staging.status_code == 200, staging.text
    assert [a["label"] for a in staging.json()] == ["negative", "positive"]
    assert staging.headers["X-Served-By"] != answer.headers["X-Served-By"]


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_request_answers_its_own_json_error_through_nginx(stack, case):
    body, content_type, status, message = BAD[case]
    answer = post(stack, "/predict/sentiment", body, content_type)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert message in answer.json()["error"]


def test_bad_texts_do_not_fail_the_good_requests_sent_with_them(stack):
    good = [({"text": f"The food was great, visit {k}."}, "application/json", 200, None) for k in range(40)]
    mixed = [item for pair in zip(good, list(BAD.values()) * 2, strict=False) for item in pair] + good[16:]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda item: (item, post(stack, "/predict/sentiment", item[0], item[1])), mixed))
    for (_, _, status, message), answer in results:
        assert answer.status_code == status, answer.text
        assert ("label" in answer.json()) if status == 200 else (message in answer.json()["error"])


def test_swaps_of_sentiment_under_load_on_all_three_models_fail_no_request(stack):
    """Six swaps of the text model while wrk loads the three production routes: no socket error, no
    non-2xx, and the other two models' colours never move."""
    before = colours(stack)
    bodies = {
        "sentiment": (b'{"text": "The plot was thin but the acting carried it."}', "application/json"),
        "digits": (SAMPLES[3], "image/png"),
        "regressor": (json.dumps(ROW).encode(), "application/json"),
    }
    result = swaps_under_load(stack, swaps=6, connections=24, model="sentiment", bodies=bodies)
    assert set(result.reports) == {"sentiment", "digits", "regressor"}
    assert_swaps_failed_no_request(stack, result, before, min_requests=100)
