"""Headless Locust run with a pass/fail gate (make loadtest; the pipeline's load gate).

Runs simulator/locust/locustfile.py, keeps Locust's CSV and HTML reports,
and judges the aggregate against thresholds: error ratio, p99 latency and
minimum requests/s. Exits non-zero when a threshold is missed.
"""

import argparse
import csv
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from twinserve.settings import load_stack, project_dir

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


def run_locust(host: str, route: str, users: int, spawn_rate: int, seconds: int, out_dir: Path) -> Aggregate:
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "locust"
    argv = [
        sys.executable, "-m", "locust", "-f", str(project_dir() / LOCUSTFILE), "--headless", "--only-summary",
        "--host", host, "--route", route, "-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s",
        "--csv", str(prefix), "--html", str(out_dir / "locust.html"), "--loglevel", "WARNING",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.is_file():
        raise SystemExit(f"loadtest: error: locust wrote no report: {result.stderr.strip().splitlines()[-1:]}")
    return read_aggregate(stats)


def main(argv: list[str] | None = None) -> int:
    defaults = Thresholds()
    parser = argparse.ArgumentParser(prog="python -m twinserve.pipeline.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="default: the stack's Nginx URL")
    parser.add_argument("--route", default="/predict", choices=["/predict", "/test/predict"])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=25)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, help="default: var/loadtest in the project directory")
    parser.add_argument("--max-error-ratio", type=float, default=defaults.max_error_ratio)
    parser.add_argument("--max-p99-ms", type=float, default=defaults.max_p99_ms)
    parser.add_argument("--min-rps", type=float, default=defaults.min_rps)
    args = parser.parse_args(argv)
    host = args.host or load_stack().nginx.url
    args.out = args.out or project_dir() / "var" / "loadtest"
    agg = run_locust(host, args.route, args.users, args.spawn_rate, args.seconds, args.out)
    limits = Thresholds(args.max_error_ratio, args.max_p99_ms, args.min_rps)
    print(
        f"locust {args.users} users {args.seconds}s on {host}{args.route}: {agg.requests} requests, "
        f"{agg.failures} failures (ratio {agg.error_ratio:.4f}), p99 {agg.p99_ms:.0f} ms, {agg.rps:.1f} req/s"
    )
    print(f"reports: {args.out}/locust_stats.csv, {args.out}/locust.html")
    missed = judge(agg, limits)
    if missed:
        print(f"loadtest: FAILED: {'; '.join(missed)}", file=sys.stderr)
        return 1
    print("loadtest: passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
