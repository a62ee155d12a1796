"""Put a model version on the staging colour; production is never touched.

register (synchronously, with workers) -> make it the default -> golden-set
smoke through /test/predict -> retire the older versions on staging.
If registration or the smoke test fails, staging is put back as it was.
"""

from pathlib import Path

from twinserve import torchserve
from twinserve.errors import ConfigError, TwinserveError
from twinserve.models import archive_for, ensure_archive, next_version
from twinserve.settings import Stack
from twinserve.smoke import run_smoke
from twinserve.state import read_production, record_deployment
from twinserve.torchserve import Management


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


def deploy(stack: Stack, source: Path, version: str | None = None) -> str:
    """Deploy to staging; returns a one-line summary."""
    model, version = resolve(stack, source, version)
    path, meta = archive_for(stack, model, version)
    staging = stack.other(read_production(stack))
    client = Management(stack, staging)
    before = [d["modelVersion"] for d in client.describe(model)]
    old_default = client.default_version(model)
    staged = torchserve.stage_archive(stack, staging, path, meta["sha256"])
    if version not in before:
        try:
            client.register(model, staged.name, int(meta["torchserve"].get("minWorkers", 1)))
        except TwinserveError:
            if version not in [d["modelVersion"] for d in client.describe(model)]:
                staged.unlink(missing_ok=True)
            raise
    try:
        client.set_default(model, version)
        run_smoke(f"{stack.nginx.url}/test/predict", meta["golden_set"], staging, version)
    except TwinserveError:
        if old_default and old_default != version:
            client.set_default(model, old_default)
        if version not in before:
            client.unregister(model, version)
            staged.unlink(missing_ok=True)
        raise
    for old in before:
        if old != version:
            client.unregister(model, old)
    record_deployment(stack, staging, model, version)
    return f"{model} {version} is on {staging} (staging) and passed the smoke test; production untouched"
