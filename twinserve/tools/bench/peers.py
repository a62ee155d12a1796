"""The peers, started on free ports for the duration of their measurement.

Every peer serves the weights of the archive twinserve serves in production:
  - TorchServe 0.12 with its default configuration (the original workshop's
    setup): default queue, workers, logging, no batching. Only the ports and
    token authorization are set (0.12 refuses requests without a token by default;
    the workshop's TorchServe had no tokens);
  - FastAPI + uvicorn with 2 workers, per model kind (FASTAPI_PEERS): for tabular
    models as FastAPI's tutorials write it and tuned with twinserve's codec
    (peers/fastapi_peer.py); for image and text models as their tutorials write them
    (peers/fastapi_image_peer.py; peers/fastapi_text_peer.py, with sentence-transformers).
The default TorchServe peer runs the model's twinserve handler without twinserve's
tuning (batching, worker settings, the fast worker codec).
"""

import contextlib
import json
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

from archiver import build_archive, modelconfig, read_metadata
from archiver.modelconfig import Payload
from twinserve.errors import ServiceError
from twinserve.routes import predictions_path
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


# The handler keys that are twinserve's tuning, not the model's: a default TorchServe goes without them.
TUNING_KEYS = ("buffered_protocol", "worker_log_level", "torch_threads")


def model_dir_of(archive: Path, into: Path) -> Path:
    """A model directory the archiver takes, rebuilt from an archive and its metadata, with
    TorchServe's and twinserve's tuning left out: the model, its weights and artifacts, its
    handler's own keys (features, grid size, ...) and its twinserve: section (samples as files)."""
    unpack_model(archive, into)
    (into / "artifacts" / "files").mkdir(parents=True, exist_ok=True)
    for name in ("weights.pt", "reference_stats.json", "golden_set.json"):
        shutil.move(into / name, into / "artifacts" / name)
    meta = read_metadata(archive)
    with zipfile.ZipFile(archive) as mar:  # the files the handler reads beside the weights (a tokenizer)
        for name in meta.get("files", []):
            (into / "artifacts" / "files" / name).write_bytes(mar.read(name))
    # The reference as the archive's metadata holds it: with the columns the archiver sketched from
    # reference_data.npz (the prediction, ...), which the archive itself does not carry.
    (into / "artifacts" / "reference_stats.json").write_text(json.dumps(meta["reference_stats"]))
    settings = modelconfig.from_metadata(meta)
    (into / "samples").mkdir(exist_ok=True)
    samples = []
    for i, sample in enumerate(settings.samples):
        path = into / "samples" / f"{i}-{sample.name}"
        path.write_bytes(sample.body)
        samples.append({"file": str(path.relative_to(into)), "content_type": sample.content_type})
    section = settings.to_metadata() | {"samples": samples}
    handler = yaml.safe_load((into / "model-config.yaml").read_text()).get("handler", {})
    plain = {"handler": {k: v for k, v in handler.items() if k not in TUNING_KEYS}, "twinserve": section}
    (into / "model-config.yaml").write_text(yaml.safe_dump(plain))
    return into


def _wait(url: str, proc: subprocess.Popen, probe: Payload, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Content-Type": probe.content_type}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"peer behind {url} exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.post(url, data=probe.body, headers=headers, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise ServiceError(f"peer {url} not ready after {timeout:.0f}s")


@contextlib.contextmanager
def _process(argv: list[str], cwd: Path, env: dict, url: str, probe: Payload):
    log = (cwd / "peer.log").open("ab")
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        _wait(url, proc, probe)
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
    """TorchServe 0.12, default configuration, serving `archive`'s model with its handler."""
    meta = read_metadata(archive)
    model = meta["model_name"]
    model_dir = model_dir_of(archive, workdir / "model" / model)
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
        f"load_models={model}={built.path.name}\nmodel_store={store}\n"
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
    probe = modelconfig.from_metadata(meta).samples[0]
    with _process(argv, workdir, env, f"http://127.0.0.1:{inference}{predictions_path(model)}", probe) as url:
        yield url


# The FastAPI peer of each model kind: (its app module in the project's peers/, its apps). A kind without one
# is measured against TorchServe's default configuration only.
FASTAPI_PEERS = {
    "tabular": ("fastapi_peer", ("workshop", "tuned")),
    "image": ("fastapi_image_peer", ("workshop",)),
    "text": ("fastapi_text_peer", ("workshop",)),
}


@contextlib.contextmanager
def fastapi_uvicorn(archive: Path, workdir: Path, app: str, workers: int = 2):
    """FastAPI + uvicorn (uvloop, httptools), `workers` processes, serving `archive`'s weights.

    `app` names one of the model kind's FastAPI apps (FASTAPI_PEERS), e.g. "workshop" or "tuned".
    """
    meta = read_metadata(archive)
    settings = modelconfig.from_metadata(meta)
    module, apps = FASTAPI_PEERS[settings.handler]
    if app not in apps:
        raise ServiceError(f"no FastAPI app {app!r} for {settings.handler} models; expected one of {list(apps)}")
    model_dir = unpack_model(archive, workdir / "model")
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "uvicorn", f"{module}:{app}", "--app-dir", str(project_dir() / "peers"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log"]  # fmt: skip
    env = {
        "TWINSERVE_PEER_MODEL_DIR": str(model_dir),
        "TWINSERVE_PEER_MODEL_NAME": meta["model_name"],
        "PYTHONPATH": str(project_dir() / "handlers"),  # the codecs; twinserve itself: this interpreter's install
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",  # sentence-transformers reads the encoder from the package's folder only
        "TOKENIZERS_PARALLELISM": "false",
    }
    url = f"http://127.0.0.1:{port}{predictions_path(meta['model_name'])}"
    with _process(argv, workdir, env, url, settings.samples[0]) as url:
        yield url
