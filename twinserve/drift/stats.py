"""Pure arithmetic of drift detection: running statistics and the z-score.

For each feature the consumer keeps Welford's running mean and variance over
everything it has seen, and the mean of a sliding window of the most recent
values. The window mean is compared with the training mean in units of its
standard error under the training distribution:

    z = (window mean - reference mean) / (reference std / sqrt(n))

where n is the number of values in the window. Under no drift z is roughly
standard normal; a shift of k reference standard deviations gives z ~ k*sqrt(n).
"""

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Welford:
    """Running count, mean and sample variance, numerically stable."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def add_many(self, xs: list[float]) -> None:
        """Same result as add() per value, merged in one step (Chan et al.): a message's rows at once."""
        k = len(xs)
        if k == 0:
            return
        mean_b = math.fsum(xs) / k
        m2_b = math.fsum((x - mean_b) ** 2 for x in xs)
        n = self.n + k
        delta = mean_b - self.mean
        self.mean += delta * k / n
        self.m2 += m2_b + delta * delta * self.n * k / n
        self.n = n

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


@dataclass
class Window:
    """The last `size` values, their count and mean (a running sum; features are bounded)."""

    size: int
    values: deque = field(default_factory=deque)
    total: float = 0.0

    def add(self, x: float) -> None:
        self.values.append(x)
        self.total += x
        if len(self.values) > self.size:
            self.total -= self.values.popleft()

    def add_many(self, xs: list[float]) -> None:
        if len(xs) >= self.size:  # the window is the last `size` of them: start afresh, exactly
            self.values = deque(xs[-self.size :])
            self.total = math.fsum(self.values)
            return
        self.values.extend(xs)
        self.total += math.fsum(xs)
        while len(self.values) > self.size:
            self.total -= self.values.popleft()

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.values else 0.0


def zscore(window_mean: float, n: int, ref_mean: float, ref_std: float, min_samples: int) -> float | None:
    """z of a window mean against the reference; None below min_samples values.

    Raises:
        ValueError: if the reference standard deviation is not positive.
    """
    if ref_std <= 0 or not math.isfinite(ref_std):
        raise ValueError(f"reference std must be positive, got {ref_std}")
    if n < max(min_samples, 1):
        return None
    return (window_mean - ref_mean) / (ref_std / math.sqrt(n))


@dataclass
class FeatureDrift:
    """Everything tracked for one feature of one model version."""

    window_size: int
    overall: Welford = field(default_factory=Welford)
    window: Window = None

    def __post_init__(self):
        if self.window is None:
            self.window = Window(self.window_size)

    def add(self, x: float) -> None:
        self.overall.add(x)
        self.window.add(x)

    def add_many(self, xs: list[float]) -> None:
        self.overall.add_many(xs)
        self.window.add_many(xs)

    def z(self, ref_mean: float, ref_std: float, min_samples: int) -> float | None:
        return zscore(self.window.mean, self.window.n, ref_mean, ref_std, min_samples)
