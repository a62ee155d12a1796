"""Pure arithmetic of drift detection: running statistics and the z-score.

For each feature the consumer keeps Welford's running mean and variance over
everything it has seen, and the mean of a sliding window of the most recent
values. The window mean is compared with the training mean in units of its
standard error under the training distribution:

    z = (window mean - reference mean) / (reference std / sqrt(n))

where n is the number of values in the window. Under no drift z is roughly
standard normal; a shift of k reference standard deviations gives z ~ k*sqrt(n).

Values are taken within ±MAX_ABS (in_range(); the consumer drops rows with
a value beyond it: a square of 1e200 overflows, one of 1e150 swamps every
variance it joins). Within it nothing here raises: squares are products,
and the window's running sum is recounted exactly when a large value
leaves it, so one huge input cannot leave the window mean wrong after it is
gone. A reference
without a positive, finite standard deviation (a feature constant in training) has no z-score: zscore() returns None and
usable_spread() tells the consumer why.
"""

import math
from dataclasses import dataclass, field

import numpy as np

MAX_ABS = 1e100  # beyond this a value's square swamps (or overflows) every sum it joins
EXACT_BELOW = 2.0**20  # evicting a larger value from the window triggers an exact recount
FEW = 4  # values of a message below which Welford adds them one by one


def in_range(x: float) -> bool:
    """True for a finite value the statistics take: |x| <= MAX_ABS."""
    return -MAX_ABS <= x <= MAX_ABS


def usable_spread(std) -> bool:
    """True if a reference standard deviation can scale a z-score: a positive, finite number."""
    return isinstance(std, (int, float)) and not isinstance(std, bool) and 0 < std < math.inf


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

    def add_many(self, xs) -> None:
        """Same result as add() per value, merged in one step (Chan et al.): a message's rows at once."""
        a = np.asarray(xs, dtype=np.float64)
        k = a.size
        if k <= FEW:  # add() per value: for a few values cheaper than numpy's calls
            for x in a.tolist():
                self.add(x)
            return
        if np.abs(a).max() <= MAX_ABS:  # numpy's squares cannot overflow within it
            mean_b = float(a.mean())
            d = a - mean_b
            m2_b = float(np.dot(d, d))
        else:  # beyond it (the consumer drops such rows), in Python: a product is inf, never a warning
            values = a.tolist()
            mean_b = math.fsum(values) / k
            m2_b = math.fsum((x - mean_b) * (x - mean_b) for x in values)
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
    """The last `size` values (a float64 array), their count and mean.

    A running sum, made exact again (fsum of the window) whenever a value of
    magnitude over EXACT_BELOW leaves it: subtracting a large value from a
    float sum loses the small ones added while it was there. (Not recounted
    at every message: for single-row messages that cost a third of the
    consumer's throughput.)
    """

    size: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    total: float = 0.0

    def add(self, x: float) -> None:
        self.add_many([x])

    def add_many(self, xs) -> None:
        xs = np.asarray(xs, dtype=np.float64)
        if xs.size >= self.size:  # the window is the last `size` of them: start afresh, exactly
            self.values = xs[-self.size :].copy()
            self.total = math.fsum(self.values.tolist())
            return
        drop = max(self.values.size + xs.size - self.size, 0)
        evicted = self.values[:drop]
        self.values = np.concatenate((self.values[drop:], xs))
        if evicted.size and not np.abs(evicted).max() <= EXACT_BELOW:
            self.total = math.fsum(self.values.tolist())
        else:
            self.total += float(xs.sum()) - float(evicted.sum())
            if not math.isfinite(self.total):
                self.total = math.fsum(self.values.tolist())

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0


def zscore(window_mean: float, n: int, ref_mean: float, ref_std: float, min_samples: int) -> float | None:
    """z of a window mean against the reference; None below min_samples values,
    or if the reference has no usable spread (see usable_spread)."""
    if not usable_spread(ref_std) or n < max(min_samples, 1):
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

    def add_many(self, xs) -> None:
        """A message's values (a list or an array) at once."""
        values = np.asarray(xs, dtype=np.float64)
        self.overall.add_many(values)
        self.window.add_many(values)

    def z(self, ref_mean: float, ref_std: float, min_samples: int) -> float | None:
        return zscore(self.window.mean, self.window.n, ref_mean, ref_std, min_samples)

    def state(self) -> dict:
        """What restores it (from_state): plain numbers, for the consumer's snapshot."""
        o = self.overall
        w = self.window
        return {"n": o.n, "mean": o.mean, "m2": o.m2, "window": w.values.tolist(), "window_sum": w.total}

    @classmethod
    def from_state(cls, window_size: int, state: dict) -> "FeatureDrift":
        """The FeatureDrift that state() described (its window cut to `window_size`); ValueError or
        TypeError if `state` is not such a description."""
        n, mean, m2 = state["n"], float(state["mean"]), float(state["m2"])
        values = np.asarray(state["window"], dtype=np.float64)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or values.ndim != 1 or values.size > n:
            raise ValueError(f"count {n!r} does not fit a window of {values.size} values")
        if not (in_range(mean) and 0 <= m2 < math.inf and all(map(in_range, values.tolist()))):
            raise ValueError("a statistic out of range")
        drift = cls(window_size, Welford(n, mean, m2))
        drift.window.add_many(values)
        if values.size <= window_size:  # the running sum as it was, to the last bit
            drift.window.total = float(state["window_sum"])
            if not math.isfinite(drift.window.total):
                raise ValueError("the window's sum is not finite")
        return drift
