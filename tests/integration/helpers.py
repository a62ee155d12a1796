"""Small helpers the integration tests share."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_ports
from twinserve.release import deploy, promote
from twinserve.runtime import nginx
from twinserve.runtime import stack as stack_mod
from twinserve.runtime.torchserve import TORCHSERVE_BIN, Management
from twinserve.store.state import read_production


def poll(check, timeout: float, every: float = 2.0):
    """Return check()'s first truthy value, or its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """A /metrics page as {(sample name, labels): value}."""
    text = requests.get(url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **labels) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@contextlib.contextmanager
def standalone_torchserve(root: Path, model: str, archive: Path, ready, timeout: float = 180):
    """TorchServe 0.12 on its own (no Nginx, no stack) serving one archive on free loopback ports.

    Args:
        root: a scratch directory (config, logs, TorchServe's TMPDIR).
        model: the name to serve the archive as (/predictions/<model>).
        archive: the .mar, in the store directory TorchServe reads.
        ready: ready(url) -> True once the model answers.
    Yields:
        The inference URL; the process group is stopped after.
    """
    store = archive.parent
    inference, management, metrics, grpc_i, grpc_m = free_ports(5)
    config = root / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{inference}\nmanagement_address=http://127.0.0.1:{management}\n"
        f"metrics_address=http://127.0.0.1:{metrics}\ngrpc_inference_port={grpc_i}\ngrpc_management_port={grpc_m}\n"
        f"model_store={store}\nload_models={model}={archive.name}\ndisable_token_authorization=true\n"
        "disable_system_metrics=true\nmax_request_size=1048576\n"
    )
    argv = [str(TORCHSERVE_BIN), "--start", "--foreground", "--ncs", "--ts-config", str(config),
            "--model-store", str(store)]  # fmt: skip
    with (root / "ts.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=root, env={"TMPDIR": str(root), "PATH": "/usr/bin:/bin"},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{inference}"
    try:
        assert poll(lambda: ready(url), timeout=timeout, every=1), (root / "ts.log").read_text()[-2000:]
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def arrange(stack, production: str, versions: dict[str, str]) -> None:
    """Put the running stack into the state a test needs, with the product's own commands.

    Afterwards every part runs, `production` serves /predict (state file and
    Nginx), and each colour serves versions[colour] of the stack's default model
    as its default and only version. Only what differs is changed, so a test
    that finds the stack as it needs it costs nothing, and no test depends on
    what the tests before it left behind.
    """
    stack_mod.up(stack)  # a colour or the whole stack stopped by an earlier test
    model = stack.default

    def settled(colour: str) -> bool:
        client = Management(stack, colour)
        return [d["modelVersion"] for d in client.describe(model)] == [versions[colour]]

    def put_on_staging(colour: str) -> None:
        assert stack.other(read_production(stack)) == colour
        deploy.deploy(stack, stack.model_store / f"{model}-{versions[colour]}.mar")

    staging = stack.other(production)
    if not settled(production):
        if read_production(stack) == production:
            promote.switch_to(stack, staging)
        put_on_staging(production)
    if read_production(stack) != production:
        promote.switch_to(stack, production)
    if not settled(staging):
        put_on_staging(staging)
    assert nginx.get_production(stack) == production
    assert settled(production) and settled(staging)
