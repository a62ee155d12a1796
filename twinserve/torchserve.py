"""One TorchServe instance per colour: its files, its process, its management API."""

import shutil
import sys
from pathlib import Path

import requests

from archiver.build import sha256_of
from twinserve import processes
from twinserve.errors import ServiceError
from twinserve.render import LOG4J_CONFIG, render_torchserve
from twinserve.settings import Stack

TORCHSERVE_BIN = Path(sys.executable).parent / "torchserve"


def process_name(colour: str) -> str:
    return f"torchserve-{colour}"


def stage_archive(stack: Stack, colour: str, archive: Path, sha256: str) -> Path:
    """Copy an archive from the model store into the colour's own store.

    The copy is checked against the sha256 recorded when it was built, so a
    colour never loads an archive that changed after the archiver wrote it.
    """
    store = stack.colour_store(colour)
    store.mkdir(parents=True, exist_ok=True)
    target = store / archive.name
    if not target.exists() or sha256_of(target) != sha256:
        tmp = store / f".{archive.name}.tmp"
        shutil.copyfile(archive, tmp)
        tmp.replace(target)
    if sha256_of(target) != sha256:
        target.unlink()
        raise ServiceError(f"{archive} does not match the sha256 in its metadata; rebuild it with a new version")
    return target


def command(stack: Stack, colour: str, archives: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the colour's TorchServe, natively and in its container.

    Writes the colour's config.properties first (rendered from the stack).

    Args:
        archives: {model name: archive file name already in the colour's store}.
    """
    home = stack.colour_dir(colour)
    config = home / "config.properties"
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    config.write_text(render_torchserve(stack, colour, archives))
    argv = [
        str(TORCHSERVE_BIN),
        "--start",
        "--foreground",
        "--ncs",
        "--ts-config",
        str(config),
        "--model-store",
        str(stack.colour_store(colour)),
        "--log-config",
        str(LOG4J_CONFIG),
    ]
    env = {
        "TMPDIR": str(tmp),  # TorchServe keeps its pid file there: one per colour
        "TEMP": str(tmp),
        "LOG_LOCATION": str(home / "logs"),
        "METRICS_LOCATION": str(home / "logs"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # Production inputs go to the broker for drift detection (handlers/input_publisher.py).
        "TWINSERVE_KAFKA_BOOTSTRAP": stack.drift.bootstrap,
        "TWINSERVE_INPUTS_TOPIC": stack.drift.topic,
        "TWINSERVE_PUBLISHER_STATS_DIR": str(publisher_stats_dir(stack, colour)),
        "TWINSERVE_PUBLISHER_QUEUE": str(stack.drift.queue_batches),
    }
    return argv, env


def start(stack: Stack, colour: str, archives: dict[str, str]) -> int:
    """Start the colour's TorchServe in the foreground mode, as a process of the stack."""
    argv, env = command(stack, colour, archives)
    home = stack.colour_dir(colour)
    return processes.start(stack, process_name(colour), argv, home, env, home / "logs" / "stdout.log")


def publisher_stats_dir(stack: Stack, colour: str) -> Path:
    """Where the colour's workers write their input-publisher counters."""
    return stack.colour_dir(colour) / "publisher"


def stop(stack: Stack, colour: str) -> bool:
    return processes.stop(stack, process_name(colour))


def wait_ready(stack: Stack, colour: str, models: list[str]) -> None:
    """Wait until /ping is healthy and every model has a ready worker."""
    timeout = stack.torchserve.start_timeout_seconds
    alive = lambda: processes.running_pid(stack, process_name(colour)) is not None  # noqa: E731
    processes.wait_http(f"{stack.inference_url(colour)}/ping", timeout, alive=alive)
    client = Management(stack, colour)
    for model in models:
        processes.wait_http(
            f"{client.url}/models/{model}",
            timeout,
            alive=alive,
            ok=lambda r: r.status_code == 200 and Management.has_ready_worker(r.json()[0]),
        )


class Management:
    """The few management-API calls the control plane makes, for one colour."""

    def __init__(self, stack: Stack, colour: str, timeout: float = 120.0):
        self.colour = colour
        self.url = stack.management_url(colour)
        self.timeout = timeout

    def _call(self, method: str, path: str, **params) -> requests.Response:
        try:
            response = requests.request(method, f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceError(f"{self.colour} management API unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ServiceError(f"{self.colour}: {method} {path} failed: HTTP {response.status_code}: {message.strip()}")
        return response

    @staticmethod
    def has_ready_worker(description: dict) -> bool:
        return any(w.get("status") == "READY" for w in description.get("workers", []))

    def describe(self, model: str) -> list[dict]:
        """Every registered version of `model` (empty if it is not registered)."""
        try:
            return self._call("GET", f"/models/{model}/all").json()
        except ServiceError as exc:
            if "HTTP 404" in str(exc):
                return []
            raise

    def default_version(self, model: str) -> str | None:
        try:
            return self._call("GET", f"/models/{model}").json()[0]["modelVersion"]
        except ServiceError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def register(self, model: str, archive_name: str, workers: int) -> None:
        self._call(
            "POST",
            "/models",
            url=archive_name,
            model_name=model,
            initial_workers=workers,
            synchronous="true",
        )

    def set_default(self, model: str, version: str) -> None:
        self._call("PUT", f"/models/{model}/{version}/set-default")

    def unregister(self, model: str, version: str) -> None:
        try:
            self._call("DELETE", f"/models/{model}/{version}")
        except ServiceError as exc:
            # TorchServe 0.12 answers 500 when the thread waiting for the stopped worker is
            # interrupted (every time in the compose stack's containers); the worker is gone by
            # then and the same DELETE succeeds.
            if "Interrupted while cleaning resources" not in str(exc):
                raise
            self._call("DELETE", f"/models/{model}/{version}")
