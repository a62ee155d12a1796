"""models/sentiment/train.py: its split, embeddings, heads and samples are the same run after run for a seed."""

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from twinserve.tools.model_train import load_train

SENTIMENT = Path(__file__).resolve().parents[2] / "models" / "sentiment"
TRAIN = load_train(SENTIMENT, "sentiment_train_for_tests")


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TRAIN.pretrained()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    return TRAIN.tokenizer()


def test_the_split_is_fixed_and_stratified_by_source_and_label():
    texts, labels, sources = TRAIN.load()
    assert len(texts) == 3000 and Counter(labels) == {0: 1500, 1: 1500}
    x, y, x_test, y_test = TRAIN.split(texts, labels, sources)
    assert (len(x), len(x_test)) == (2400, 600)
    assert TRAIN.split(texts, labels, sources)[2] == x_test
    source_of = dict(zip(texts, sources, strict=False))
    assert set(Counter((source_of[t], c) for t, c in zip(x_test, y_test, strict=True)).values()) == {100}
    assert not set(x_test) & set(x) - {t for t, n in Counter(texts).items() if n > 1}


def test_embeddings_and_the_head_are_bit_identical_for_a_seed(model, tok):
    texts, labels, sources = TRAIN.load()
    x, y, _, _ = TRAIN.split(texts, labels, sources)
    x, y = x[:160], y[:160]
    first = TRAIN.embed(model, tok, x)
    # exact throughout: the same function on the same inputs in one process takes the same kernels
    assert torch.equal(first, TRAIN.embed(model, tok, x))
    heads = []
    for _ in range(2):
        TRAIN.fit_head(model, first, y, seed=7)
        heads.append({k: v.clone() for k, v in model.head.state_dict().items()})
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    assert not torch.equal(heads[0]["weight"], torch.zeros_like(heads[0]["weight"]))
    # the two logits are one logistic regression's -z/2 and z/2
    assert torch.equal(heads[0]["weight"][0], -heads[0]["weight"][1])  # exact: one row is the other negated


def test_the_baseline_is_deterministic_for_a_seed():
    texts, labels, sources = TRAIN.load()
    x, y, x_test, y_test = TRAIN.split(texts, labels, sources)
    assert TRAIN.baseline(x[:400], y[:400], x_test, y_test, 3) == TRAIN.baseline(x[:400], y[:400], x_test, y_test, 3)


def test_the_shipped_samples_are_what_train_writes_and_none_is_golden(tmp_path):
    texts, labels, sources = TRAIN.load()
    held_out = TRAIN.split(texts, labels, sources)[2]
    TRAIN.write_samples(held_out[16:], tmp_path)
    shipped = SENTIMENT / "samples"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in shipped.iterdir())
    assert all((tmp_path / p.name).read_bytes() == p.read_bytes() for p in shipped.iterdir())
    bodies = [json.loads(p.read_text()) for p in shipped.iterdir()]
    sent = [b["text"] for b in bodies if "text" in b] + [t for b in bodies if "texts" in b for t in b["texts"]]
    assert len(sent) == len(set(sent)) == 80 and not set(sent) & set(held_out[:16])


def test_reference_rows_from_the_embeddings_are_what_the_model_answers(model, tok):
    """The positive score of the reference comes from the head on fit_head's embeddings (one encoder
    pass, not two): it is the score the whole model gives each text, and chars and tokens are the text's."""
    texts, labels, sources = TRAIN.load()
    x, y, _, _ = TRAIN.split(texts, labels, sources)
    x, y = x[:96], y[:96]
    embeddings = TRAIN.embed(model, tok, x)
    TRAIN.fit_head(model, embeddings, y, seed=7)
    rows = TRAIN.reference_rows(model, tok, x, embeddings)
    assert rows.shape == (96, len(TRAIN.DRIFT_FEATURES)) and rows.dtype == torch.float64
    assert rows[:, 0].tolist() == [float(len(t)) for t in x]
    assert rows[:, 1].tolist() == [float(len(tok.encode(t).ids)) for t in x]
    whole = torch.cat([TRAIN.probabilities(model, tok, x[i : i + 32])[:, 1] for i in range(0, 96, 32)])
    assert torch.allclose(rows[:, 2], whole.double(), atol=1e-5)
    stats = TRAIN.reference_stats(rows)
    assert stats["tokens"]["count"] == 96 and stats["chars"]["mean"] == pytest.approx(sum(map(len, x)) / 96)


def test_reference_data_holds_every_offered_feature_on_the_training_sets_components(model, tok):
    """reference_data: one column per feature the handler offers (text_drift_features), the pcs being the
    embeddings on principal_components of the training embeddings; the same texts give the same rows."""
    from text_codec import text_drift_features

    texts, labels, sources = TRAIN.load()
    x, y, x_test, _ = TRAIN.split(texts, labels, sources)
    embeddings = TRAIN.embed(model, tok, x[:96])
    TRAIN.fit_head(model, embeddings, y[:96], seed=7)
    projection = TRAIN.principal_components(embeddings)
    assert projection.components.shape == (5, 384)
    held_out = TRAIN.embed(model, tok, x_test[:40])
    data = TRAIN.reference_data(model, tok, x_test[:40], held_out, projection)
    assert list(data) == text_drift_features(projection.names)
    assert all(data[f].shape == (40,) for f in data)
    assert data["pc1"].tolist() == projection.apply(held_out)[:, 0].tolist()
    again = TRAIN.reference_data(model, tok, x_test[:40], TRAIN.embed(model, tok, x_test[:40]), projection)
    assert all((again[f] == data[f]).all() for f in data)
