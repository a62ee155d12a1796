"""Small helpers the integration tests share."""

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from twinserve.release import deploy, promote
from twinserve.runtime import nginx
from twinserve.runtime import stack as stack_mod
from twinserve.runtime.torchserve import Management
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


def arrange(stack, production: str, versions: dict[str, str]) -> None:
    """Put the running stack into the state a test needs, with the product's own commands.

    Afterwards every part runs, `production` serves /predict (state file and
    Nginx), and each colour serves versions[colour] of the stack's first model
    as its default and only version. Only what differs is changed, so a test
    that finds the stack as it needs it costs nothing, and no test depends on
    what the tests before it left behind.
    """
    stack_mod.up(stack)  # a colour or the whole stack stopped by an earlier test
    model = next(iter(stack.models))

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
