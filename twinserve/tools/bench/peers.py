"""The peers, started on free ports for the duration of their measurement.

Every peer serves the weights of the archive twinserve serves in production:
  - TorchServe 0.12 with its default configuration (the original workshop's
    setup): default queue, workers, logging, no batching. Only the ports and
    token authorization are set (0.12 refuses requests without a token by default;
    the workshop's TorchServe had no tokens);
  - FastAPI + uvicorn with 2 workers, in two flavours (fastapi_peer.py): as
    FastAPI's tutorials write it, and tuned with twinserve's codec.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests
import yaml

from archiver import build_archive
from twinserve.errors import ServiceError
from twinserve.runtime.torchserve import TORCHSERVE_BIN
from twinserve.settings import project_dir


def free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def unpack_model(archive: Path, into: Path) -> Path:
    """model.py, weights.pt and model-config.yaml of an archive, in a model directory."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as mar:
        for name in ("model.py", "weights.pt", "model-config.yaml", "reference_stats.json", "golden_set.json"):
            (into / name).write_bytes(mar.read(name))
    return into


def _wait(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"peer behind {url} exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.post(url, json={"data": [0.2, 0.6]}, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise ServiceError(f"peer {url} not ready after {timeout:.0f}s")


@contextlib.contextmanager
def _process(argv: list[str], cwd: Path, env: dict, url: str):
    log = (cwd / "peer.log").open("ab")
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        _wait(url, proc)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


@contextlib.contextmanager
def default_torchserve(archive: Path, workdir: Path):
    """TorchServe 0.12, default configuration, serving `archive`'s weights."""
    model_dir = unpack_model(archive, workdir / "model" / "regressor")
    (model_dir / "artifacts").mkdir(exist_ok=True)
    for name in ("weights.pt", "reference_stats.json", "golden_set.json"):
        shutil.move(model_dir / name, model_dir / "artifacts" / name)
    handler = yaml.safe_load((model_dir / "model-config.yaml").read_text())["handler"]
    plain = {"handler": {"features": handler["features"], "max_rows": handler["max_rows"]}}
    (model_dir / "model-config.yaml").write_text(yaml.safe_dump(plain))
    store = workdir / "store"
    built = build_archive(model_dir, "1.0", store)
    inference, management, metrics, grpc_i, grpc_m = free_ports(5)
    config = workdir / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{inference}\n"
        f"management_address=http://127.0.0.1:{management}\n"
        f"metrics_address=http://127.0.0.1:{metrics}\n"
        f"grpc_inference_port={grpc_i}\ngrpc_management_port={grpc_m}\n"
        "disable_token_authorization=true\n"
        f"load_models=regressor={built.path.name}\nmodel_store={store}\n"
    )
    (workdir / "tmp").mkdir(exist_ok=True)
    argv = [
        str(TORCHSERVE_BIN),
        "--start",
        "--foreground",
        "--ncs",
        "--ts-config",
        str(config),
        "--model-store",
        str(store),
    ]
    env = {
        "TMPDIR": str(workdir / "tmp"),
        "LOG_LOCATION": str(workdir / "logs"),
        "METRICS_LOCATION": str(workdir / "logs"),
    }
    with _process(argv, workdir, env, f"http://127.0.0.1:{inference}/predictions/regressor") as url:
        yield url


@contextlib.contextmanager
def fastapi_uvicorn(archive: Path, workdir: Path, app: str, workers: int = 2):
    """FastAPI + uvicorn (uvloop, httptools), `workers` processes, serving `archive`'s weights.

    `app` names one of fastapi_peer.py's apps: "workshop" or "tuned".
    """
    model_dir = unpack_model(archive, workdir / "model")
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "uvicorn", f"twinserve.tools.bench.fastapi_peer:{app}", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    env = {
        "TWINSERVE_PEER_MODEL_DIR": str(model_dir),
        "PYTHONPATH": str(project_dir() / "handlers"),  # twinserve itself: this interpreter's install
        "OMP_NUM_THREADS": "1",
    }
    with _process(argv, workdir, env, f"http://127.0.0.1:{port}/predictions/regressor") as url:
        yield url
