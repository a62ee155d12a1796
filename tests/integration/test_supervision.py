"""Supervision of the real stack: every process killed with SIGKILL comes back by
itself and the restart is counted; logs are rotated within their bound; a side
service that fails never stops serving; `make down` stops what is left whatever
died first; `make up` names a foreign process on its port.

Last in the suite (tests/integration/conftest.py orders it so: it kills everything once, and ends
with down and up). Each test that stops parts of the stack leaves it whole again, failed or not: a
test that failed halfway must not leave the next ones, or the rest of the suite, without Nginx or
the supervisor.
"""

import collections
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace

import pytest
import requests

from tests.integration.helpers import poll, scrape, total
from twinserve.errors import ServiceError
from twinserve.runtime import monitoring, processes
from twinserve.runtime import stack as stack_mod
from twinserve.runtime.supervisor import SUPERVISOR

pytestmark = pytest.mark.integration

BODY = {"data": [0.2, 0.6]}


class LightLoad:
    """About 20 requests/s on /predict and /test/predict from a thread, statuses counted per route."""

    def __init__(self, stack):
        self.stack = stack
        self.statuses = collections.Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self.stopping.is_set():
            for route in ("/predict", "/test/predict"):
                try:
                    status = session.post(f"{self.stack.nginx.url}{route}", json=BODY, timeout=5).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                    session = requests.Session()
                self.statuses[(route, status)] += 1
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=10)


@pytest.fixture
def restored(stack, monkeypatch):
    """After the test, passed or failed: the real services, and every part of the stack running."""
    yield
    monkeypatch.undo()
    stack_mod.up(stack)


def restarts(stack) -> dict[str, float]:
    samples = scrape(f"http://127.0.0.1:{stack.monitoring.exporter_port}/metrics")
    return {name: total(samples, "twinserve_process_restarts_total", process=name) for name, _ in processes_of(stack)}


def processes_of(stack):
    return [(part.name, part) for part in stack_mod.parts(stack)]


def exporter_restarts(stack):
    """The exporter's restart counters, once it answers (it may be the one just killed)."""
    return poll(lambda: _try(restarts, stack), timeout=60, every=0.5)


def _try(f, *args):
    try:
        return f(*args)
    except requests.RequestException:
        return None


def test_the_pid_of_a_colour_is_the_process_that_serves_its_ports(stack):
    """Finding 7: the pid `make status` showed was TorchServe's launcher, not the JVM."""
    for colour, ports in stack.colours.items():
        pid = processes.running_pid(stack, f"torchserve-{colour}")
        holders = processes.listeners(ports.ports)
        assert {p.pid for p in holders.values()} == {pid}, {port: processes.describe(p) for port, p in holders.items()}
        assert f"running pid {pid}" in "\n".join(stack_mod.status(stack))


def test_a_failed_side_service_leaves_serving_alone(stack, restored, monkeypatch):
    """Finding 4: `make up` stopped a serving Nginx because the exporter failed."""
    assert processes.stop(stack, SUPERVISOR)  # nothing restarts the broken exporter behind this test
    assert processes.stop(stack, "nginx") and processes.stop(stack, "exporter")
    real = monitoring.services

    def broken(s):
        return [replace(x, argv=[sys.executable, "-c", "raise SystemExit(3)"]) if x.name == "exporter" else x
                for x in real(s)]  # fmt: skip

    monkeypatch.setattr(monitoring, "services", broken)
    with pytest.raises(ServiceError) as err:
        stack_mod.up(stack)
    message = str(err.value)
    print(f"make up: error: {message}")
    assert "exporter" in message and "serving left running" in message and "\n" not in message, message
    assert processes.running_pid(stack, "nginx"), "up stopped the Nginx it had started"
    assert requests.post(f"{stack.nginx.url}/predict", json=BODY, timeout=10).status_code == 200
    assert not processes.running_pid(stack, "exporter") and not processes.crashed(stack, "exporter")
    assert processes.running_pid(stack, SUPERVISOR)
    monkeypatch.setattr(monitoring, "services", real)
    assert stack_mod.up(stack) == ["exporter"]


