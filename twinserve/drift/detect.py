"""Distribution drift per model version: tests per feature over a sliding window, and one verdict.

The reference of a feature is the KLL sketch of its training distribution
that the archiver wrote (archiver/reference.py), decoded once into a grid of
QUANTILES quantiles. A model version's features are the entries of its
reference with a sketch, whatever the model's kind: names, not code.

Per feature, on the window's values (n of them, m in the training set):

- ks: the one-sample Kolmogorov-Smirnov statistic D of the window against the
  reference CDF (scipy.stats.kstest with a callable: the sketch's quantile
  grid, linearly interpolated). Its p-value is that of the two-sample test
  with n and m (scipy.stats.kstwo at n*m/(n+m)), because the reference is
  itself a sample; Bonferroni-corrected over the version's features.
  Drifting if the corrected p-value is below `alpha`.
- wasserstein: scipy.stats.wasserstein_distance of the window to the
  reference's quantiles, divided by the training std (a distance in training
  standard deviations: an effect size, it does not grow with the window).
- psi: the population stability index on PSI_BINS bins of equal training
  probability (edges from the sketch; scipy has no PSI, it is one line).
- zscore: the window mean against the training mean, as stats.zscore.

The verdict: a feature is drifting if the KS test says so and the change is
large enough to matter (wasserstein >= min_wasserstein), or if the change is
large whatever the KS test says (wasserstein >= large_wasserstein). Drifted:
at least `min_share` of the version's features drifting (any one, by
default), at `confirm` consecutive evaluations (two: one more evaluation's
delay, and a chance alarm of one window is not reported). The thresholds are
chosen with `make drift-eval` (docs/drift.md) for at most one false alarm per
100,000 undrifted rows.

The window holds the last `max_rows` rows not older than `max_age_s`
seconds (count and time); no verdict below `min_rows` rows. The tests run
every `every` rows, not per message: their cost is per window.
"""

import base64
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from twinserve.errors import ConfigError

QUANTILES = 1001  # points of the reference CDF taken from the sketch
PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin's share: PSI's logarithm needs one
TESTS = ("ks", "wasserstein", "psi", "zscore")


@dataclass(frozen=True)
class VerdictSettings:
    max_rows: int = 2000
    max_age_s: float = 900.0
    min_rows: int = 500
    every: int = 250
    alpha: float = 1e-3
    min_wasserstein: float = 0.05
    large_wasserstein: float = 0.1
    psi_threshold: float = 0.1
    z_threshold: float = 4.0
    min_share: float = 1e-9  # any drifting feature
    confirm: int = 2  # consecutive evaluations the rule must hold for before the verdict says drifted

    @classmethod
    def from_mapping(cls, raw, where: str) -> "VerdictSettings":
        """Settings from config/stack.yaml's drift.verdict (missing keys keep their defaults); a bad key or
        value is one ConfigError line naming it, so the consumer refuses to start instead of judging wrongly."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
        fields = cls.__dataclass_fields__
        unknown = sorted(k for k in raw if k not in fields)
        if unknown:
            raise ConfigError(f"{where}: unknown {unknown}; known {sorted(fields)}")
        values = {}
        for key, value in raw.items():
            integer = fields[key].type in (int, "int")
            ok = isinstance(value, int) if integer else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
                kind = "a positive integer" if integer else "a positive number"
                raise ConfigError(f"{where}.{key}: expected {kind}, got {value!r}")
            values[key] = value
        settings = cls(**{**cls().__dict__, **values})
        if settings.min_rows > settings.max_rows:
            raise ConfigError(f"{where}: min_rows {settings.min_rows} exceeds max_rows {settings.max_rows}")
        if not settings.alpha < 1:
            raise ConfigError(f"{where}.alpha: expected below 1, got {settings.alpha!r}")
        if settings.min_wasserstein > settings.large_wasserstein:
            raise ConfigError(f"{where}: min_wasserstein exceeds large_wasserstein")
        return settings


@dataclass(frozen=True)
class Reference:
    """One feature's training distribution, from its archive entry."""

    count: int
    mean: float
    std: float
    quantiles: np.ndarray  # values at RANKS
    psi_edges: np.ndarray  # inner bin edges, PSI_BINS - 1 of them (fewer if values repeat)

    RANKS = np.linspace(0.0, 1.0, QUANTILES)

    @classmethod
    def from_entry(cls, entry: dict) -> "Reference | None":
        """The reference of an archive entry ({count, mean, std, kll}), or None without a sketch."""
        if not isinstance(entry, dict) or not isinstance(entry.get("kll"), str):
            return None
        from datasketches import kll_doubles_sketch

        sketch = kll_doubles_sketch.deserialize(base64.b64decode(entry["kll"]))
        quantiles = np.asarray(sketch.get_quantiles(list(cls.RANKS)), dtype=np.float64)
        inner = np.unique(np.asarray(sketch.get_quantiles(list(np.arange(1, PSI_BINS) / PSI_BINS))))
        count = int(entry.get("count") or sketch.n)
        return cls(count, float(entry["mean"]), float(entry["std"]), quantiles, inner)

    @property
    def zero_spread(self) -> bool:
        return not (math.isfinite(self.std) and self.std > 0 and self.quantiles[-1] > self.quantiles[0])

    def cdf(self, x):
        return np.interp(x, self.quantiles, self.RANKS, left=0.0, right=1.0)

    def psi_shares(self) -> np.ndarray:
        """The training share of each PSI bin (equal, unless repeated values merged edges)."""
        ranks = self.cdf(self.psi_edges)
        return np.diff(np.concatenate(([0.0], ranks, [1.0])))


