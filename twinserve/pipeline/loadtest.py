"""Headless Locust run with a pass/fail gate (`twinserve loadtest`; the pipeline's load gate).

Runs simulator/locust/locustfile.py against one model's route with that model's
sample requests (twinserve.samples in its model-config.yaml: JSON rows, PNG bytes,
...), keeps Locust's CSV and HTML reports, and judges the aggregate against
thresholds: error ratio, p99 latency and minimum requests/s. A run that produced no
report raises ServiceError, a missed threshold CheckFailed (twinserve/cli/loadtest.py):
library code, it never exits the process.
"""

import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from archiver import modelconfig
from archiver.modelconfig import ModelConfigError, Payload
from twinserve.errors import ConfigError, ServiceError
from twinserve.settings import project_dir

LOCUSTFILE = Path("simulator", "locust", "locustfile.py")  # in the project directory


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float = 0.01
    max_p99_ms: float = 200.0
    min_rps: float = 50.0


@dataclass(frozen=True)
class Aggregate:
    requests: int
    failures: int
    p99_ms: float
    rps: float

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 1.0


def read_aggregate(stats_csv: Path) -> Aggregate:
    """The "Aggregated" row of Locust's <prefix>_stats.csv."""
    with stats_csv.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return Aggregate(
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    p99_ms=float(row["99%"]) if row["99%"] not in ("", "N/A") else float("inf"),
                    rps=float(row["Requests/s"]),
                )
    raise ValueError(f"{stats_csv} has no Aggregated row")


def judge(agg: Aggregate, limits: Thresholds) -> list[str]:
    """Every threshold the run missed, as a sentence; empty when it passed."""
    missed = []
    if agg.requests == 0:
        return ["no request was made"]
    if agg.error_ratio > limits.max_error_ratio:
        missed.append(f"error ratio {agg.error_ratio:.4f} > {limits.max_error_ratio}")
    if agg.p99_ms > limits.max_p99_ms:
        missed.append(f"p99 {agg.p99_ms:.0f} ms > {limits.max_p99_ms:.0f} ms")
    if agg.rps < limits.min_rps:
        missed.append(f"{agg.rps:.1f} requests/s < {limits.min_rps}")
    return missed


def model_samples(model_dir: Path) -> tuple[Payload, ...]:
    """The request bodies a model's load tests send: its twinserve.samples."""
    try:
        return modelconfig.load(model_dir).samples
    except ModelConfigError as exc:
        raise ConfigError(f"{model_dir}: {exc}") from None


def run_locust(
    host: str, route: str, users: int, spawn_rate: int, seconds: int, out_dir: Path, samples: tuple[Payload, ...]
) -> Aggregate:
    """Locust on host+route sending `samples` (picked at random) and a few invalid bodies; its aggregate."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "locust"
    samples_file = out_dir / "samples.json"
    samples_file.write_text(json.dumps([s.to_dict() for s in samples]))
    argv = [
        sys.executable, "-m", "locust", "-f", str(project_dir() / LOCUSTFILE), "--headless", "--only-summary",
        "--host", host, "--route", route, "--samples", str(samples_file),
        "-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s",
        "--csv", str(prefix), "--html", str(out_dir / "locust.html"), "--loglevel", "WARNING",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.is_file():
        last = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise ServiceError(f"locust wrote no report: {last[0]}")
    return read_aggregate(stats)
