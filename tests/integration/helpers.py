"""Small helpers the integration tests share."""

import contextlib
import time
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from archiver.build import read_metadata
from tests.checkout import DEFAULT_STACK
from tests.ports import free_ports
from twinserve.release import deploy, promote
from twinserve.runtime import nginx, torchserve
from twinserve.runtime import stack as stack_mod
from twinserve.runtime.torchserve import Management
from twinserve.settings import parse_stack
from twinserve.store.state import read_production


def stack_description(root: Path, **nginx_overrides) -> dict:
    """config/stack.yaml with free ports and every path under `root`."""
    raw = yaml.safe_load(DEFAULT_STACK.read_text())
    ports = iter(free_ports(4 + 5 * len(raw["colours"]) + len(raw["monitoring"])))
    raw["nginx"].update(port=next(ports), admin_port=next(ports), **nginx_overrides)
    for section in ("monitoring", "drift"):
        for key in raw[section]:
            if key.endswith("_port"):
                raw[section][key] = next(ports)
    for colour in raw["colours"].values():
        for key in list(colour):
            colour[key] = next(ports)
    raw["var_dir"] = str(root / "var")
    raw["state_dir"] = str(root / "state")
    raw["model_store"] = str(root / "model_store")
    for model in raw["models"]:  # copied and trained by `workdir`
        raw["models"][model]["dir"] = str(root / "models" / model)
    raw["supervisor"]["rotate_every_seconds"] = 2  # test_supervision waits for rotations
    return raw


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
    """TorchServe serving one archive on free loopback ports, without Nginx, started by the product's own
    code (config.properties rendered from config/torchserve/config.properties.j2, the JVM started as
    `make up` starts a colour) with token authorization off, so a test posts to /predictions directly.

    Args:
        root: a scratch directory (the colour's var dir, its store, its logs).
        model: the name to serve the archive as (/predictions/<model>).
        archive: a built .mar (copied into the colour's store, sha256-checked).
        ready: ready(url) -> True once the model answers.
    Yields:
        The inference URL; the process group is stopped after.
    """
    raw = stack_description(root)
    # Above every model's body limit, so that the handler's own bound answers (behind Nginx, Nginx's does).
    raw["torchserve"].update(token_auth=False, max_request_bytes=1 << 20)
    stack = parse_stack(raw, root / "stack.yaml")
    colour = stack.colour_names[0]
    staged = torchserve.stage_archive(stack, colour, archive, read_metadata(archive)["sha256"])
    torchserve.start(stack, colour, {model: staged.name})
    url = stack.inference_url(colour)
    try:
        log = stack.colour_dir(colour) / "logs" / "stdout.log"
        assert poll(lambda: ready(url), timeout=timeout, every=1), log.read_text()[-2000:]
        yield url
    finally:
        torchserve.stop(stack, colour)


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
