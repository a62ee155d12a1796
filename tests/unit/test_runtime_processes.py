"""twinserve/runtime/processes.py: the stack's process bookkeeping with real processes (sleep, sh):
crashes, recycled pids, stopping, leftovers."""

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil

from tests.checkout import REPO_ROOT
from twinserve.runtime import processes


def start_shell(stack, name, script):
    """`sh -c script` as a process of the stack (its own session, marked)."""
    return processes.start(stack, name, ["sh", "-c", script], stack.var_dir, {}, stack.var_dir / "logs" / "x.log")


def wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                os.waitpid(pid, os.WNOHANG)
                return True
        except psutil.NoSuchProcess:
            return True
        except ChildProcessError:
            return True
        time.sleep(0.05)
    return False


def test_a_killed_leader_is_a_crash_and_stop_takes_what_it_left(stack):
    pid = start_shell(stack, "x", "sleep 300 & sleep 300")
    assert processes.running_pid(stack, "x") == pid
    time.sleep(0.3)
    children = psutil.Process(pid).children()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    assert processes.running_pid(stack, "x") is None
    assert processes.crashed(stack, "x"), "pid file there, process gone: the supervisor restarts it"
    assert children and all(c.is_running() for c in children), "the children outlive their leader"
    assert processes.stop(stack, "x") is False  # its main process was not running ...
    assert all(wait_gone(c.pid) for c in children)  # ... but what it left is stopped
    assert not processes.crashed(stack, "x"), "a deliberate stop is never undone"


def test_a_recycled_pid_is_not_ours_and_stop_leaves_its_session_alone(stack):
    foreign = subprocess.Popen(["sleep", "300"], start_new_session=True)  # a session leader, as ours are
    try:
        processes.pid_file(stack, "x").parent.mkdir(parents=True)
        processes.pid_file(stack, "x").write_text(f"{foreign.pid} 12345.0\n")  # alive, started at another time
        assert processes.running_pid(stack, "x") is None
        assert processes.stop(stack, "x") is False
        assert foreign.poll() is None, "stop killed a process that only reuses our pid"
    finally:
        foreign.kill()
        foreign.wait()


def test_stop_all_signals_every_process_before_waiting_for_any(stack, tmp_path):
    names = [f"p{i}" for i in range(5)]
    for name in names:  # each notes when it got SIGTERM, then takes 1 s to exit
        script = f"trap 'date +%s.%N > {tmp_path / name}; sleep 1; exit 0' TERM; while true; do sleep 0.1; done"
        start_shell(stack, name, script)
    time.sleep(0.3)
    began = time.monotonic()
    assert sorted(processes.stop_all(stack, names)) == names
    print(f"5 processes taking 1 s each to stop: {time.monotonic() - began:.1f} s")
    signalled = [float((tmp_path / n).read_text()) for n in names]
    assert max(signalled) - min(signalled) < 1.0, "one was signalled only after another had exited"
    assert all(processes.running_pid(stack, n) is None for n in names)


def test_leftovers_are_only_the_marked_processes_of_this_stack(stack, tmp_path):
    ours = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, processes.MARKER: str(stack.var_dir)}, start_new_session=True
    )
    other_stack = subprocess.Popen(["sleep", "300"], env={**os.environ, processes.MARKER: str(tmp_path / "elsewhere")})
    foreign = subprocess.Popen(["sleep", "300"])
    try:
        found = [p.pid for p in processes.leftovers(stack, ports=[])]
        assert ours.pid in found
        assert other_stack.pid not in found and foreign.pid not in found
    finally:
        for proc in (ours, other_stack, foreign):
            proc.kill()
            proc.wait()


def test_a_process_started_elsewhere_knows_the_project(stack, tmp_path, monkeypatch):
    """The supervisor, exporters and consumer start in var/: TWINSERVE_HOME in their environment names the project."""
    monkeypatch.delenv("TWINSERVE_HOME", raising=False)
    log = tmp_path / "child.log"
    argv = [sys.executable, "-c", "from twinserve.settings import project_dir; print(project_dir())"]
    processes.start(stack, "child", argv, tmp_path, {"PYTHONPATH": str(REPO_ROOT)}, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.is_file() and log.read_text().strip()):
        time.sleep(0.1)
    processes.stop(stack, "child")
    assert log.read_text().strip() == str(stack.project) == str(REPO_ROOT)


def test_a_listening_socket_with_no_known_owner_is_unknown_not_the_caller(monkeypatch):
    """psutil gives pid None for a socket it cannot map to a process (one being closed); psutil.Process(None)
    would be the calling process, which CI once reported as "held by pytest"."""

    def conn(port, pid):
        return SimpleNamespace(status=psutil.CONN_LISTEN, laddr=SimpleNamespace(ip="127.0.0.1", port=port), pid=pid)

    conns = [conn(30714, None), conn(30715, os.getpid())]
    monkeypatch.setattr(psutil, "net_connections", lambda kind: conns)
    taken = processes.listeners([30714, 30715, 30716])
    assert taken[30714] is None and taken[30715].pid == os.getpid() and 30716 not in taken
