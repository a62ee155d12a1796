"""Put a model version on the model's staging colour; production is never touched.

Each model has its own production colour, so its staging colour is the other
one: register (synchronously, with workers) -> make it the default -> golden-set
smoke through /test/predict/<model> -> retire the older versions on staging.
If registration or the smoke test fails, staging is put back as it was.
"""

from dataclasses import dataclass
from pathlib import Path

from twinserve.errors import ConfigError, TwinserveError
from twinserve.release.clients import LIVE, Clients
from twinserve.release.smoke import rule_of
from twinserve.routes import route_for
from twinserve.runtime import torchserve
from twinserve.settings import Stack
from twinserve.store.archives import archive_for, ensure_archive, next_version
from twinserve.store.state import read_production, record_deployment


def resolve(stack: Stack, source: Path, version: str | None) -> tuple[str, str]:
    """(model, version) for an archive in the model store or a model directory.

    A model directory is archived at `version` (default: the next minor
    version) unless that version is already archived. An archive must be in
    the local model store: nothing is loaded from anywhere else.
    """
    source = Path(source)
    if source.suffix == ".mar":
        if source.resolve().parent != stack.model_store.resolve():
            raise ConfigError(f"{source} is not in the model store {stack.model_store}; archives load only from there")
        if not source.is_file():
            raise ConfigError(f"{source} not found")
        from archiver.build import read_metadata

        meta = read_metadata(source)
        if version and version != meta["version"]:
            raise ConfigError(f"{source} is version {meta['version']}, not {version}")
        model, version = meta["model_name"], meta["version"]
    elif source.is_dir():
        model = source.resolve().name
        version = version or next_version(stack, model)
        ensure_archive(stack, source, version)
    else:
        raise ConfigError(f"{source} is neither a .mar archive nor a model directory")
    if model not in stack.models:
        raise ConfigError(f"model {model!r} is not in the stack description; expected one of {list(stack.models)}")
    return model, version


@dataclass(frozen=True)
class StagingChange:
    """What register_on_staging changed, so that it can be finished or undone (JSON-able: the
    pipeline keeps it in its run record between stages)."""

    colour: str
    model: str
    version: str
    staged: str  # the archive's path in the colour's own store
    before: list[str]  # versions the colour served before
    old_default: str | None
    newly_registered: bool


def register_on_staging(stack: Stack, model: str, version: str, *, clients: Clients = LIVE) -> StagingChange:
    """Register model:version on the staging colour (synchronously, with workers) and make it the default."""
    path, meta = archive_for(stack, model, version)
    staging = stack.other(read_production(stack, model))
    client = clients.management(stack, staging)
    before = [d["modelVersion"] for d in client.describe(model)]
    old_default = client.default_version(model)
    staged = torchserve.stage_archive(stack, staging, path, meta["sha256"])
    change = StagingChange(staging, model, version, str(staged), before, old_default, version not in before)
    if change.newly_registered:
        try:
            client.register(model, staged.name, int(meta["torchserve"].get("minWorkers", 1)))
        except TwinserveError:
            if version not in [d["modelVersion"] for d in client.describe(model)]:
                staged.unlink(missing_ok=True)
            raise
    try:
        client.set_default(model, version)
    except TwinserveError:
        undo(stack, change, clients=clients)
        raise
    return change


def smoke_staging(stack: Stack, change: StagingChange, *, clients: Clients = LIVE) -> int:
    """The version's golden set through the model's staging route, compared by its golden rule;
    returns how many requests matched."""
    _, meta = archive_for(stack, change.model, change.version)
    url = f"{stack.nginx.url}{route_for(change.model, staging=True)}"
    return clients.smoke(url, meta["golden_set"], change.colour, change.version, rule_of(meta))


def undo(stack: Stack, change: StagingChange, *, clients: Clients = LIVE) -> None:
    """Put staging back as it was before register_on_staging."""
    client = clients.management(stack, change.colour)
    if change.old_default and change.old_default != change.version:
        client.set_default(change.model, change.old_default)
    if change.newly_registered:
        client.unregister(change.model, change.version)
        Path(change.staged).unlink(missing_ok=True)


def finish(stack: Stack, change: StagingChange, *, clients: Clients = LIVE) -> None:
    """Retire the other versions on staging, record what it serves, prune its store."""
    client = clients.management(stack, change.colour)
    for old in change.before:
        if old != change.version:
            client.unregister(change.model, old)
    record_deployment(stack, change.colour, change.model, change.version)
    prune_store(stack.colour_store(change.colour), change.model, keep=Path(change.staged).name)


def prune_store(store: Path, model: str, keep: str) -> list[str]:
    """Delete the model's archives in a colour's store other than `keep`; returns their names.

    Each colour's store held every version ever staged on it (one copy per deploy). A
    colour needs only the archive it serves, to load at its next start; the version to
    roll back to is the one the other colour serves, in the other store, and every
    version stays in the model store, from which a deploy copies it again.
    """
    removed = []
    for path in sorted(store.glob(f"{model}-*.mar")):
        if path.name != keep and path.stem[len(model) + 1 :][:1].isdigit():  # not another model's "model-x-1.0"
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def deploy(
    stack: Stack, source: Path, version: str | None = None, model: str | None = None, *, clients: Clients = LIVE
) -> str:
    """Deploy to the model's staging colour; returns a one-line summary.

    Args:
        model: the model `source` must be (a check: the source's own name decides), if given.
    """
    resolved, version = resolve(stack, source, version)
    if model is not None and resolved != stack.model(model):
        raise ConfigError(f"{source} is model {resolved!r}, not {model!r}")
    model = resolved
    change = register_on_staging(stack, model, version, clients=clients)
    try:
        smoke_staging(stack, change, clients=clients)
    except TwinserveError:
        undo(stack, change, clients=clients)
        raise
    finish(stack, change, clients=clients)
    return f"{model} {version} is on {change.colour} (staging) and passed the smoke test; production untouched"
