"""The Nginx edge against the real stack: every answer counted, JSON for Nginx's own
errors, a corrupt state file, the admin token, a dead production colour.

The last test kills production's TorchServe under load and keeps it dead: a kill
loop sends SIGKILL to whatever JVM listens on the colour's inference port, every
0.2 s, for the whole test, so it holds whether or not the stack restarts a
killed TorchServe (a restarted JVM is killed as soon as it binds the port).
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest
import requests

from tests.checkout import REPO_ROOT
from tests.integration.helpers import poll, scrape, total
from twinserve.errors import ConfigError
from twinserve.pipeline import record as records
from twinserve.pipeline.runs import run_stage
from twinserve.pipeline.stages import STAGES
from twinserve.pipeline.steps import Context
from twinserve.runtime import nginx, torchserve
from twinserve.runtime import stack as stack_mod
from twinserve.store.state import admin_token_file, production_file, read_production
from twinserve.tools.wrk import WrkRun

pytestmark = pytest.mark.integration
ROW = {"data": [0.2, 0.6]}
DIGIT_GRID = {"data": [[0, 0, 5, 13, 9, 1, 0, 0]] * 8}  # any 8×8 grid: digits answers a label


def raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    found = re.search(rb"\r\nContent-Length: (\d+)", data.split(b"\r\n\r\n", 1)[0])
    return int(found.group(1)) if found else 0


MALFORMED = {
    "missing Host": (b"POST /predict HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400, "bad request"),
    "Transfer-Encoding with Content-Length": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "bad request",
    ),
    "/%2e%2e/predict": (b"GET /%2e%2e/predict HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad request"),
    "not HTTP": (b"hello there\r\n\r\n", 400, "bad request"),
    "10 KB URI": (b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI too long"),
    "9 KB header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9216 + b"\r\n\r\n", 400, "header too large"),
    "unknown Transfer-Encoding": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        "Transfer-Encoding",
    ),
    "HTTP/2.0 request line": (b"GET /predict HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version"),
}


def nginx_samples(stack):
    return scrape(f"{stack.nginx.admin_url}/metrics")


@pytest.mark.parametrize("case", list(MALFORMED))
def test_nginx_answers_malformed_requests_in_json_and_counts_them(stack, case):
    request, status, fragment = MALFORMED[case]
    before = total(nginx_samples(stack), "twinserve_http_requests_total", route="other", status=str(status))
    code, headers, body = raw(stack.nginx.port, request)
    assert code == status, body
    assert headers["Content-Type"] == "application/json"
    assert fragment in json.loads(body)["error"]
    # Counted in the log phase, which may end just after the answer reached us.
    after = poll(lambda: _counted(stack, status, before), 5, 0.1) or _counted(stack, status, before, exact=False)
    assert after == before + 1


def _counted(stack, status, before, exact=True):
    now = total(nginx_samples(stack), "twinserve_http_requests_total", route="other", status=str(status))
    return now if (now == before + 1 or not exact) else None


def test_nginx_own_4xx_on_predict_and_elsewhere_are_counted_and_logged(stack):
    production = read_production(stack)

    def counts():
        samples = nginx_samples(stack)
        return (
            total(samples, "twinserve_http_requests_total", route="production", status="405"),
            total(samples, "twinserve_http_requests_total", route="other", status="404"),
            total(samples, "twinserve_http_requests_total", route="production", colour=production, status="200"),
        )

    before = counts()
    assert requests.get(f"{stack.nginx.url}/predict", timeout=5).status_code == 405
    assert requests.get(f"{stack.nginx.url}/nothing-here", timeout=5).status_code == 404
    assert requests.post(f"{stack.nginx.url}/predict", json=ROW, timeout=5).status_code == 200
    expected = (before[0] + 1, before[1] + 1, before[2] + 1)
    assert (poll(lambda: counts() == expected, 5, 0.1) and counts()) == expected
    logs = stack.var_dir / "logs"
    assert poll(lambda: '"GET /predict HTTP/1.1" 405' in (logs / "access_production.log").read_text(), 5, 0.2)
    assert poll(lambda: '"GET /nothing-here HTTP/1.1" 404' in (logs / "access_other.log").read_text(), 5, 0.2)


def test_the_admin_switch_needs_the_token_and_the_scrapes_do_not(stack):
    url = f"{stack.nginx.admin_url}/production"
    for method, headers in (
        ("GET", {}),
        ("PUT", {}),
        ("GET", {"Authorization": "Bearer wrong"}),
        ("PUT", {"Authorization": "Bearer " + "x" * 43}),
    ):
        response = requests.request(method, url, data="green", headers=headers, timeout=5)
        assert response.status_code == 401, response.text
        assert "token" in response.json()["error"]
    assert nginx.get_production(stack) == read_production(stack)  # the control plane reads the token
    assert admin_token_file(stack).stat().st_mode & 0o777 == 0o600
    for path in ("/metrics", "/stub_status"):
        assert requests.get(f"{stack.nginx.admin_url}{path}", timeout=5).status_code == 200


ADMIN_MALFORMED = {
    "9 KB header": (
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9216 + b"\r\n\r\n",
        400,
        "header too large",
    ),
    "not HTTP": (b"hello there\r\n\r\n", 400, "bad request"),
    "10 KB URI": (b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI too long"),
    "unknown path": (b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not found"),
    "POST /stub_status": (b"POST /stub_status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "method"),
    "body over the limit": (
        b"PUT /production HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n",
        413,
        "too large",
    ),
    "HTTP/2.0 request line": (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version"),
}


@pytest.mark.parametrize("case", list(ADMIN_MALFORMED))
def test_the_admin_port_answers_its_own_errors_in_json(stack, case):
    request, status, fragment = ADMIN_MALFORMED[case]
    code, headers, body = raw(stack.nginx.admin_port, request)
    assert code == status, body
    assert headers["Content-Type"] == "application/json", body
    assert fragment in json.loads(body)["error"]


def test_the_admin_token_file_is_unreadable_by_other_local_users(stack):
    """As `nobody` (the user the issue's attack ran as): neither the admin token nor TorchServe's
    key files can be read, and the switch says 401."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "for path in (sys.argv[1], *sys.argv[3:]):\n"
        "    try:\n        open(path).read(); print('read')\n    except PermissionError:\n        print('denied')\n"
        "req = urllib.request.Request(sys.argv[2], data=b'green', method='PUT')\n"
        "try:\n    urllib.request.urlopen(req)\nexcept urllib.error.HTTPError as e:\n    print(e.code)\n"
    )
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", script,
         str(admin_token_file(stack)), f"{stack.nginx.admin_url}/production",
         *(str(stack.key_file(c)) for c in stack.colours)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.split() == ["denied", "denied", "denied", "401"], result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"grn\n", "says 'grn', not a known colour"),
        (b"\xff\xfe\n", "holds bytes that are not a colour"),
        (None, "is missing"),
    ],
)
def test_nginx_never_guesses_a_colour_from_a_bad_state_file(spare_nginx, content, problem):
    path = production_file(spare_nginx)
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    nginx.start(spare_nginx)
    nginx.wait_ready(spare_nginx)
    for route in ("/predict", "/test/predict"):
        response = requests.post(f"{spare_nginx.nginx.url}{route}", json=ROW, timeout=5)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error.startswith("no production colour for regressor: ") and str(path) in error and problem in error
        assert "write one of blue, green into it" in error
    # Another model's entry is whole: its own routes are served.
    digits = requests.post(f"{spare_nginx.nginx.url}/predict/digits", json=DIGIT_GRID, timeout=5)
    assert digits.status_code == 200 and digits.headers["X-Served-By"] == "blue", digits.text
    assert requests.get(f"{spare_nginx.nginx.url}/healthz", timeout=5).status_code == 503
    assert nginx.get_production(spare_nginx) is None
    samples = nginx_samples(spare_nginx)
    assert total(samples, "twinserve_http_requests_total", route="production", model="regressor", status="503") == 1
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        read_production(spare_nginx)
    nginx.set_production(spare_nginx, "green")  # what `make up` does once the file is fixed
    response = requests.post(f"{spare_nginx.nginx.url}/predict", json=ROW, timeout=5)
    assert response.status_code == 200 and response.headers["X-Served-By"] == "green"


