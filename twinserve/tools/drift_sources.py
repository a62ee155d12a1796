"""The streams of `make drift-eval`: each model's drift features, undrifted and after a known change.

A source gives, per scenario, a stream of rows (one column per watched
feature, in `names` order) whose first `warmup` rows are undrifted and the
rest changed, and the reference the archiver would build (`reference`: the
sketch per feature; `sample`: the values sketched, which Evidently is given).

- Regressor: fresh draws from the training distribution (train.make_data),
  scored by the trained model; x1 changes (mean, spread, a bimodal mixture).
- Digits, Sentiment: the model trained by its own train.py (its functions, the
  handlers' codecs); the reference is train.py's, the held-out set. Streams
  are drawn with replacement from pools of feature rows computed offline with
  train.reference_data (the handler's image_drift_row / text_drift_row): the
  undrifted pool is the held-out set itself (the reference's own sample, so
  the false alarms are a lower bound of what unseen undrifted inputs give);
  each changed pool is the held-out inputs transformed, or other inputs.
"""

import importlib.util
import inspect
import re
import sys
from pathlib import Path

import numpy as np

from archiver import modelconfig
from archiver.reference import column_reference
from twinserve.tools.model_train import load_train

REGRESSOR_SCENARIOS = ("mean +0.25 std", "mean +0.5 std", "mean +1 std", "std x1.5", "std x2", "bimodal")
DIGITS_SCENARIOS = ("inverted", "rotated 90", "rotated 180", "letters", "only 3s")
TEXT_SCENARIOS = ("German reviews", "Python docs", "only negative")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghkmnqrtuy"  # lower case unlike a digit's shape


def draw_stream(undrifted: np.ndarray, changed: np.ndarray, warmup: int, after: int, seed: int) -> np.ndarray:
    """warmup rows drawn with replacement from `undrifted`, then `after` from `changed` (rows of features)."""
    rng = np.random.default_rng(seed)
    before = undrifted[rng.integers(0, undrifted.shape[0], warmup)]
    return np.concatenate([before, changed[rng.integers(0, changed.shape[0], after)]])


class Pools:
    """A model's feature rows: the undrifted pool (its reference's sample) and one pool per scenario."""

    def __init__(self, name: str, columns: dict[str, np.ndarray], watched: list[str], pools: dict[str, dict]):
        self.name = name
        self.names = list(watched)
        self.sample = {f: np.asarray(columns[f], dtype=np.float64) for f in self.names}
        self.reference = {f: column_reference(v) for f, v in self.sample.items()}
        self.undrifted = np.column_stack([self.sample[f] for f in self.names])
        self.pools = {
            s: np.column_stack([np.asarray(c[f], dtype=np.float64) for f in self.names]) for s, c in pools.items()
        }
        self.scenarios = tuple(pools)

    def rows(self, scenario: str, warmup: int, after: int, seed: int) -> np.ndarray:
        changed = self.undrifted if scenario == "none" else self.pools[scenario]
        return draw_stream(self.undrifted, changed, warmup, after, seed)


