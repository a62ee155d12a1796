"""twinserve/tools/wrk.py: wrk's latency report read into figures; the model's samples in its Lua script."""

import shutil
import subprocess
from pathlib import Path

import pytest

from twinserve.tools.wrk import WrkReport, lua_string, parse_report, samples_script

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


# --- the model's samples in wrk's Lua script (make bench) ------------------------------------------------

SAMPLE_PNG = (Path(__file__).resolve().parents[2] / "models" / "digits" / "samples" / "digit-7.png").read_bytes()
FAKE_WRK = """
wrk = {headers = {Host = "127.0.0.1:8080", ["X-Extra"] = "yes"}}
function wrk.format(method, path, headers, body)
  local hex = body:gsub(".", function(c) return string.format("%02x", c:byte()) end)
  return method .. " " .. tostring(path) .. " " .. headers["Content-Type"] .. " " .. headers.Host .. " "
    .. headers["X-Extra"] .. " " .. hex
end
"""


@pytest.mark.skipif(shutil.which("lua5.1") is None, reason="lua5.1 not installed (lua-check brings it)")
def test_the_wrk_script_sends_every_sample_byte_for_byte_with_its_content_type():
    samples = [(SAMPLE_PNG, "image/png"), (b'{"data": [0.2, "\\\\"]}', "application/json"), (bytes(range(256)), "x/y")]
    driver = "init({})\nlocal seen = {}\nfor i = 1, 400 do seen[request()] = true end\n"
    driver += "for r in pairs(seen) do print(r) end\n"
    script = FAKE_WRK + samples_script(samples) + driver
    out = subprocess.run(["lua5.1", "-"], input=script, capture_output=True, text=True, check=True).stdout
    expected = {f"POST nil {kind} 127.0.0.1:8080 yes {body.hex()}" for body, kind in samples}
    assert set(out.splitlines()) == expected  # all of them, picked at random, none altered


def test_lua_strings_escape_what_is_not_printable():
    assert lua_string(b'a"b\\c\x00\x891') == '"a\\034b\\092c\\000\\1371"'
