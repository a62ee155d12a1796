"""Which colour is production, promotion of staging, and rollback: one model at a time.

Every model has its own production colour. A switch of one model is: preflight
on the target colour (ping, the model's ready workers, its golden-set smoke
through Nginx), write the model's state file, flip the model's entry in Nginx's
shared dictionary (no reload), then check that /predict/<model> is answered by
the target. Any failure before the flip changes nothing; a failure after it
restores the previous colour in both places. No other model's colour is touched.
"""

import requests

from twinserve.errors import PreflightError, ServiceError, TwinserveError
from twinserve.release.clients import LIVE, Clients
from twinserve.release.smoke import rule_of
from twinserve.routes import route_for
from twinserve.runtime.torchserve import Management
from twinserve.settings import Stack
from twinserve.store.archives import archive_for
from twinserve.store.state import read_production, write_production


def route(stack: Stack, model: str, staging: bool = False) -> str:
    """The URL of `model`'s production route (or, with staging, its staging route) through Nginx."""
    return f"{stack.nginx.url}{route_for(model, staging=staging)}"


def which(stack: Stack, model: str | None = None, *, clients: Clients = LIVE) -> str:
    """`production is BLUE` for `model` (default: the default model); says so if Nginx disagrees with the state."""
    model = stack.model(model)
    colour = read_production(stack, model)
    line = f"production is {colour.upper()}"
    try:
        live = clients.switch.get_production(stack, model)
    except TwinserveError:  # Nginx down, or no admin token yet: the state file is the answer
        return line
    if live is None:
        line += f" (but nginx has no production colour and answers {route_for(model)} with 503: run `make up`)"
    elif live != colour:
        line += f" (but nginx routes {route_for(model)} to {live.upper()})"
    return line


def which_all(stack: Stack, *, clients: Clients = LIVE) -> tuple[list[str], bool]:
    """One line per model, `<model>: production is BLUE`; and False if any model has no valid colour."""
    lines, ok = [], True
    for model in stack.models:
        try:
            lines.append(f"{model}: {which(stack, model, clients=clients)}")
        except TwinserveError as exc:
            lines.append(f"{model}: error: {exc}")
            ok = False
    return lines, ok


def preflight(stack: Stack, colour: str, url: str, model: str | None = None, *, clients: Clients = LIVE) -> None:
    """Check that `colour` can take `model`'s production traffic (default: every model's, through
    `url`; with a model, its own staging route); raise PreflightError if not."""
    try:
        ping = clients.ping(stack, colour)
    except (requests.RequestException, ServiceError) as exc:
        raise PreflightError(f"{colour} is down: /ping {type(exc).__name__}") from None
    if ping != 200:
        raise PreflightError(f"{colour} is unhealthy: /ping HTTP {ping}")
    client = clients.management(stack, colour)
    for name in [model] if model else list(stack.models):
        versions = client.describe(name)
        if not versions:
            raise PreflightError(f"{colour} serves no version of {name}")
        for description in versions:
            if not Management.has_ready_worker(description):
                raise PreflightError(f"{colour} {name} {description.get('modelVersion')} has no ready worker")
        version = client.default_version(name)
        _, meta = archive_for(stack, name, version)
        clients.smoke(url, meta["golden_set"], colour, version, rule_of(meta))


def _verify_production(stack: Stack, colour: str, model: str, attempts: int = 20, *, clients: Clients = LIVE) -> None:
    version = clients.management(stack, colour).default_version(model)
    _, meta = archive_for(stack, model, version)
    row = meta["golden_set"][:1]
    for _ in range(attempts):
        clients.smoke(route(stack, model), row, colour, version, rule_of(meta))


def switch_to(stack: Stack, target: str, model: str | None = None, *, clients: Clients = LIVE) -> str:
    """Make `target` `model`'s production colour (default: the default model's) after a preflight;
    returns the previous colour.

    A failure after the state file was written (Nginx refused the flip, the
    check through /predict/<model> failed, an interrupt) puts `previous` back in
    both places; a TwinserveError then says whether that worked.
    """
    model = stack.model(model)
    previous = read_production(stack, model)
    if target == previous:
        raise PreflightError(f"{target} is already production of {model}")
    preflight(stack, target, route(stack, model, staging=True), model, clients=clients)
    write_production(stack, target, model)
    try:
        clients.switch.set_production(stack, target, model)
        _verify_production(stack, target, model, clients=clients)
    except BaseException as exc:  # an interrupt too (Ctrl-C, Jenkins' abort): never leave a half switch
        write_production(stack, previous, model)
        try:
            clients.switch.set_production(stack, previous, model)
            restored = f"{model}'s production is {previous} again"
        except ServiceError as again:
            restored = (
                f"the state file says {previous} again for {model}, but nginx was not switched back ({again}): "
                "run `make up`"
            )
        if isinstance(exc, TwinserveError):
            raise type(exc)(f"{exc}; {restored}") from exc
        raise
    return previous


def swap(stack: Stack, model: str | None = None, *, clients: Clients = LIVE) -> str:
    """Promote `model`'s staging colour to production (default: the default model's)."""
    model = stack.model(model)
    target = stack.other(read_production(stack, model))
    switch_to(stack, target, model, clients=clients)
    return f"{model}: production is {target.upper()} (was {stack.other(target).upper()})"


def rollback(stack: Stack, model: str | None = None, *, clients: Clients = LIVE) -> str:
    """Return `model`'s production to its previous colour (the one now on staging)."""
    return swap(stack, model, clients=clients)
