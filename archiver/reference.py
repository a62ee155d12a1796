"""The training distribution of each watched feature, as the drift consumer compares against it.

train.py writes artifacts/reference_data.npz: one named column per value the
handler publishes (the inputs, and the model's output as "prediction"), drawn
from the training set. At build time every watched feature gets, beside its
count, mean and standard deviation, a KLL quantile sketch (Apache DataSketches)
of that column, serialised and base64-encoded under "kll". A sketch of k=400
is ~6 KB and answers any quantile within ~0.7% of rank (the error the KS test
inherits; docs/drift.md), whatever the training set's size.

Watched features are the model's `twinserve: drift_features` if set, else
every column of the file. Without the file (a model trained before it
existed) reference_stats.json is used as it is: mean and std, no sketch, and
the consumer keeps only the z-score for it.
"""

import base64
from pathlib import Path

import numpy as np

KLL_K = 400
DATA_FILE = "reference_data.npz"


class ReferenceError(Exception):
    """The reference data does not fit the model's settings; the message says why."""


def kll_base64(values: np.ndarray, k: int = KLL_K) -> str:
    from datasketches import kll_doubles_sketch

    sketch = kll_doubles_sketch(k)
    sketch.update(np.ascontiguousarray(values, dtype=np.float64))
    return base64.b64encode(sketch.serialize()).decode("ascii")


def column_reference(values: np.ndarray) -> dict:
    """count, mean, std (unbiased, as train.py's) and the KLL sketch of one column."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise ReferenceError("a reference column must hold at least 2 finite numbers")
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)),
        "kll": kll_base64(values),
    }


def reference_columns(artifacts: Path) -> list[str]:
    """The column names of reference_data.npz (none without the file)."""
    path = Path(artifacts) / DATA_FILE
    if not path.is_file():
        return []
    with np.load(path) as data:
        return list(data.files)


def reference_stats(artifacts: Path, stats: dict, watched: list[str] | None) -> dict:
    """reference_stats.json's entries, with the sketched columns of reference_data.npz merged in."""
    path = Path(artifacts) / DATA_FILE
    if not path.is_file():
        return stats
    with np.load(path) as data:
        columns = {name: data[name] for name in data.files}
    names = list(watched) if watched else list(columns)
    missing = [n for n in names if n not in columns]
    if missing:
        raise ReferenceError(f"drift_features {missing} are not columns of {path} (it has {sorted(columns)})")
    out = dict(stats)
    for name in names:
        try:
            out[name] = {**stats.get(name, {}), **column_reference(columns[name])}
        except ReferenceError as exc:
            raise ReferenceError(f"{path}: column {name!r}: {exc}") from None
    return out
