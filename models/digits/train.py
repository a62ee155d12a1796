"""Train the digits CNN on scikit-learn's bundled 8×8 digits (no download).

Writes into --out (default: artifacts/ beside this file):
  weights.pt           the state dict TorchServe loads
  metrics.json         held-out accuracy (the archiver copies it into the archive's metadata)
  reference_stats.json per drift feature of the training images (mean intensity, contrast,
                       share of ink, as handlers/image_codec.py computes them): count, mean, std
  reference_data.npz   every drift feature of the held-out images, one column each, as the handler
                       computes them (image_codec.image_drift_row): the summary features, the
                       penultimate layer on the training set's top principal components (pc1..pc5),
                       the confidence; the archiver sketches the watched ones. Held-out, not
                       training images: on the images it was fitted to, the model is surer than on
                       any other (confidence ~1: 1.6 training stds above held-out digits'), so a
                       training reference would call every production stream drift (docs/drift.md)
  files/drift_pca.json those principal components of the training set's penultimate layer
                       (handlers/drift_projection.py), packed into the archive for the handler
  golden_set.json      held-out grids (JSON) and the sample PNGs (image/png, as bytes) with the
                       label and probabilities this exact model gives; the smoke test replays
                       them before any promotion (archiver/golden.py: the format)
and, with --samples-dir, one PNG per class drawn from the held-out digits.

Same seed and epochs give bit-identical weights: one thread, deterministic
algorithms, every shuffle drawn from the seeded generator. The split is drawn
from its own fixed seed, so every training seed is judged on the same held-out set.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import numpy
import torch
from PIL import Image
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "handlers"))
sys.path.insert(0, str(HERE.parents[1]))
from drift_projection import FILE as PCA_FILE  # noqa: E402
from drift_projection import Penultimate, Projection, principal_components  # noqa: E402
from image_codec import (  # noqa: E402
    DEFAULT_MAX_PIXELS,
    SUMMARY_FEATURES,
    Grid,
    grid_from_image,
    image_drift_features,
    image_drift_row,
    summary_features,
)
from model import DigitsCNN  # noqa: E402

from archiver import golden  # noqa: E402

SPLIT_SEED = 20261128
HELD_OUT = 0.2
SCALE = 16.0


def split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, held-out x, held-out y); x is (N, 1, 8, 8) from 0 to 16."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    cut = int(len(y) * (1 - HELD_OUT))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def train(seed: int, epochs: int, x: torch.Tensor, y: torch.Tensor) -> DigitsCNN:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DigitsCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 64):
            idx = order[start : start + 64]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimiser.step()
    return model.eval()


def probabilities(model: DigitsCNN, x: torch.Tensor) -> torch.Tensor:
    """Scored as the handler scores: float64, softmax."""
    with torch.no_grad():
        out = torch.softmax(model.double()(x.double()), dim=1)
    model.float()
    return out


def reference_stats(x: torch.Tensor) -> dict:
    rows = torch.tensor([summary_features(Grid(tuple(img.flatten().tolist()), 8, SCALE)) for img in x])
    return {
        name: {"count": len(rows), "mean": float(rows[:, i].double().mean()), "std": float(rows[:, i].double().std())}
        for i, name in enumerate(SUMMARY_FEATURES)
    }


def penultimate(model: DigitsCNN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, the last linear layer's inputs) of the images, scored as the handler scores them."""
    hook = Penultimate(model)
    try:
        probs = probabilities(model, x)
        (rows,) = hook.take(1)
    finally:
        hook.hook.remove()
    return probs, rows


def reference_data(model: DigitsCNN, x: torch.Tensor, projection: Projection) -> dict[str, numpy.ndarray]:
    """Every drift feature of the images x, one column each, as the handler computes it."""
    probs, rows = penultimate(model, x)
    pcs = projection.apply(rows)
    table = [
        image_drift_row(Grid(tuple(img.flatten().tolist()), 8, SCALE), pc.tolist(), p.tolist())
        for img, pc, p in zip(x, pcs, probs, strict=True)
    ]
    columns = numpy.asarray(table, dtype=numpy.float64).T
    return dict(zip(image_drift_features(projection.names), columns, strict=True))


def golden_set(model: DigitsCNN, x: torch.Tensor, pngs: list[bytes], n: int = 16) -> list[dict]:
    """n held-out grids sent as JSON, and the PNGs sent as image/png: each decoded as the handler
    decodes it (image_codec), so the recorded answer is the one the served model must give."""
    grids = [[[int(v) for v in row] for row in img[0].tolist()] for img in x[:n]]
    decoded = [grid_from_image(png, 8, SCALE, DEFAULT_MAX_PIXELS).values for png in pngs]
    decoded = torch.tensor(decoded, dtype=torch.float64).reshape(-1, 1, 8, 8)  # as the handler: no float32 step
    probs = probabilities(model, torch.cat([x[:n].double(), decoded]))
    answers = [{"label": int(p.argmax()), "probabilities": p.tolist()} for p in probs]
    cases = [{"data": grid, **answer} for grid, answer in zip(grids, answers[:n], strict=True)]
    cases += [golden.record(png, "image/png", **answer) for png, answer in zip(pngs, answers[n:], strict=True)]
    return cases


def sample_pngs(x: torch.Tensor, y: torch.Tensor, side: int = 32) -> list[bytes]:
    """One PNG per class, the first held-out digit of each: dark ink on white paper, side × side."""
    pngs = []
    for label in range(10):
        img = x[int((y == label).nonzero()[0])][0]
        grey = [round(255 - float(v) * 255 / SCALE) for v in img.flatten()]
        small = Image.new("L", (8, 8))
        small.putdata(grey)
        out = io.BytesIO()
        small.resize((side, side), Image.Resampling.NEAREST).save(out, format="PNG", optimize=True)
        pngs.append(out.getvalue())
    return pngs


def write_samples(pngs: list[bytes], out: Path) -> list[Path]:
    """digit-<class>.png for each of sample_pngs()."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label, png in enumerate(pngs):
        path = out / f"digit-{label}.png"
        path.write_bytes(png)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=HERE / "artifacts")
    parser.add_argument("--samples-dir", type=Path, help="also write one PNG per class here (e.g. samples/)")
    args = parser.parse_args(argv)

    x, y, x_test, y_test = split()
    model = train(args.seed, args.epochs, x, y)
    accuracy = float((probabilities(model, x_test).argmax(dim=1) == y_test).double().mean())
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "weights.pt")
    metrics = {
        "held_out_accuracy": round(accuracy, 4),
        "held_out": len(y_test),
        "trained_on": len(y),
        "seed": args.seed,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (args.out / "reference_stats.json").write_text(json.dumps(reference_stats(x), indent=2) + "\n")
    projection = principal_components(penultimate(model, x)[1])
    (args.out / "files").mkdir(exist_ok=True)
    (args.out / "files" / PCA_FILE).write_text(json.dumps(projection.to_dict()) + "\n")
    numpy.savez(args.out / "reference_data.npz", **reference_data(model, x_test, projection))
    pngs = sample_pngs(x_test, y_test)
    (args.out / "golden_set.json").write_text(json.dumps(golden_set(model, x_test, pngs)) + "\n")
    if args.samples_dir:
        write_samples(pngs, args.samples_dir)
    print(f"trained seed={args.seed} epochs={args.epochs} held-out accuracy={accuracy:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