def feature_tests(values: np.ndarray, ref: Reference, n_features: int) -> dict[str, float]:
    """The statistics of one feature's window: ks, ks_pvalue (Bonferroni), wasserstein, psi, zscore."""
    n = values.size
    d = float(sps.kstest(values, ref.cdf, method="asymp").statistic)
    n_eff = max(int(round(n * ref.count / (n + ref.count))), 1)
    p = float(sps.kstwo.sf(d, n_eff))
    w = float(sps.wasserstein_distance(values, ref.quantiles)) / ref.std
    actual = np.bincount(np.searchsorted(ref.psi_edges, values, side="right"), minlength=ref.psi_edges.size + 1) / n
    expected = ref.psi_shares()
    a, e = np.maximum(actual, PSI_FLOOR), np.maximum(expected, PSI_FLOOR)
    psi = float(np.sum((a - e) * np.log(a / e)))
    z = (float(values.mean()) - ref.mean) / (ref.std / math.sqrt(n))
    return {"ks": d, "ks_pvalue": min(p * n_features, 1.0), "wasserstein": w, "psi": psi, "zscore": z}


def drifting(result: dict[str, float], s: VerdictSettings) -> dict[str, bool]:
    """Each test's flag on its own, and the verdict's rule ("verdict")."""
    flags = {
        "ks": result["ks_pvalue"] < s.alpha,
        "wasserstein": result["wasserstein"] >= s.large_wasserstein,
        "psi": result["psi"] >= s.psi_threshold,
        "zscore": abs(result["zscore"]) > s.z_threshold,
    }
    flags["verdict"] = (flags["ks"] and result["wasserstein"] >= s.min_wasserstein) or flags["wasserstein"]
    return flags


@dataclass
class Verdict:
    rows: int  # in the window
    features: dict[str, dict[str, float]]  # feature -> statistics (zero-spread features left out)
    flags: dict[str, dict[str, bool]]  # feature -> test -> drifting
    zero_spread: list[str]
    share: float  # of the tested features drifting by the verdict's rule
    detected: bool
    streaks: dict[str, int]  # "verdict" and each test: consecutive evaluations its rule held for

    def detected_by(self, test: str, confirm: int) -> bool:
        """What the verdict would be with one test alone as the rule (for the evaluation)."""
        return self.streaks[test] >= confirm


@dataclass
class VersionWindow:
    """The recent rows of one model version, by feature name, and its verdicts."""

    references: dict[str, Reference]
    settings: VerdictSettings = field(default_factory=VerdictSettings)
    blocks: deque = field(default_factory=deque)  # (time, {feature: values}) oldest first
    rows: int = 0
    since_eval: int = 0
    last: Verdict | None = None
    streaks: dict = field(default_factory=lambda: dict.fromkeys(("verdict", *TESTS), 0))

    @classmethod
    def from_reference_stats(cls, stats: dict, settings: VerdictSettings | None = None) -> "VersionWindow | None":
        refs = {}
        for name, entry in (stats or {}).items():
            ref = Reference.from_entry(entry)
            if ref is not None:
                refs[name] = ref
        return cls(refs, settings or VerdictSettings()) if refs else None

    def add(self, columns: dict[str, list[float]], now: float) -> Verdict | None:
        """One message's columns (by name; unknown names ignored, missing ones simply absent);
        the new verdict if this message made one due, else None."""
        block = {f: np.asarray(v, dtype=np.float64) for f, v in columns.items() if f in self.references}
        n = max((v.size for v in block.values()), default=0)
        if n == 0:
            return None
        self.blocks.append((now, n, block))
        self.rows += n
        self.since_eval += n
        self._trim(now)
        if self.rows < self.settings.min_rows or self.since_eval < self.settings.every:
            return None
        self.since_eval = 0
        self.last = self.evaluate()
        return self.last

    def _trim(self, now: float) -> None:
        s = self.settings
        while self.blocks and (now - self.blocks[0][0] > s.max_age_s or self.rows - self.blocks[0][1] >= s.max_rows):
            _, n, _ = self.blocks.popleft()
            self.rows -= n

    def column(self, feature: str) -> np.ndarray:
        """The window's last max_rows values of a feature."""
        parts = [b[feature] for _, _, b in self.blocks if feature in b]
        values = np.concatenate(parts) if parts else np.empty(0)
        return values[-self.settings.max_rows :]

    def evaluate(self) -> Verdict:
        tested = {f: r for f, r in self.references.items() if not r.zero_spread}
        zero = sorted(set(self.references) - set(tested))
        results, flags = {}, {}
        for f, ref in tested.items():
            values = self.column(f)
            if values.size < self.settings.min_rows:
                continue  # a column older messages lack (e.g. the prediction): no verdict on it yet
            results[f] = feature_tests(values, ref, len(tested))
            flags[f] = drifting(results[f], self.settings)
        shares = {t: sum(f[t] for f in flags.values()) / len(flags) if flags else 0.0 for t in self.streaks}
        for t, share in shares.items():
            self.streaks[t] = self.streaks[t] + 1 if flags and share >= self.settings.min_share else 0
        detected = self.streaks["verdict"] >= self.settings.confirm
        rows = min(self.rows, self.settings.max_rows)
        return Verdict(rows, results, flags, zero, shares["verdict"], detected, dict(self.streaks))
