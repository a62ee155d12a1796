"""Small pure pieces of the control plane: version numbering, wrk and Locust reports,
Alertmanager notifications."""

import copy
import json
import math
from pathlib import Path

import pytest
import yaml

from twinserve.observe.alert_receiver import flatten, read_alerts
from twinserve.pipeline.loadtest import Aggregate, Thresholds, judge, read_aggregate
from twinserve.settings import DEFAULT_STACK, parse_stack
from twinserve.store.archives import next_version
from twinserve.tools.wrk import WrkReport, parse_report

# --- models.next_version -----------------------------------------------------


@pytest.fixture
def store_stack(tmp_path):
    raw = copy.deepcopy(yaml.safe_load(DEFAULT_STACK.read_text()))
    raw["model_store"] = str(tmp_path / "store")
    (tmp_path / "store").mkdir()
    return parse_stack(raw, tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("archives", "expected"),
    [
        ([], "1.0"),
        (["regressor-1.0.mar"], "1.1"),
        (["regressor-1.0.mar", "regressor-1.1.mar"], "1.2"),
        (["regressor-1.9.mar", "regressor-1.10.mar"], "1.11"),  # numbers, not text
        (["regressor-1.4.mar", "regressor-2.0.mar"], "2.1"),
        (["regressor-3.mar"], "3.1"),
        (["regressor-1.2.7.mar"], "1.3"),
        (["regressor-1.0.mar", "regressor-1.5.json", "other-7.0.mar", "regressor-x.mar"], "1.1"),
        (["regressor_big-9.0.mar"], "1.0"),
    ],
)
def test_next_version(store_stack, archives, expected):
    for name in archives:
        (store_stack.model_store / name).write_text("")
    assert next_version(store_stack, "regressor") == expected


# --- wrk.parse_report --------------------------------------------------------

WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:8080/predict
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.41ms    3.02ms  52.18ms   81.27%
    Req/Sec     3.41k   287.55     4.02k    71.00%
  Latency Distribution
     50%    6.93ms
     75%    8.61ms
     90%   10.87ms
     99%   17.35ms
  67892 requests in 10.01s, 12.37MB read
  Socket errors: connect 0, read 3, write 1, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:   6782.42
Transfer/sec:      1.24MB
"""


def test_a_full_wrk_report():
    report = parse_report(WRK_REPORT)
    assert report == WrkReport(
        requests=67892, seconds=10.01, rps=6782.42, p50_ms=6.93, p99_ms=17.35, non_2xx=12, socket_errors=11
    )
    assert report.ok_rps == pytest.approx(6782.42 * (1 - 12 / 67892))


def test_a_clean_run_has_no_error_lines():
    text = "\n".join(line for line in WRK_REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line)
    report = parse_report(text)
    assert (report.non_2xx, report.socket_errors) == (0, 0)
    assert report.ok_rps == report.rps


def test_wrk_units_are_converted_to_milliseconds_and_seconds():
    text = WRK_REPORT.replace("6.93ms", "850.00us").replace("17.35ms", "1.20s").replace("in 10.01s", "in 1.00m")
    report = parse_report(text)
    assert report.p50_ms == pytest.approx(0.85)
    assert report.p99_ms == pytest.approx(1200.0)
    assert report.seconds == pytest.approx(60.0)


def test_the_thread_stats_latency_is_not_taken_for_a_percentile():
    report = parse_report(WRK_REPORT.replace("81.27%", "50%").replace("71.00%", "99%"))
    assert (report.p50_ms, report.p99_ms) == (6.93, 17.35)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unable to connect to 127.0.0.1:8080 Connection refused\n",
        WRK_REPORT.replace("  Latency Distribution\n", "").replace("     50%    6.93ms\n", ""),  # no --latency
        WRK_REPORT.replace("Requests/sec:   6782.42\n", ""),
    ],
)
def test_what_is_not_a_wrk_latency_report(text):
    with pytest.raises(ValueError, match="not a wrk --latency report"):
        parse_report(text)


def test_a_run_with_no_requests_has_no_ok_rate():
    assert WrkReport(requests=0, seconds=1.0, rps=0.0, p50_ms=0, p99_ms=0, non_2xx=0, socket_errors=0).ok_rps == 0.0


# --- loadtest.read_aggregate and judge ---------------------------------------

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


# --- alert_receiver.flatten --------------------------------------------------

NOTIFICATION = {
    "version": "4",
    "groupKey": '{}:{alertname="TwinserveTargetDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "recorder",
    "groupLabels": {"alertname": "TwinserveTargetDown"},
    "commonLabels": {"alertname": "TwinserveTargetDown", "severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "TwinserveTargetDown",
                "severity": "critical",
                "job": "torchserve",
                "colour": "green",
            },
            "annotations": {"summary": "green TorchServe is down"},
            "startsAt": "2025-01-02T03:04:05.678Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "TwinserveTargetDown", "severity": "critical", "job": "nginx"},
            "annotations": {},
            "startsAt": "2025-01-02T02:00:00Z",
            "endsAt": "2025-01-02T03:00:00Z",
        },
    ],
}
NOW = "2025-01-02T03:04:06+00:00"


def test_one_record_per_alert():
    records = flatten(NOTIFICATION, NOW)
    assert records[0] == {
        "received_at": NOW,
        "status": "firing",
        "alertname": "TwinserveTargetDown",
        "severity": "critical",
        "labels": NOTIFICATION["alerts"][0]["labels"],
        "annotations": {"summary": "green TorchServe is down"},
        "startsAt": "2025-01-02T03:04:05.678Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    assert [(r["status"], r["labels"]["job"]) for r in records] == [("firing", "torchserve"), ("resolved", "nginx")]
    json.dumps(records)  # each is written as one JSON line


def test_an_alert_without_labels_or_annotations():
    [record] = flatten({"alerts": [{"status": "firing"}]}, NOW)
    assert (record["alertname"], record["severity"], record["labels"], record["annotations"]) == (None, None, {}, {})
    assert record["startsAt"] is None


def test_a_notification_without_alerts_is_empty():
    assert flatten({"alerts": []}, NOW) == []


@pytest.mark.parametrize("notification", [[], "text", None, {}, {"alerts": {"a": 1}}, {"alerts": None}])
def test_what_is_not_a_notification(notification):
    with pytest.raises(ValueError, match='an "alerts" list'):
        flatten(notification, NOW)


def test_recorded_alerts_are_filtered_by_status_and_name(tmp_path):
    path = tmp_path / "alerts.jsonl"
    other = {**NOTIFICATION["alerts"][0], "labels": {"alertname": "TwinserveDriftDetected", "severity": "warning"}}
    records = flatten(NOTIFICATION, NOW) + flatten({"alerts": [other]}, NOW)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    assert len(read_alerts(path)) == 3
    assert [r["labels"].get("job") for r in read_alerts(path, status="firing", alertname="TwinserveTargetDown")] == [
        "torchserve"
    ]
    assert [r["alertname"] for r in read_alerts(path, alertname="TwinserveDriftDetected")] == ["TwinserveDriftDetected"]
    assert read_alerts(path, status="resolved", alertname="TwinserveDriftDetected") == []
    assert read_alerts(tmp_path / "none.jsonl") == []


@pytest.mark.parametrize("alerts", [[1], [None], [{"labels": None}], [{"labels": ["a"]}]])
def test_an_alert_that_is_not_an_object_is_refused(alerts):
    with pytest.raises(ValueError, match="every alert to be an object"):
        flatten({"alerts": alerts}, NOW)