def test_every_process_killed_with_sigkill_is_restarted_and_counted(stack, restored):
    recovery = {}
    with LightLoad(stack) as load:
        for name, part in reversed(processes_of(stack)):  # side services, Nginx, then the colours
            before = exporter_restarts(stack)
            assert before, "the exporter does not answer"
            pid = processes.running_pid(stack, name)
            assert pid, f"{name} is not running"
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            new_pid = poll(lambda n=name, p=pid: processes.running_pid(stack, n) not in (None, p), 60, every=0.1)
            assert new_pid, f"{name} was not restarted within 60 s"
            part.wait_ready()
            recovery[name] = time.monotonic() - killed
            after = poll(lambda n=name, b=before: (r := _try(restarts, stack)) and r[n] > b[n] and r, 60, every=0.5)
            assert after and after[name] == before[name] + 1, f"the restart of {name} was not counted"
        statuses = dict(load.statuses)
    print("\nrecovery after kill -9 (pid file back, ready), seconds:")
    for name, seconds in recovery.items():
        print(f"  {name:18} {seconds:5.1f}")
    print(f"statuses under light load meanwhile: {statuses}")
    assert set(recovery) == {name for name, _ in processes_of(stack)}

    def in_prometheus():
        url = f"{stack.monitoring.prometheus_url}/api/v1/query"
        query = 'twinserve_process_restarts_total{process="torchserve-blue"}'
        result = requests.get(url, params={"query": query}, timeout=5).json()["data"]["result"]
        return result and float(result[0]["value"][1]) >= 1

    assert poll(in_prometheus, timeout=60), "Prometheus does not see the restart counter"


def test_make_up_restarts_a_dead_supervisor_and_counts_it(stack, restored):
    before = processes.read_restarts(stack).get(SUPERVISOR, 0)
    os.kill(processes.running_pid(stack, SUPERVISOR), signal.SIGKILL)
    assert poll(lambda: processes.crashed(stack, SUPERVISOR), timeout=10, every=0.1)
    assert stack_mod.up(stack) == [SUPERVISOR]
    assert processes.read_restarts(stack)[SUPERVISOR] == before + 1


def test_logs_are_rotated_within_their_bound(stack):
    """Writes past the size limit into a stdout log and an Nginx log, several times over."""
    limit = stack.supervisor.log_max_mb * 1024 * 1024
    keep = stack.supervisor.log_keep
    logs = stack.var_dir / "logs"
    line = b"x" * 1023 + b"\n"
    names = ("alert-receiver.log", "access_test.log")

    def rotated(name):
        return sorted(p.name for p in logs.glob(f"{name}.*"))

    for round_ in range(1, keep + 2):
        for name in names:
            with (logs / name).open("ab") as f:
                for _ in range(limit // len(line) + 16):
                    f.write(line)
        expected = {name: [f"{name}.{i}.gz" for i in range(1, min(round_, keep) + 1)] for name in names}
        settled = poll(lambda e=expected: all(rotated(n) == e[n] and (logs / n).stat().st_size < limit for n in names),
                       timeout=60, every=0.5)  # fmt: skip
        assert settled, f"round {round_}: {[rotated(n) for n in names]}, expected {list(expected.values())}"
    for name in names:
        print(f"{name}: {rotated(name)}, current {(logs / name).stat().st_size} bytes")
    # Nginx reopened its log: a new request lands in the new access_test.log.
    assert requests.post(f"{stack.nginx.url}/test/predict", json=BODY, timeout=10).status_code == 200
    assert poll(lambda: b"POST /test/predict" in (logs / "access_test.log").read_bytes(), timeout=15, every=0.5)


def test_down_stops_everything_whatever_died_first_and_up_names_a_foreign_holder(stack, restored):
    """Finding 7: a dead leader's workers, an Nginx master killed with its workers serving."""
    assert processes.stop(stack, SUPERVISOR)
    for name in ("nginx", "torchserve-green"):
        os.kill(processes.running_pid(stack, name), signal.SIGKILL)
    time.sleep(1)
    assert processes.listeners([stack.nginx.port]), "Nginx's workers still hold its port"
    began = time.monotonic()
    stack_mod.down(stack)
    print(f"\nmake down: {time.monotonic() - began:.1f} s")
    left = processes.leftovers(stack, stack.ports)
    assert left == [], [processes.describe(p) for p in left]
    assert processes.listeners(stack.ports) == {}, "a port of the stack is still held"

    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port's connections are in TIME_WAIT
    holder.bind(("127.0.0.1", stack.nginx.port))
    holder.listen()
    try:
        with pytest.raises(ServiceError, match=f"port {stack.nginx.port} \\(nginx\\) is held by pid {os.getpid()}"):
            stack_mod.up(stack)
        running = [p for p, _ in processes_of(stack) if processes.running_pid(stack, p)]
        assert running == [] and not processes.running_pid(stack, SUPERVISOR), "up changed something"
    finally:
        holder.close()
    stack_mod.up(stack)
    assert requests.post(f"{stack.nginx.url}/predict", json=BODY, timeout=10).status_code == 200
