"""The stack's process bookkeeping, the supervisor's backoff and the rendered logrotate
config: real processes (sleep, sh) and real sockets, no servers of the stack."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from kafka.errors import KafkaTimeoutError

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve import cli
from twinserve.errors import ServiceError
from twinserve.runtime import logrotate, processes
from twinserve.runtime import stack as stack_mod
from twinserve.runtime.supervisor import SUPERVISOR, Backoff
from twinserve.settings import parse_stack


@pytest.fixture
def stack(tmp_path):
    raw = yaml.safe_load(DEFAULT_STACK.read_text())
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "state")
    return parse_stack(raw, tmp_path / "stack.yaml")


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


def test_backoff_restarts_at_once_then_doubles_then_forgets():
    b = Backoff(stable_seconds=60, max_delay=10)
    delays = []
    for now in (0, 5, 10, 15, 20, 25):  # dies 5 s after every restart
        delays.append(b.delay(now))
        b.restarted(now)
    assert delays == [0, 1, 2, 4, 8, 10], "at once, then doubling, capped at max_delay"
    assert b.delay(200) == 0, "up longer than stable_seconds: the next crash restarts at once"


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


def test_up_names_a_foreign_process_holding_a_port_and_starts_nothing(stack):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    part = stack_mod.Part("torchserve-blue", (port,), True, lambda: pytest.fail("started"), lambda: None)
    try:
        with pytest.raises(ServiceError) as err:
            stack_mod.check_ports(stack, [part])
    finally:
        holder.close()
    message = str(err.value)
    assert f"port {port} (torchserve-blue) is held by pid {os.getpid()}" in message
    assert "not this stack's" in message and "nothing was started" in message
    assert "\n" not in message


def test_every_part_knows_its_ports_and_they_are_the_stack_ports(stack):
    parts = stack_mod.parts(stack)
    assert [p.name for p in parts if p.serving] == ["torchserve-blue", "torchserve-green", "nginx"]
    assert sorted(port for p in parts for port in p.ports) == sorted(stack.ports)


def test_the_colour_runs_as_the_jvm_with_the_stack_settings(stack):
    from twinserve.runtime import torchserve

    argv, env = torchserve.command(stack, "blue", {"regressor": "regressor-1.0.mar"})
    assert argv[0].endswith("java") and torchserve.FRONTEND_CLASS in argv
    assert f"-Xmx{stack.torchserve.java_heap}" in argv
    assert argv[argv.index("-s") + 1] == str(stack.colour_store("blue"))
    assert env["TWINSERVE_LOG_MAX_SIZE"] == f"{stack.supervisor.log_max_mb} MB"
    assert env["TWINSERVE_LOG_KEEP"] == str(stack.supervisor.log_keep)
    assert "${env:TWINSERVE_LOG_MAX_SIZE" in (REPO_ROOT / torchserve.LOG4J_CONFIG).read_text()


def test_logrotate_config_bounds_every_log_of_the_stack(stack):
    names = [p.name for p in stack_mod.parts(stack)] + [SUPERVISOR]
    text = logrotate.render(stack, names)
    (block,) = [b for b in text.split("}") if "{" in b]
    files, settings = block.split("{")
    files = files.splitlines()[-1].split()  # after the comment line
    assert f"size {stack.supervisor.log_max_mb}M" in settings
    assert f"rotate {stack.supervisor.log_keep}" in settings
    assert "compress" in settings and "copytruncate" in settings
    for name in names:
        if name.startswith("torchserve-"):
            assert str(stack.colour_dir(name.split("-")[1]) / "logs" / "stdout.log") in files
        elif name != "nginx":
            assert str(stack.var_dir / "logs" / f"{name}.log") in files
    for nginx_log in ("access_*.log", "error.log", "nginx-stdout.log"):
        assert str(stack.var_dir / "logs" / nginx_log) in files
    assert len(files) == len(set(files)), "logrotate refuses a log named twice"


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="no logrotate (make install has it)")
def test_logrotate_accepts_the_rendered_config(stack):
    path = logrotate.write_config(stack, ["broker"])
    (stack.var_dir / "logs").mkdir(parents=True)
    (stack.var_dir / "logs" / "broker.log").write_bytes(b"x" * 10)
    done = subprocess.run(["logrotate", "--debug", "--state", str(tmp_state(stack)), str(path)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def tmp_state(stack):
    return stack.var_dir / "logrotate" / "status-test"


def test_node_exporter_skips_the_systemd_collector_without_systemd(monkeypatch):
    from twinserve.runtime import monitoring

    flags = monitoring.node_exporter_collectors()
    if os.path.isdir("/run/systemd/system"):
        assert flags == []
    else:
        assert flags == ["--no-collector.systemd"]


@pytest.mark.parametrize(
    "error", [KafkaTimeoutError("Failed to update metadata after 60.0 secs."), OSError(98, "Address in use")]
)
def test_up_down_status_print_one_line_not_a_traceback(monkeypatch, capsys, error):
    def fail(stack):
        raise error

    for verb in ("up", "down", "status"):
        monkeypatch.setattr(stack_mod, verb, fail)
        assert cli.main([verb]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"twinserve {verb}: error: {type(error).__name__}")
        assert err.count("\n") == 1 and "Traceback" not in err


def test_the_supervisor_module_runs_standalone():
    done = subprocess.run([sys.executable, "-c", "import twinserve.runtime.supervisor"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
