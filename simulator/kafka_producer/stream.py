"""Seeded synthetic inputs shaped like the training data, optionally shifted.

The demo model's training features are uniform; a uniform distribution with
the reference mean and standard deviation spans mean ± sqrt(3)·std. After
`drift_after` messages, `feature` moves by `shift` reference standard
deviations, which the consumer should see as |z| ≈ shift·sqrt(window).
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from twinserve.drift.messages import encode


@dataclass(frozen=True)
class Drift:
    feature: str | None = None  # None: no drift
    shift: float = 0.0  # in reference standard deviations
    scale: float = 1.0  # the spread multiplied by this around the reference mean (2: std doubled, same mean)
    after: int = 0  # messages before the shift starts


def sample_row(
    reference: dict, features: list[str], rng: random.Random, shifted: str | None, shift: float, scale: float = 1.0
) -> list:
    row = []
    for name in features:
        mean, std = reference[name]["mean"], reference[name]["std"]
        half_width = math.sqrt(3.0) * std
        value = rng.uniform(mean - half_width, mean + half_width)
        if name == shifted:
            value = mean + scale * (value - mean) + shift * std
        row.append(value)
    return row


def messages(
    model: str,
    version: str,
    reference: dict,
    count: int,
    rows_per_message: int = 1,
    drift: Drift = Drift(),
    seed: int = 0,
) -> Iterator[bytes]:
    """`count` encoded messages; the same arguments give the same bytes."""
    if drift.feature is not None and drift.feature not in reference:
        raise ValueError(f"unknown feature {drift.feature!r}; the reference has {sorted(reference)}")
    if count < 0 or rows_per_message < 1:
        raise ValueError("count must be >= 0 and rows_per_message >= 1")
    features = sorted(f for f in reference if f != "prediction")  # inputs only: no model scores them here
    rng = random.Random(seed)
    for i in range(count):
        shifted = drift.feature if i >= drift.after else None
        rows = [
            sample_row(reference, features, rng, shifted, drift.shift, drift.scale) for _ in range(rows_per_message)
        ]
        yield encode(model, version, features, rows)
