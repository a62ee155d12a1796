"""Train the digits CNN on scikit-learn's bundled 8×8 digits (no download).

Writes into --out (default: artifacts/ beside this file):
  weights.pt           the state dict TorchServe loads
  metrics.json         held-out accuracy (the archiver copies it into the archive's metadata)
  reference_stats.json per drift feature of the training images (mean intensity, contrast,
                       share of ink, as handlers/image_codec.py computes them): count, mean, std
  golden_set.json      held-out grids with the label and probabilities this exact model gives;
                       the smoke test replays them before any promotion
and, with --samples-dir, one PNG per class drawn from the held-out digits.

Same seed and epochs give bit-identical weights: one thread, deterministic
algorithms, every shuffle drawn from the seeded generator. The split is drawn
from its own fixed seed, so every training seed is judged on the same held-out set.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "handlers"))
from image_codec import SUMMARY_FEATURES, Grid, summary_features  # noqa: E402
from model import DigitsCNN  # noqa: E402

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


def golden_set(model: DigitsCNN, x: torch.Tensor, n: int = 16) -> list[dict]:
    probs = probabilities(model, x[:n])
    return [
        {
            "data": [[int(v) for v in row] for row in img[0].tolist()],
            "label": int(p.argmax()),
            "probabilities": p.tolist(),
        }
        for img, p in zip(x[:n], probs, strict=True)
    ]


def write_samples(x: torch.Tensor, y: torch.Tensor, out: Path, side: int = 32) -> list[Path]:
    """One PNG per class, the first held-out digit of each: dark ink on white paper, side × side."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label in range(10):
        img = x[int((y == label).nonzero()[0])][0]
        grey = [round(255 - float(v) * 255 / SCALE) for v in img.flatten()]
        small = Image.new("L", (8, 8))
        small.putdata(grey)
        path = out / f"digit-{label}.png"
        small.resize((side, side), Image.Resampling.NEAREST).save(path, optimize=True)
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
    (args.out / "golden_set.json").write_text(json.dumps(golden_set(model, x_test)) + "\n")
    if args.samples_dir:
        write_samples(x_test, y_test, args.samples_dir)
    print(f"trained seed={args.seed} epochs={args.epochs} held-out accuracy={accuracy:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
