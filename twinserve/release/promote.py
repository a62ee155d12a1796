"""Which colour is production, promotion of staging, and rollback.

A switch is: preflight on the target colour (ping, ready workers, golden-set
smoke through Nginx), write the state file, flip Nginx's shared dictionary
(no reload), then check that /predict is answered by the target. Any failure
before the flip changes nothing; a failure after it restores the previous
colour in both places.
"""

import contextlib

import requests

from twinserve.errors import PreflightError, ServiceError, TwinserveError
from twinserve.release.smoke import run_smoke
from twinserve.runtime import nginx
from twinserve.runtime.torchserve import Management, authorization
from twinserve.settings import Stack
from twinserve.store.archives import archive_for
from twinserve.store.state import read_production, write_production


def which(stack: Stack) -> str:
    """`production is BLUE`; says so if Nginx disagrees with the state file."""
    colour = read_production(stack)
    line = f"production is {colour.upper()}"
    try:
        live = nginx.get_production(stack)
    except TwinserveError:  # Nginx down, or no admin token yet: the state file is the answer
        return line
    if live is None:
        line += " (but nginx has no production colour and answers /predict with 503: run `make up`)"
    elif live != colour:
        line += f" (but nginx routes /predict to {live.upper()})"
    return line


def preflight(stack: Stack, colour: str, url: str) -> None:
    """Check that `colour` can take production traffic; raise PreflightError if not."""
    try:
        key = authorization(stack, colour, "inference")
        ping = requests.get(f"{stack.inference_url(colour)}/ping", headers=key, timeout=5)
    except (requests.RequestException, ServiceError) as exc:
        raise PreflightError(f"{colour} is down: /ping {type(exc).__name__}") from None
    if ping.status_code != 200:
        raise PreflightError(f"{colour} is unhealthy: /ping HTTP {ping.status_code}")
    client = Management(stack, colour)
    for model in stack.models:
        versions = client.describe(model)
        if not versions:
            raise PreflightError(f"{colour} serves no version of {model}")
        for description in versions:
            if not Management.has_ready_worker(description):
                raise PreflightError(f"{colour} {model} {description.get('modelVersion')} has no ready worker")
        version = client.default_version(model)
        _, meta = archive_for(stack, model, version)
        run_smoke(url, meta["golden_set"], colour, version)


def _verify_production(stack: Stack, colour: str, attempts: int = 20) -> None:
    model = next(iter(stack.models))
    version = Management(stack, colour).default_version(model)
    _, meta = archive_for(stack, model, version)
    row = meta["golden_set"][:1]
    for _ in range(attempts):
        run_smoke(f"{stack.nginx.url}/predict", row, colour, version)


def switch_to(stack: Stack, target: str) -> str:
    """Make `target` production after a preflight; returns the previous colour."""
    previous = read_production(stack)
    if target == previous:
        raise PreflightError(f"{target} is already production")
    preflight(stack, target, f"{stack.nginx.url}/test/predict")
    write_production(stack, target)
    try:
        nginx.set_production(stack, target)
        _verify_production(stack, target)
    except BaseException:  # an interrupt too (Ctrl-C, Jenkins' abort): never leave a half switch
        write_production(stack, previous)
        with contextlib.suppress(ServiceError):
            nginx.set_production(stack, previous)
        raise
    return previous


def swap(stack: Stack) -> str:
    """Promote staging to production."""
    target = stack.other(read_production(stack))
    switch_to(stack, target)
    return f"production is {target.upper()} (was {stack.other(target).upper()})"


def rollback(stack: Stack) -> str:
    """Return production to the previous colour (the one now on staging)."""
    return swap(stack)
