"""Which colour is production, promotion of staging, and rollback.

A switch is: preflight on the target colour (ping, ready workers, golden-set
smoke through Nginx), write the state file, flip Nginx's shared dictionary
(no reload), then check that /predict is answered by the target. Any failure
before the flip changes nothing; a failure after it restores the previous
colour in both places.
"""

import requests

from twinserve.errors import PreflightError, ServiceError, TwinserveError
from twinserve.release.clients import LIVE, Clients
from twinserve.runtime.torchserve import Management
from twinserve.settings import Stack
from twinserve.store.archives import archive_for
from twinserve.store.state import read_production, write_production


def which(stack: Stack, *, clients: Clients = LIVE) -> str:
    """`production is BLUE`; says so if Nginx disagrees with the state file."""
    colour = read_production(stack)
    line = f"production is {colour.upper()}"
    try:
        live = clients.switch.get_production(stack)
    except TwinserveError:  # Nginx down, or no admin token yet: the state file is the answer
        return line
    if live is None:
        line += " (but nginx has no production colour and answers /predict with 503: run `make up`)"
    elif live != colour:
        line += f" (but nginx routes /predict to {live.upper()})"
    return line


def preflight(stack: Stack, colour: str, url: str, *, clients: Clients = LIVE) -> None:
    """Check that `colour` can take production traffic; raise PreflightError if not."""
    try:
        ping = clients.ping(stack, colour)
    except (requests.RequestException, ServiceError) as exc:
        raise PreflightError(f"{colour} is down: /ping {type(exc).__name__}") from None
    if ping != 200:
        raise PreflightError(f"{colour} is unhealthy: /ping HTTP {ping}")
    client = clients.management(stack, colour)
    for model in stack.models:
        versions = client.describe(model)
        if not versions:
            raise PreflightError(f"{colour} serves no version of {model}")
        for description in versions:
            if not Management.has_ready_worker(description):
                raise PreflightError(f"{colour} {model} {description.get('modelVersion')} has no ready worker")
        version = client.default_version(model)
        _, meta = archive_for(stack, model, version)
        clients.smoke(url, meta["golden_set"], colour, version)


def _verify_production(stack: Stack, colour: str, attempts: int = 20, *, clients: Clients = LIVE) -> None:
    model = next(iter(stack.models))
    version = clients.management(stack, colour).default_version(model)
    _, meta = archive_for(stack, model, version)
    row = meta["golden_set"][:1]
    for _ in range(attempts):
        clients.smoke(f"{stack.nginx.url}/predict", row, colour, version)


def switch_to(stack: Stack, target: str, *, clients: Clients = LIVE) -> str:
    """Make `target` production after a preflight; returns the previous colour.

    A failure after the state file was written (Nginx refused the flip, the
    check through /predict failed, an interrupt) puts `previous` back in both
    places; a TwinserveError then says whether that worked.
    """
    previous = read_production(stack)
    if target == previous:
        raise PreflightError(f"{target} is already production")
    preflight(stack, target, f"{stack.nginx.url}/test/predict", clients=clients)
    write_production(stack, target)
    try:
        clients.switch.set_production(stack, target)
        _verify_production(stack, target, clients=clients)
    except BaseException as exc:  # an interrupt too (Ctrl-C, Jenkins' abort): never leave a half switch
        write_production(stack, previous)
        try:
            clients.switch.set_production(stack, previous)
            restored = f"production is {previous} again"
        except ServiceError as again:
            restored = f"the state file says {previous} again, but nginx was not switched back ({again}): run `make up`"
        if isinstance(exc, TwinserveError):
            raise type(exc)(f"{exc}; {restored}") from exc
        raise
    return previous


def swap(stack: Stack, *, clients: Clients = LIVE) -> str:
    """Promote staging to production."""
    target = stack.other(read_production(stack))
    switch_to(stack, target, clients=clients)
    return f"production is {target.upper()} (was {stack.other(target).upper()})"


def rollback(stack: Stack, *, clients: Clients = LIVE) -> str:
    """Return production to the previous colour (the one now on staging)."""
    return swap(stack, clients=clients)
