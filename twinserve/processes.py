"""Start and stop the stack's long-running processes.

Each process runs in a session of its own, so stopping it stops its children
too (TorchServe's Java frontend and its Python workers; Nginx's workers). Its
pid is kept in <var_dir>/run/<name>.pid: `down` stops exactly what `up`
started, and nothing else.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from twinserve.errors import ServiceError
from twinserve.settings import Stack


def pid_file(stack: Stack, name: str) -> Path:
    return stack.var_dir / "run" / f"{name}.pid"


def running_pid(stack: Stack, name: str) -> int | None:
    """The pid of our process `name` if it is alive, else None."""
    try:
        pid = int(pid_file(stack, name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # A zombie of ours (already exited, not reaped) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state == "Z" else pid


def start(stack: Stack, name: str, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
    """Start argv in its own session, output appended to `log`."""
    if running_pid(stack, name):
        raise ServiceError(f"{name} is already running (pid file {pid_file(stack, name)})")
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file(stack, name).parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file(stack, name).write_text(str(proc.pid))
    return proc.pid


def stop(stack: Stack, name: str, timeout: float = 20.0) -> bool:
    """Stop process `name` and its session; True if it was running."""
    pid = running_pid(stack, name)
    pid_file(stack, name).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
            _reap(pid)
            time.sleep(0.1)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


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
