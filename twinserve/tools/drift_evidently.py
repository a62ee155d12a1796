"""Evidently's data-drift preset as a peer in `make drift-eval`, on the windows the consumer judged.

Evidently is no dependency of the project: it is installed, pinned, into a
venv of its own (var/evidently-venv, created on first use) and run as a
subprocess (twinserve/tools/evidently_windows.py) over an npz file of the
reference sample and the windows. Its preset judges a window in ~0.3-0.7 s
(a report per window, most of it spent drawing the report's plotly widgets),
the consumer in a few ms, so Evidently sees fewer windows: the undrifted
stream's first `--evidently-rows` rows, and on each changed stream the windows
after the change up to its first "drifted" (what its delay needs). Its false
alarms are counted on that undrifted stretch only.
"""

import json
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinserve.errors import UsageError

# pandas 3 removed what evidently 0.7.23 imports (pandas.core.dtypes.common.infer_dtype_from_object)
PINS = ("evidently==0.7.23", "pandas==2.3.3")
SCRIPT = Path(__file__).with_name("evidently_windows.py")
DETECTOR = "evidently"


def ensure_venv(venv: Path) -> Path:
    """The venv's python, with PINS installed (once: a marker file records the pins installed)."""
    python, marker = venv / "bin" / "python", venv / "twinserve-pins.txt"
    if python.exists() and marker.exists() and marker.read_text().split() == list(PINS):
        return python
    print(f"installing {' '.join(PINS)} into {venv} (once; Evidently stays out of the project's venv)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS]
    done = subprocess.run(pip, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise UsageError(f"pip could not install {' '.join(PINS)} into {venv}: {done.stderr.strip()[-400:]}")
    marker.write_text("\n".join(PINS) + "\n")
    return python


@dataclass
class Windows:
    """The windows one model's consumer judged that Evidently is to judge too, with where they end."""

    sample: dict[str, np.ndarray]  # the reference's values, by feature
    null: list[tuple[int, dict]] = field(default_factory=list)  # (rows seen, window) of the undrifted stream
    changed: list[tuple[str, int, list[tuple[int, dict]]]] = field(default_factory=list)  # (scenario, warmup, ...)

    def write(self, path: Path) -> None:
        arrays = {f"ref/{f}": v for f, v in self.sample.items()}
        stream, post = [], []
        for i, (_, window) in enumerate(self.all()):
            arrays.update({f"win/{i}/{f}": window[f] for f in self.sample})
        for _, _ in self.null:
            stream.append(0)
            post.append(False)
        for s, (_, _, windows) in enumerate(self.changed, start=1):
            stream += [s] * len(windows)
            post += [True] * len(windows)
        np.savez(path, stream=np.asarray(stream, dtype=np.int64), post=np.asarray(post, dtype=bool), **arrays)

    def all(self) -> list[tuple[int, dict]]:
        return [*self.null, *(w for _, _, windows in self.changed for w in windows)]


class Queue:
    """Evidently's judgements of each model's windows in background threads (two: once this process is
    done with its streams it only waits, and the machine has two cores)."""

    def __init__(self, python: Path, workdir: Path, workers: int = 2):
        self.python, self.workdir = python, workdir
        self.pool = ThreadPoolExecutor(workers)
        self.procs: list[subprocess.Popen] = []

    def submit(self, windows: Windows) -> Future:
        """A future of (score(windows, output), Evidently's version)."""
        return self.pool.submit(self._run, windows)

    def _run(self, windows: Windows) -> tuple[dict, str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="evidently-") as tmp:
            npz = Path(tmp) / "windows.npz"
            windows.write(npz)
            proc = subprocess.Popen([str(self.python), str(SCRIPT), str(npz)], stdout=subprocess.PIPE, text=True)
            self.procs.append(proc)
            out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"Evidently's subprocess exited {proc.returncode} (its stderr above)")
        output = json.loads(out)
        return score(windows, output), output["version"]

    def close(self) -> None:
        """Stop what is still running (an interrupted evaluation leaves no process behind)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def onsets(seen: list[int], drifted: list[bool | None]) -> list[int]:
    """The row counts at which the verdict turned on (off before the first window; None: not judged, ends)."""
    out, state = [], False
    for rows, on in zip(seen, drifted, strict=True):
        if on is None:
            break
        if on and not state:
            out.append(rows)
        state = on
    return out


def score(windows: Windows, output: dict) -> dict:
    """{"false_alarms": onsets in the undrifted stretch, "null_rows": its rows,
    "delays": {scenario: [rows after the change to the first drifted window, or None]}}."""
    verdicts = [None if w is None else bool(w["drifted"]) for w in output["windows"]]
    if len(verdicts) != len(windows.all()):
        raise RuntimeError(f"Evidently judged {len(verdicts)} windows of {len(windows.all())}")
    n = len(windows.null)
    null_seen = [rows for rows, _ in windows.null]
    result = {"false_alarms": len(onsets(null_seen, verdicts[:n])), "null_rows": max(null_seen, default=0)}
    delays, i = {}, n
    for scenario, warmup, ws in windows.changed:
        got = onsets([rows for rows, _ in ws], verdicts[i : i + len(ws)])
        delays.setdefault(scenario, []).append(got[0] - warmup if got else None)
        i += len(ws)
    result["delays"] = delays
    result["tests"] = next((w["tests"] for w in output["windows"] if w), {})
    return result
