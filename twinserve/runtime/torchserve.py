"""One TorchServe instance per colour: its files, its process, its management API.

The process is TorchServe's Java frontend itself, started the way the
`torchserve` launcher (ts/model_server.py) starts it. The launcher only builds
that command line and waits on the JVM; it forwards no signal, so with it the
stack tracked a Python process whose death left the JVM serving and holding the
colour's ports. Started directly, the pid the stack records is the process
that serves, and the JVM's session holds its Python workers.

TorchServe 0.12's token authorization is on: at every start a colour writes new
keys into key_file.json (0600) in its working directory, var/<colour>/. The
control plane reads them from there on every call (a restart changes them):
the management key for the management API, the inference key for /ping; Nginx
gets the inference key from the control plane (twinserve.runtime.nginx.publish_keys).
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import requests

from archiver.build import sha256_of
from twinserve.errors import ServiceError
from twinserve.runtime import processes
from twinserve.runtime.render import LOG4J_CONFIG, render_torchserve
from twinserve.settings import Stack
from twinserve.store.archives import archive_for
from twinserve.store.state import read_deployments

TORCHSERVE_BIN = Path(sys.executable).parent / "torchserve"  # the launcher (the benchmark's default peer uses it)
FRONTEND_CLASS = "org.pytorch.serve.ModelServer"


def java_bin() -> str:
    """Java as the launcher picks it: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    return f"{home}/bin/java" if home else (shutil.which("java") or "java")


def frontend_home() -> Path:
    """Where the torchserve package lives (its ts/frontend/ holds the frontend's jars)."""
    import ts

    return Path(ts.__file__).resolve().parent.parent


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


def stage_served(stack: Stack, colour: str) -> dict[str, str]:
    """Stage every archive the state says `colour` serves: {model: file name in its store}.

    The one place a starting colour gets its archives, natively and in its
    container, so both load exactly what the state names and nothing else.
    """
    archives = {}
    for model, version in read_deployments(stack)[colour].items():
        path, meta = archive_for(stack, model, version)
        archives[model] = stage_archive(stack, colour, path, meta["sha256"]).name
    return archives


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
    ts_home = frontend_home()
    argv = [
        java_bin(),
        f"-Dmodel_server_home={ts_home}",
        f"-Dlog4j.configurationFile=file://{stack.project / LOG4J_CONFIG}",
        f"-Djava.io.tmpdir={tmp}",
        f"-Xmx{stack.torchserve.java_heap}",
        "-XX:+UseG1GC",
        "-cp",
        str(ts_home / "ts" / "frontend" / "*"),
        FRONTEND_CLASS,
        "--python",
        sys.executable,
        "-f",
        str(config),
        "-s",
        str(stack.colour_store(colour)),
        "-ncs",  # no config snapshots: the config is rendered from the stack at every start
    ]
    env = {
        "TMPDIR": str(tmp),  # the workers' sockets and temporary files: one folder per colour
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
        # log4j2.xml rolls TorchServe's logs at the same bound as the supervisor's logrotate.
        "TWINSERVE_LOG_MAX_SIZE": f"{stack.supervisor.log_max_mb} MB",
        "TWINSERVE_LOG_KEEP": str(stack.supervisor.log_keep),
    }
    return argv, env


def start(stack: Stack, colour: str, archives: dict[str, str]) -> int:
    """Start the colour's TorchServe frontend (the JVM) as a process of the stack.

    The previous process's key file goes first: until the new one has written
    its keys there is no key to read, never a stale one to publish to Nginx.
    """
    argv, env = command(stack, colour, archives)
    home = stack.colour_dir(colour)
    stack.key_file(colour).unlink(missing_ok=True)
    return processes.start(stack, process_name(colour), argv, home, env, home / "logs" / "stdout.log")


def publisher_stats_dir(stack: Stack, colour: str) -> Path:
    """Where the colour's workers write their input-publisher counters."""
    return stack.colour_dir(colour) / "publisher"


def stop(stack: Stack, colour: str) -> bool:
    return processes.stop(stack, process_name(colour))


def read_key(stack: Stack, colour: str, kind: str) -> str:
    """The colour's current `kind` key ("management" or "inference") from its key file."""
    path = stack.key_file(colour)
    try:
        key = json.loads(path.read_text())[kind]["key"]
    except FileNotFoundError:
        raise ServiceError(
            f"{path} missing: {colour} TorchServe is not running (it writes its keys at start)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"{path}: no {kind} key ({type(exc).__name__})") from None
    if not isinstance(key, str) or not key or not all(ch.isalnum() or ch in "-_=" for ch in key):
        raise ServiceError(f"{path}: the {kind} key is not a TorchServe key")
    return key


def authorization(stack: Stack, colour: str, kind: str) -> dict[str, str]:
    """The header a call to the colour's `kind` API needs (none where token authorization is off)."""
    if not stack.torchserve.token_auth:
        return {}
    return {"Authorization": f"Bearer {read_key(stack, colour, kind)}"}


def ping(stack: Stack, colour: str) -> int:
    """HTTP status of the colour's /ping (raises requests.RequestException, or ServiceError without a key)."""
    key = authorization(stack, colour, "inference")
    return requests.get(f"{stack.inference_url(colour)}/ping", headers=key, timeout=5).status_code


def wait_ready(stack: Stack, colour: str, models: list[str]) -> None:
    """Wait until /ping is healthy and every model has a ready worker.

    The keys are read again at every try: until the new process has written its
    key file, the one on disk may be the previous process's.
    """
    timeout = stack.torchserve.start_timeout_seconds
    deadline = time.monotonic() + timeout
    client = Management(stack, colour, timeout=2.0)
    checks = [(f"{stack.inference_url(colour)}/ping", "inference", lambda r: True)]
    checks += [
        (f"{client.url}/models/{m}", "management", lambda r: Management.has_ready_worker(r.json()[0])) for m in models
    ]
    for url, kind, ready in checks:
        last = "no answer"
        while True:
            if processes.running_pid(stack, process_name(colour)) is None:
                raise ServiceError(f"process behind {url} exited while starting ({last})")
            try:
                response = requests.get(url, headers=authorization(stack, colour, kind), timeout=2)
                if response.status_code == 200 and ready(response):
                    break
                last = f"HTTP {response.status_code}"
            except (requests.RequestException, ServiceError, ValueError, IndexError) as exc:
                last = type(exc).__name__
            if time.monotonic() > deadline:
                raise ServiceError(f"{url} not ready after {timeout:.0f}s ({last})")
            time.sleep(0.25)


class Management:
    """The few management-API calls the control plane makes, for one colour."""

    def __init__(self, stack: Stack, colour: str, timeout: float = 120.0):
        self.stack = stack
        self.colour = colour
        self.url = stack.management_url(colour)
        self.timeout = timeout

    def _call(self, method: str, path: str, **params) -> requests.Response:
        headers = authorization(self.stack, self.colour, "management")
        try:
            response = requests.request(
                method, f"{self.url}{path}", params=params, headers=headers, timeout=self.timeout
            )
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