class Regressor:
    """The trained demo regressor, its reference, and streams drawn like its training data."""

    name = "regressor"
    scenarios = REGRESSOR_SCENARIOS

    def __init__(self, model_dir: Path, seed: int = 42, epochs: int = 30, samples: int = 8192):
        import torch

        self.train = load_train(model_dir, "regressor_train")
        self.torch = torch
        model, x, _ = self.train.train(seed, epochs, samples)
        self.model = model.double()
        self.features = list(self.train.FEATURES)
        self.names = [*self.features, "prediction"]
        columns = {f: x[:, i].double().numpy() for i, f in enumerate(self.features)}
        columns["prediction"] = self.score(x.double().numpy())
        self.sample = columns
        self.reference = {name: column_reference(values) for name, values in columns.items()}
        self.mean, self.std = columns["x1"].mean(), columns["x1"].std(ddof=1)

    def score(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(x)).float().double().reshape(-1).numpy()

    def draw(self, n: int, seed: int) -> np.ndarray:
        x, _ = self.train.make_data(n, self.torch.Generator().manual_seed(seed))
        return x.double().numpy()

    def change(self, scenario: str, x1: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        m, s = self.mean, self.std
        if scenario.startswith("mean +"):
            return x1 + float(scenario.split("+")[1].split()[0]) * s
        if scenario.startswith("std x"):
            return m + float(scenario.removeprefix("std x")) * (x1 - m)
        if scenario == "bimodal":  # modes at +-a*s, each of std b*s, a^2 + b^2 = 1: same mean and std
            a, b = 0.95, (1 - 0.95**2) ** 0.5
            return m + s * (rng.choice([-a, a], size=x1.size) + b * rng.standard_normal(x1.size))
        return x1

    def rows(self, scenario: str, warmup: int, after: int, seed: int) -> np.ndarray:
        """x1, x2 and the model's prediction on them; x1 changed from row `warmup` on."""
        rng = np.random.default_rng(seed)
        x = self.draw(warmup + after, seed)
        x[warmup:, 0] = self.change(scenario, x[warmup:, 0], rng)
        return np.column_stack([x, self.score(x)])


# ----- images -----


def inverted(x):
    """Ink for paper: (N, 1, size, size) grids on the scale 0..16."""
    return 16.0 - x


def rotated(x, quarter_turns: int):
    import torch

    return torch.rot90(x, quarter_turns, dims=(2, 3))


def letter_grids(size: int = 8, scale: float = 16.0, side: int = 32) -> list:
    """Letters drawn with Pillow's bundled font (no file, no network), dark on white at a few sizes and
    offsets, sent through the handler's own decoder (image_codec.grid_from_image) as a PNG would be."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    from twinserve.settings import project_dir

    sys.path.insert(0, str(project_dir() / "handlers"))
    try:
        from image_codec import DEFAULT_MAX_PIXELS, grid_from_image
    finally:
        sys.path.remove(str(project_dir() / "handlers"))
    grids = []
    for font_size in (22, 26, 30):
        font = ImageFont.load_default(size=font_size)
        for letter in LETTERS:
            for dx in (-2, 0, 2):
                image = Image.new("L", (side, side), 255)
                draw = ImageDraw.Draw(image)
                left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
                xy = ((side - (right - left)) / 2 - left + dx, (side - (bottom - top)) / 2 - top)
                draw.text(xy, letter, fill=0, font=font)
                out = io.BytesIO()
                image.save(out, format="PNG")
                grids.append(grid_from_image(out.getvalue(), size, scale, DEFAULT_MAX_PIXELS).values)
    return grids


class Digits(Pools):
    def __init__(self, model_dir: Path, seed: int = 42, epochs: int = 30):
        import torch

        train = load_train(model_dir, "digits_train")
        x, y, x_test, y_test = train.split()
        model = train.train(seed, epochs, x, y)
        projection = train.principal_components(train.penultimate(model, x)[1])

        def features(images):
            return train.reference_data(model, images, projection)

        letters = torch.tensor(letter_grids(), dtype=torch.float32).reshape(-1, 1, 8, 8)
        pools = {
            "inverted": features(inverted(x_test)),
            "rotated 90": features(rotated(x_test, 1)),
            "rotated 180": features(rotated(x_test, 2)),
            "letters": features(letters),
            "only 3s": features(x_test[y_test == 3]),
        }
        watched = modelconfig.load(model_dir).drift_features
        super().__init__("digits", features(x_test), list(watched), pools)


# ----- text -----

DOC_MODULES = ("os", "json", "collections", "itertools", "functools", "re", "pathlib", "shutil", "subprocess")


def doc_sentences(modules=DOC_MODULES, min_chars: int = 20, max_chars: int = 400) -> list[str]:
    """Sentences of the standard library's docstrings: text of another domain (technical documentation),
    available offline and the same for one Python version."""
    sentences = []
    for name in modules:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        docs += [inspect.getdoc(obj) or "" for attr, obj in sorted(vars(module).items()) if not attr.startswith("_")]
        for doc in docs:
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if min_chars <= len(sentence) <= max_chars and sentence not in sentences:
                    sentences.append(sentence)
    return sentences


class Sentiment(Pools):
    def __init__(self, model_dir: Path, german: Path, seed: int = 42):
        import json

        import torch

        train = load_train(model_dir, "sentiment_train")
        torch.set_num_threads(1)
        x, y, x_test, y_test = train.split(*train.load())
        model = train.pretrained()
        tok = train.tokenizer()
        embeddings = train.embed(model, tok, x)
        train.fit_head(model, embeddings, y, seed)
        projection = train.principal_components(embeddings)

        def features(texts):
            return train.reference_data(model, tok, texts, train.embed(model, tok, texts), projection)

        pools = {
            "German reviews": features(json.loads(german.read_text(encoding="utf-8"))),
            "Python docs": features(doc_sentences()),
            "only negative": features([t for t, label in zip(x_test, y_test, strict=True) if label == 0]),
        }
        watched = modelconfig.load(model_dir).drift_features
        super().__init__("sentiment", features(x_test), list(watched), pools)
