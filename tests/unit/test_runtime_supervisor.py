"""twinserve/runtime/supervisor.py: the restart backoff, and the module importable on its own."""

import subprocess
import sys

from twinserve.runtime.supervisor import Backoff


def test_backoff_restarts_at_once_then_doubles_then_forgets():
    b = Backoff(stable_seconds=60, max_delay=10)
    delays = []
    for now in (0, 5, 10, 15, 20, 25):  # dies 5 s after every restart
        delays.append(b.delay(now))
        b.restarted(now)
    assert delays == [0, 1, 2, 4, 8, 10], "at once, then doubling, capped at max_delay"
    assert b.delay(200) == 0, "up longer than stable_seconds: the next crash restarts at once"


def test_the_supervisor_module_runs_standalone():
    done = subprocess.run([sys.executable, "-c", "import twinserve.runtime.supervisor"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
