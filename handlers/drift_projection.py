"""A model's penultimate layer, projected on the training set's top principal components: drift features.

An image or a sentence has no handful of numbers to compare with the training
data, but the model makes some: the activations that enter its last linear
layer (the CNN's penultimate layer; the sentiment model's sentence embedding).
Their first few principal components over the training set summarise what the
model "sees"; inputs unlike the training data move them, and so do changes in
the mix of classes (the penultimate layer of a classifier clusters by class).

train.py computes the components on the training set (principal_components)
and ships them in the archive (artifacts/files/drift_pca.json, the handler's
`drift_pca` setting); the handler captures the last linear layer's input on
every forward pass (Penultimate) and projects it (Projection.apply). Both sides
run these same functions, so reference and production values agree.
Pure torch: imported by handlers inside the archive and by train.py.
"""

import json
from dataclasses import dataclass

import torch
from torch import nn

FILE = "drift_pca.json"
COMPONENTS = 5  # enough to catch what the model sees change; each is one more test per window


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last nn.Linear in registration order: the classifier's head."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer whose input could be projected")
    return linears[-1]


class Penultimate:
    """Keeps the input of the model's last linear layer at each forward pass (a forward pre-hook)."""

    def __init__(self, model: nn.Module):
        self.batches: list[torch.Tensor] = []
        self.hook = last_linear(model).register_forward_pre_hook(self._keep)

    def _keep(self, _module, args) -> None:
        self.batches.append(args[0].detach())

    def take(self, passes: int) -> list[torch.Tensor]:
        """The last `passes` forward passes' inputs (earlier ones, e.g. of a failed batch, are dropped)."""
        kept, self.batches = self.batches[len(self.batches) - passes :], []
        return kept


def pc_names(k: int) -> list[str]:
    return [f"pc{i + 1}" for i in range(k)]


@dataclass(frozen=True)
class Projection:
    """Centre, then project on k principal components: (N, d) -> (N, k), in float64."""

    mean: torch.Tensor  # (d,)
    components: torch.Tensor  # (k, d), orthonormal rows
    explained: tuple[float, ...]  # share of the training variance of each component

    @property
    def names(self) -> list[str]:
        return pc_names(self.components.shape[0])

    def apply(self, rows: torch.Tensor) -> torch.Tensor:
        return (rows.to(torch.float64) - self.mean) @ self.components.T

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "components": self.components.tolist(), "explained": list(self.explained)}

    @classmethod
    def from_dict(cls, raw: dict) -> "Projection":
        mean = torch.tensor(raw["mean"], dtype=torch.float64)
        components = torch.tensor(raw["components"], dtype=torch.float64)
        if mean.ndim != 1 or components.ndim != 2 or components.shape[1] != mean.shape[0]:
            raise ValueError(f"a projection needs mean (d,) and components (k, d): {mean.shape}, {components.shape}")
        return cls(mean, components, tuple(raw.get("explained", ())))

    @classmethod
    def load(cls, path) -> "Projection":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


def principal_components(rows: torch.Tensor, k: int = COMPONENTS) -> Projection:
    """The top k principal components of the rows (the training set's penultimate activations).

    An SVD of the centred rows in float64. A component's sign is arbitrary; each is
    turned so that its largest loading is positive, so the same rows give the same
    projection on every machine.
    """
    x = rows.to(torch.float64)
    if x.ndim != 2 or not 0 < k <= min(x.shape):
        raise ValueError(f"principal_components needs (N, d) rows with k <= min(N, d); got {tuple(x.shape)}, k={k}")
    mean = x.mean(dim=0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    top = vt[:k]
    signs = torch.sign(top.gather(1, top.abs().argmax(dim=1, keepdim=True)))
    variance = s**2
    explained = tuple(float(v) for v in variance[:k] / variance.sum())
    return Projection(mean, top * signs, explained)
