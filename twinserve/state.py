"""State that outlives every process: which colour is production, and which
archive each colour serves. Plain files in the stack's state_dir, each written
atomically (temp file + rename) so a reader never sees half a write."""

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from twinserve.errors import ConfigError, PreflightError
from twinserve.settings import Stack


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; the stack's other processes (and containers) read it
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def production_file(stack: Stack) -> Path:
    return stack.state_dir / "production"


def read_production(stack: Stack) -> str:
    """The production colour; the first colour on a new install."""
    path = production_file(stack)
    try:
        colour = path.read_text().strip()
    except FileNotFoundError:
        return stack.colour_names[0]
    if colour not in stack.colours:
        raise ConfigError(f"{path} says {colour!r}; expected one of {stack.colour_names}")
    return colour


def write_production(stack: Stack, colour: str) -> None:
    if colour not in stack.colours:
        raise ConfigError(f"unknown colour {colour!r}; expected one of {stack.colour_names}")
    write_atomic(production_file(stack), colour + "\n")


def deployments_file(stack: Stack) -> Path:
    return stack.state_dir / "deployments.json"


def read_deployments(stack: Stack) -> dict[str, dict[str, str]]:
    """{colour: {model name: version}}; each colour starts with the stack's versions."""
    initial = {m.name: m.version for m in stack.models.values()}
    try:
        saved = json.loads(deployments_file(stack).read_text())
    except FileNotFoundError:
        saved = {}
    return {colour: {**initial, **saved.get(colour, {})} for colour in stack.colours}


def record_deployment(stack: Stack, colour: str, model: str, version: str) -> None:
    deployments = read_deployments(stack)
    deployments[colour][model] = version
    write_atomic(deployments_file(stack), json.dumps(deployments, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def exclusive(stack: Stack, what: str):
    """One change to the stack at a time: deploy, swap, rollback and the pipeline's changing stages.

    A second command refuses at once (it does not queue behind the first: a
    queued swap would act on a production that changed under it). The lock is
    an flock on state_dir/.lock, released by the kernel if the holder dies.
    """
    path = stack.state_dir / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another command"
            raise PreflightError(f"{holder} is changing the stack; try again when it has finished") from None
        f.seek(0)
        f.truncate()
        f.write(f"{what} (pid {os.getpid()})")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)