@pytest.mark.parametrize("content", [b"grn\n", b"\xff\xfe\n"])
def test_a_corrupt_state_file_is_one_line_from_every_command(stack, content):
    path = production_file(stack)
    saved = path.read_bytes()
    env = {**os.environ, "TWINSERVE_STACK": str(stack.path)}
    path.write_bytes(content)
    try:
        for verb in ("which", "status", "swap", "rollback", "up"):
            result = subprocess.run(
                [sys.executable, "-m", "twinserve", verb], env=env, capture_output=True, text=True, cwd=REPO_ROOT
            )
            assert result.returncode == 2, (verb, result.stdout, result.stderr)
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
            assert result.stderr.startswith(f"twinserve {verb}: error: {path} ")
        # Nginx keeps the colour it had: it read the state at start, and nothing set it since.
        assert requests.post(f"{stack.nginx.url}/predict", json=ROW, timeout=5).status_code == 200
    finally:
        path.write_bytes(saved)


def test_a_stale_torchserve_key_in_nginx_is_a_counted_503_until_the_keys_are_published(stack):
    """As after a TorchServe restart that nobody published: TorchServe refuses Nginx's old key."""
    staging = stack.other(read_production(stack))
    token = {"Authorization": "Bearer " + admin_token_file(stack).read_text().strip()}

    def staging_503():
        samples = nginx_samples(stack)
        return total(samples, "twinserve_http_requests_total", route="test", colour=staging, status="503")

    before = staging_503()
    put = requests.put(f"{stack.nginx.admin_url}/inference-key", params={"colour": staging}, data="stale-key",
                       headers=token, timeout=5)  # fmt: skip
    assert put.status_code == 200, put.text
    try:
        response = requests.post(f"{stack.nginx.url}/test/predict", json=ROW, timeout=10)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "make up" in response.json()["error"]
        assert poll(lambda: staging_503() == before + 1, 5, 0.1)
        bad_input = requests.post(f"{stack.nginx.url}/predict", data=b'{"data": [true, 0.6]}', timeout=10)
        assert bad_input.status_code == 400 and "expected a number" in bad_input.json()["error"]  # the model's 400
    finally:
        assert staging in nginx.publish_keys(stack)
    assert requests.post(f"{stack.nginx.url}/test/predict", json=ROW, timeout=10).status_code == 200
    no_token = requests.put(f"{stack.nginx.admin_url}/inference-key", params={"colour": staging}, data="x", timeout=5)
    assert no_token.status_code == 401


