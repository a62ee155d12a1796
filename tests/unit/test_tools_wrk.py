"""twinserve/tools/wrk.py: wrk's latency report read into figures."""

import pytest

from twinserve.tools.wrk import WrkReport, parse_report

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
