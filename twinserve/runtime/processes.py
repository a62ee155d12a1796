"""Start, find and stop the stack's long-running processes.

Each process is started in a session of its own and its pid — which is also
the session id — is kept in <var_dir>/run/<name>.pid with its start time, so a
recycled pid is never mistaken for ours. The session is what gets stopped:
TorchServe's workers, Nginx's workers, whatever a process forked, even after
the process we started died first (`kill -9` of a JVM leaves its Python
workers; of an Nginx master, its workers still holding the port).

Every process we start also carries TWINSERVE_VAR_DIR=<var_dir> in its
environment, inherited by its children: `down` finds leftovers of this stack
by it (a pid file lost, a session left), and never touches a process without
it — another checkout's stack, or anything foreign on a port we want. It also
carries TWINSERVE_HOME=<the project directory>, so a child started in var/ (the
supervisor, the exporters, the drift consumer) finds the same project (settings.py).

A pid file present with its process gone means a crash (the supervisor
restarts it); `stop` removes the pid file first, so a deliberate stop is never
undone. Both happen under one lock (<var_dir>/run/.lock).
"""

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil
import requests

from twinserve.errors import ServiceError
from twinserve.settings import PROJECT_ENV, Stack

MARKER = "TWINSERVE_VAR_DIR"  # environment variable naming the stack a process belongs to
NAME_MARKER = "TWINSERVE_PROCESS"  # and which of its processes


def pid_file(stack: Stack, name: str) -> Path:
    return stack.var_dir / "run" / f"{name}.pid"


_lock_depth = 0


@contextlib.contextmanager
def locked(stack: Stack) -> Iterator[None]:
    """The stack's process lock (re-entrant within one process): start, stop and
    the supervisor's decide-and-restart never interleave."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    path = stack.var_dir / "run" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(f, fcntl.LOCK_UN)


def _recorded(stack: Stack, name: str) -> tuple[int, float | None] | None:
    """(pid, start time) from the pid file, or None."""
    try:
        fields = pid_file(stack, name).read_text().split()
        return int(fields[0]), float(fields[1]) if len(fields) > 1 else None
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def running_pid(stack: Stack, name: str) -> int | None:
    """The pid of our process `name` if it is alive (not a zombie, not a recycled pid), else None."""
    recorded = _recorded(stack, name)
    if recorded is None:
        return None
    pid, started = recorded
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 0.05:
            return None
    except psutil.Error:
        return None
    return pid if _alive(proc) else None


def crashed(stack: Stack, name: str) -> bool:
    """Started by the stack and not deliberately stopped, but gone."""
    return _recorded(stack, name) is not None and running_pid(stack, name) is None


def carries_marker(stack: Stack, proc: psutil.Process) -> bool:
    """True if `proc` carries this stack's marker (started by it, or a child of what it started)."""
    try:
        return proc.environ().get(MARKER) == str(stack.var_dir)
    except psutil.Error:
        return False


def belongs(stack: Stack, proc: psutil.Process) -> bool:
    """True if `proc` is this stack's: it carries the marker, or its command line names the
    stack's var_dir (Nginx's master overwrites its environment with its title)."""
    try:
        return carries_marker(stack, proc) or f"{stack.var_dir}/" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def census(stack: Stack) -> dict[int, tuple[psutil.Process, int | None, str | None]]:
    """One pass over the live processes: {pid: (process, session id, its TWINSERVE_PROCESS if it
    carries this stack's marker, else None)}."""
    found = {}
    for proc in psutil.process_iter():
        if proc.pid == os.getpid() or not _alive(proc):
            continue
        try:
            sid = os.getsid(proc.pid)
        except OSError:
            continue
        name = None
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            if env.get(MARKER) == str(stack.var_dir):
                name = env.get(NAME_MARKER, "")
        found[proc.pid] = (proc, sid, name)
    return found


def leftovers(stack: Stack, ports: Iterable[int]) -> list[psutil.Process]:
    """Live processes of this stack that no pid file accounts for any more: those with its marker,
    and those listening on its `ports` whose command line names its var_dir (Nginx's master
    overwrites its environment with its title). Never anything else."""
    found = {p.pid: p for p in psutil.process_iter() if p.pid != os.getpid() and _alive(p) and carries_marker(stack, p)}
    for proc in listeners(ports).values():
        if proc is not None and proc.pid != os.getpid() and belongs(stack, proc):
            found.setdefault(proc.pid, proc)
    return list(found.values())


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ({' '.join(proc.cmdline())[:120] or proc.name()})"
    except psutil.Error:
        return f"pid {proc.pid}"