def test_a_worker_dying_mid_request_is_a_json_503_with_retry_after(stack):
    """TorchServe answers 507 for requests its worker was holding when it died; clients see a 503
    they can retry. The worker is killed while 8 clients keep /test/predict (staging) busy."""
    staging = stack.other(read_production(stack))
    client = torchserve.Management(stack, staging)
    answers, stop = [], threading.Event()

    def traffic():
        with requests.Session() as session:
            while not stop.is_set():
                r = session.post(f"{stack.nginx.url}/test/predict", json={"data": [ROW["data"]] * 64}, timeout=30)
                answers.append((r.status_code, r.headers.get("Content-Type"), r.headers.get("Retry-After"), r.text))

    threads = [threading.Thread(target=traffic) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            time.sleep(1)
            pids = [w["pid"] for d in client.describe("regressor") for w in d["workers"] if w.get("pid")]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):  # a worker may die on its own meanwhile
                    # Frozen first, so the frontend hands it a batch it can never answer: the
                    # kill then always catches requests in flight (a bare kill caught one by chance).
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(0.5)
                    os.kill(pid, signal.SIGKILL)
            if any(a[0] == 503 for a in answers):
                break
            poll(lambda: all(torchserve.Management.has_ready_worker(d) for d in client.describe("regressor")), 60, 0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    statuses = {a[0] for a in answers}
    assert 507 not in statuses
    for status, content_type, _, body in answers:
        if status != 200:
            assert content_type.startswith("application/json"), body
            json.loads(body)  # TorchServe's own errors (a 500) are JSON too
    print("statuses while the worker was killed:", sorted(statuses), [a[3] for a in answers if a[0] == 500][:1])
    failed = [a for a in answers if a[0] == 503]
    assert failed, "no request was caught by a dying worker in 5 tries"
    for _, content_type, retry_after, body in failed:
        assert content_type == "application/json" and retry_after == "1"
        assert "retry" in json.loads(body)["error"]
    poll(lambda: all(torchserve.Management.has_ready_worker(d) for d in client.describe("regressor")), 60, 0.5)


class KillLoop:
    """SIGKILL to whatever process listens on `port`, every 0.2 s, until stopped."""

    def __init__(self, port: int):
        self.port, self.kills = port, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port and conn.pid:
                    try:
                        os.kill(conn.pid, signal.SIGKILL)
                        self.kills += 1
                    except ProcessLookupError:
                        pass
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join()


def test_a_dead_production_colour_is_seen_by_metrics_the_burn_alert_and_the_bake(stack, tmp_path):
    production = read_production(stack)
    staging = stack.other(production)
    receiver = f"http://127.0.0.1:{stack.monitoring.alert_receiver_port}/alerts"

    def burn_alerts():
        params = {"alertname": "TwinserveErrorBudgetBurnFast", "status": "firing"}
        return requests.get(receiver, params=params, timeout=5).json()

    def production_5xx():
        samples = nginx_samples(stack)
        return sum(
            total(samples, "twinserve_http_requests_total", route="production", colour=production, status=s)
            for s in ("502", "503", "504")
        )

    assert burn_alerts() == []
    before = production_5xx()
    killer = KillLoop(stack.colours[production].inference_port)
    started = time.monotonic()
    load = WrkRun(f"{stack.nginx.url}/predict", connections=4, duration_s=600)
    try:
        assert poll(lambda: killer.kills > 0, 10, 0.2), "no JVM was listening on the production port"
        assert poll(lambda: production_5xx() > before + 1000, 30, 1), "the 5xx never reached the metrics"
        # The bake at this moment, as the pipeline runs it after promoting `production`.
        record = records.new(stack, stack.models["regressor"].dir, "regressor", "9.9", f"dead-{int(time.time())}")
        record["stages"] = [{"name": n, "status": "passed", "seconds": 0, "figure": ""} for n in STAGES[:-1]]
        record.update(promoted=True, production_before=staging, promoted_colour=production, promoted_at=time.time())
        ctx = Context(stack, record)
        assert run_stage(ctx, "bake") is False
        bake = ctx.record["stages"][-1]
        assert bake["status"] == "failed" and "error ratio" in bake["figure"], bake
        assert ctx.record["rolled_back"] is True and read_production(stack) == staging
        assert nginx.get_production(stack) == staging
        # The burn alert: rule `for: 1m`, evaluated every scrape, then Alertmanager's group_wait.
        fired = poll(burn_alerts, 240, 5)
        print(f"burn alert in the receiver {time.monotonic() - started:.0f} s after the first kill")
    finally:
        killer.stop()
        report = load.stop()
        stack_mod.up(stack)  # the killed colour back (if the stack has not restarted it already)
    assert fired, "TwinserveErrorBudgetBurnFast never reached the receiver"
    assert fired[0]["severity"] == "critical"
    assert report.non_2xx > 1000, report
    assert requests.post(f"{stack.nginx.url}/predict", json=ROW, timeout=10).headers["X-Served-By"] == staging
