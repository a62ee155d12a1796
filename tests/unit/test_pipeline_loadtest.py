"""twinserve/pipeline/loadtest.py: Locust's aggregated row read, and judged against the load gate's thresholds."""

import math
from pathlib import Path

import pytest

from twinserve.pipeline.loadtest import Aggregate, Thresholds, judge, read_aggregate

# Locust 2.x's <prefix>_stats.csv header (locust/stats.py, StatsCSV.requests_csv_columns).
LOCUST_COLUMNS = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
    "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
    "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
]  # fmt: skip


def write_stats(path: Path, rows: list[str]) -> Path:
    """As Locust writes it: csv.writer, so CRLF line ends."""
    path.write_bytes("".join(line + "\r\n" for line in [",".join(LOCUST_COLUMNS), *rows]).encode())
    return path


ONE_ROW = "POST,/predict one row,9000,3,11,12.4,2,190,22.0,150.0,0.05,11,13,14,15,19,24,31,46,120,190,190"


BATCH = "POST,/predict batch,1000,0,12,13.1,3,99,180.0,16.7,0.0,12,14,15,16,20,25,33,48,99,99,99"


TOTAL = ",Aggregated,10000,3,11,12.5,2,190,38.0,166.7,0.05,11,13,14,15,19,24,31,47,120,190,190"


def test_the_aggregated_row_is_read_not_the_first(tmp_path):
    agg = read_aggregate(write_stats(tmp_path / "locust_stats.csv", [ONE_ROW, BATCH, TOTAL]))
    assert agg == Aggregate(requests=10000, failures=3, p99_ms=47.0, rps=166.7)
    assert agg.error_ratio == pytest.approx(3e-4)


def test_no_requests_means_no_percentiles(tmp_path):
    """Locust writes N/A percentiles when nothing was answered; that must not pass a p99 gate."""
    empty = ",Aggregated,0,0,0,0,0,0,0,0.0,0.0," + ",".join(["N/A"] * 11)
    agg = read_aggregate(write_stats(tmp_path / "s.csv", [empty]))
    assert agg.p99_ms == math.inf
    assert agg.error_ratio == 1.0


def test_a_report_without_an_aggregated_row(tmp_path):
    with pytest.raises(ValueError, match="has no Aggregated row"):
        read_aggregate(write_stats(tmp_path / "s.csv", [ONE_ROW]))


def test_a_run_within_every_threshold_passes():
    assert judge(Aggregate(requests=10000, failures=100, p99_ms=200.0, rps=50.0), Thresholds()) == []


@pytest.mark.parametrize(
    ("agg", "missed"),
    [
        (Aggregate(10000, 101, 20.0, 300.0), ["error ratio 0.0101 > 0.01"]),
        (Aggregate(10000, 0, 250.0, 300.0), ["p99 250 ms > 200 ms"]),
        (Aggregate(10000, 0, 20.0, 49.9), ["49.9 requests/s < 50.0"]),
        (
            Aggregate(10000, 5000, math.inf, 1.0),
            ["error ratio 0.5000 > 0.01", "p99 inf ms > 200 ms", "1.0 requests/s < 50.0"],
        ),
        (Aggregate(0, 0, math.inf, 0.0), ["no request was made"]),
    ],
)
def test_every_missed_threshold_is_a_sentence(agg, missed):
    assert judge(agg, Thresholds()) == missed


def test_thresholds_are_the_callers():
    agg = Aggregate(requests=100, failures=5, p99_ms=900.0, rps=5.0)
    assert judge(agg, Thresholds(max_error_ratio=0.05, max_p99_ms=1000, min_rps=5)) == []
