"""Train the demo regressor on seeded synthetic data.

Writes into --out (default: artifacts/ beside this file):
  weights.pt           the state dict TorchServe loads
  reference_stats.json per training feature: count, mean, std (drift detection
                       compares live inputs against these)
  reference_data.npz   the training inputs by name and the model's output on them
                       ("prediction"): the archiver sketches their distributions
  golden_set.json      inputs with the outputs this exact model gives; the smoke
                       test replays them before any promotion

Same seed and epochs give bit-identical weights: single thread, deterministic
algorithms, no data loader shuffling outside the seeded generator.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import RegressorMLP  # noqa: E402

FEATURES = ["x1", "x2"]


def target(x: torch.Tensor) -> torch.Tensor:
    """The function the model learns: smooth, non-linear, in both features."""
    return 3.0 * x[:, 0] - 2.0 * x[:, 1] + torch.sin(2.0 * math.pi * x[:, 0] * x[:, 1])


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, len(FEATURES), generator=generator)
    noise = 0.05 * torch.randn(n, generator=generator)
    return x, target(x) + noise


def reference_stats(x: torch.Tensor) -> dict:
    stats = {}
    for i, name in enumerate(FEATURES):
        col = x[:, i].double()
        stats[name] = {
            "count": int(col.numel()),
            "mean": float(col.mean()),
            "std": float(col.std(unbiased=True)),
        }
    return stats


def reference_data(model: RegressorMLP, x: torch.Tensor) -> dict:
    """Columns of what the handler publishes: each input, and the output scored as the handler does."""
    with torch.no_grad():
        prediction = model.double()(x.double()).float().double().reshape(-1)
    model.float()
    columns = {name: x[:, i].double().numpy() for i, name in enumerate(FEATURES)}
    return {**columns, "prediction": prediction.numpy()}


def train(seed: int, epochs: int, n_samples: int) -> tuple[RegressorMLP, torch.Tensor, float]:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = make_data(n_samples, generator)
    model = RegressorMLP(n_features=len(FEATURES))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = 256
    for _ in range(epochs):
        order = torch.randperm(n_samples, generator=generator)
        for start in range(0, n_samples, batch):
            idx = order[start : start + batch]
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(model(x), y))
    return model, x, mse


def golden_set(model: RegressorMLP, generator: torch.Generator, n: int = 16) -> list[dict]:
    """Inputs are rounded before the model sees them, so replaying them through
    JSON gives exactly the recorded outputs; scored like the handler scores them
    (float64, rounded to float32)."""
    inputs = torch.rand(n, len(FEATURES), generator=generator)
    inputs = torch.cat([torch.tensor([[0.2, 0.6]]), inputs])  # the workshop's example first
    inputs = torch.round(inputs, decimals=6)
    with torch.no_grad():
        outputs = model.double()(inputs.double()).float()
    model.float()
    return [{"data": [float(v) for v in row], "output": float(out)} for row, out in zip(inputs, outputs, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "artifacts")
    args = parser.parse_args(argv)

    model, x, mse = train(args.seed, args.epochs, args.samples)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "weights.pt")
    (args.out / "reference_stats.json").write_text(json.dumps(reference_stats(x), indent=2) + "\n")
    numpy.savez(args.out / "reference_data.npz", **reference_data(model, x))
    golden = golden_set(model, torch.Generator().manual_seed(args.seed + 1))
    (args.out / "golden_set.json").write_text(json.dumps(golden, indent=2) + "\n")
    print(f"trained seed={args.seed} epochs={args.epochs} train_mse={mse:.5f} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