def start(stack: Stack, name: str, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
    """Start argv in its own session, output appended to `log`, marked as this stack's."""
    with locked(stack):
        if running_pid(stack, name):
            raise ServiceError(f"{name} is already running (pid file {pid_file(stack, name)})")
        log.parent.mkdir(parents=True, exist_ok=True)
        pid_file(stack, name).parent.mkdir(parents=True, exist_ok=True)
        marks = {MARKER: str(stack.var_dir), NAME_MARKER: name, PROJECT_ENV: str(stack.project)}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **env, **marks},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started = time.time()  # already gone: the next check calls it crashed
        pid_file(stack, name).write_text(f"{proc.pid} {started!r}\n")
        return proc.pid


def _processes_of(stack: Stack, names: list[str], procs=None) -> list[psutil.Process]:
    """What `names` left running: their sessions (recorded pids) and anything marked with their names."""
    procs = census(stack) if procs is None else procs
    sids = {r[0] for r in (_recorded(stack, n) for n in names) if r and not _recycled(*r)}
    return [p for p, sid, name in procs.values() if sid in sids or (name is not None and name in names)]


def _recycled(pid: int, started: float | None) -> bool:
    """True if `pid` now names another process than the one we started (its session is not ours).
    A dead leader's session is still ours: Linux reuses no pid that is a live session's id."""
    try:
        return started is not None and abs(psutil.Process(pid).create_time() - started) > 0.05
    except psutil.Error:
        return False


def terminate(procs: list[psutil.Process], timeout: float = 20.0) -> None:
    """SIGTERM all at once, wait for all together, SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        deadline = time.monotonic() + wait
        while True:
            procs = [p for p in procs if _alive(p) and not _reaped(p)]
            if not procs or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not procs:
            return


def _reaped(proc: psutil.Process) -> bool:
    """Reap `proc` if it is our exited child; True if it is gone."""
    try:
        return os.waitpid(proc.pid, os.WNOHANG)[0] == proc.pid
    except ChildProcessError:
        return False


def stop_all(stack: Stack, names: list[str], timeout: float = 20.0) -> list[str]:
    """Stop processes `names` in parallel, whatever died first; returns those whose
    main process was running. Their pid files go first: none is restarted."""
    with locked(stack):
        running = [n for n in names if running_pid(stack, n)]
        procs = _processes_of(stack, names)
        for name in names:
            pid_file(stack, name).unlink(missing_ok=True)
    terminate(procs, timeout)
    return running


def stop(stack: Stack, name: str, timeout: float = 20.0) -> bool:
    """Stop process `name` and everything it left; True if it was running."""
    return bool(stop_all(stack, [name], timeout))


def kill_remnants(stack: Stack, name: str) -> None:
    """SIGKILL what a crashed `name` left (workers holding ports), before it is started again."""
    terminate(_processes_of(stack, [name]), timeout=0.0)


def listeners(ports: Iterable[int]) -> dict[int, psutil.Process | None]:
    """{port: process listening on it} for the ports of `ports` that are taken (None: owner unknown)."""
    wanted = set(ports)
    taken: dict[int, psutil.Process | None] = {}
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted:
            proc = None
            if conn.pid is not None:  # psutil.Process(None) is the calling process, not "unknown"
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
            taken.setdefault(conn.laddr.port, proc)
    return taken


def restarts_file(stack: Stack) -> Path:
    return stack.var_dir / "run" / "restarts.json"


def read_restarts(stack: Stack) -> dict[str, int]:
    """{process: times the supervisor restarted it} (kept across restarts of the supervisor)."""
    try:
        counts = json.loads(restarts_file(stack).read_text())
        return {str(k): int(v) for k, v in counts.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def count_restart(stack: Stack, name: str) -> int:
    """Add one restart of `name` to the record; returns its new count."""
    from twinserve.store.state import write_atomic

    counts = read_restarts(stack)
    counts[name] = counts.get(name, 0) + 1
    write_atomic(restarts_file(stack), json.dumps(counts, sort_keys=True))
    return counts[name]


def wait_ready(url: str, timeout: float, alive=lambda: True) -> None:
    """Wait for an http:// URL to answer 200, or a tcp://host:port to accept connections."""
    if not url.startswith("tcp://"):
        wait_http(url, timeout, alive=alive)
        return
    host, port = url[len("tcp://") :].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise ServiceError(f"process behind {url} exited while starting")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.25)
    raise ServiceError(f"{url} not accepting connections after {timeout:.0f}s")


def wait_http(url: str, timeout: float, ok=lambda r: r.status_code == 200, alive=lambda: True) -> requests.Response:
    """Poll url until ok(response); fail early if alive() turns False."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise ServiceError(f"process behind {url} exited while starting ({last})")
        try:
            response = requests.get(url, timeout=2)
            if ok(response):
                return response
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise ServiceError(f"{url} not ready after {timeout:.0f}s ({last})")
