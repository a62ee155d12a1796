"""State that outlives every process: which colour is production, which
archive each colour serves, and the admin token of the production switch.
Plain files in the stack's state_dir, each written atomically (temp file +
rename) so a reader never sees half a write.

Each model has its own production colour, in state_dir/production.<model>,
validated on every read: a file that is missing, unreadable, not UTF-8 or
names no known colour is an error for that model only, naming the file and
the fix, never a default. Only a brand-new state dir (or a model no deploy has
touched yet) gets a first colour, written by `make up` (initialise). The one
file of a stack from before several models (state_dir/production) is no longer
read: while it is there every read of a colour and `make up` refuse, saying
what it is and what to do, and change nothing (retired_file_check).
"""

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from pathlib import Path

from twinserve.errors import ConfigError, PreflightError
from twinserve.routes import route_for
from twinserve.settings import Stack


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` in one rename; `mode` is set before any byte is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)  # 0644 by default: the stack's other processes (and containers) read it
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def production_file(stack: Stack, model: str | None = None) -> Path:
    """state_dir/production.<model>: one colour per model (default: the stack's default model)."""
    return stack.state_dir / f"production.{stack.model(model)}"


def retired_production_file(stack: Stack) -> Path:
    """state_dir/production: the one colour of a stack from before there were several models (retired)."""
    return stack.state_dir / "production"


def retired_file_check(stack: Stack) -> None:
    """Refuse a state dir that still holds the retired single-model file: a ConfigError saying what it
    is and what to do. Why refuse rather than ignore it: that file may name the colour the default
    model really serves, and guessing (either colour) could send its traffic to the wrong one."""
    old = retired_production_file(stack)
    if old.exists():
        own = production_file(stack)
        raise ConfigError(
            f"{old} is the single-model state file of an older twinserve, no longer read; "
            f"move it to {own} (`mv {old} {own}`), or delete it if {own.name} is already right, then retry"
        )


def _fix(stack: Stack, model: str) -> str:
    return (
        f"write the colour that should serve {route_for(model)} ({' or '.join(stack.colour_names)}) into it, "
        "then `make up`"
    )


def read_production(stack: Stack, model: str | None = None) -> str:
    """`model`'s production colour (default: the default model's), validated: any problem is a
    ConfigError naming the file and the fix. Another model's file never counts."""
    model = stack.model(model)
    retired_file_check(stack)
    path = production_file(stack, model)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if is_new(stack):
            raise ConfigError(f"{path} does not exist yet: the stack was never set up; run `make up`") from None
        raise ConfigError(f"{path} is missing; {_fix(stack, model)}") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}); {_fix(stack, model)}") from None
    try:
        colour = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; {_fix(stack, model)}") from None
    if colour not in stack.colours:
        shown = colour if len(colour) <= 32 else colour[:32] + "..."
        raise ConfigError(f"{path} says {shown!r}, not a colour of this stack; {_fix(stack, model)}")
    return colour


def read_productions(stack: Stack) -> dict[str, str | ConfigError]:
    """{model: its production colour, or the ConfigError that says why it has none}, in the stack's order."""
    found: dict[str, str | ConfigError] = {}
    for model in stack.models:
        try:
            found[model] = read_production(stack, model)
        except ConfigError as exc:
            found[model] = exc
    return found


def write_production(stack: Stack, colour: str, model: str | None = None) -> None:
    """Make `colour` `model`'s production colour on disk (one rename)."""
    model = stack.model(model)
    if colour not in stack.colours:
        raise ConfigError(f"unknown colour {colour!r}; expected one of {stack.colour_names}")
    write_atomic(production_file(stack, model), colour + "\n")


def is_new(stack: Stack) -> bool:
    """True if nothing was ever written to the state dir: a brand-new install."""
    if not stack.state_dir.is_dir():
        return True
    return not any(not p.name.startswith(".") for p in stack.state_dir.iterdir())  # a stray .lock is not state


def _never_deployed(stack: Stack) -> set[str]:
    """Models no deploy ever recorded: both colours serve the version in the stack description."""
    saved = _saved_deployments(stack)
    return {m for m in stack.models if not any(m in (saved.get(c) or {}) for c in stack.colours)}


def initialise(stack: Stack) -> list[str]:
    """What `make up` does first; returns the files it wrote.

    A new state dir gets the first colour as every model's production. In a state dir
    already set up, a model added to the stack since, which no deploy has touched (both
    colours serve its stack version), gets the first colour. A state dir holding the retired
    single-model file is refused before anything is written (retired_file_check). A model that
    was deployed and lost its file is never given a colour: that is an error for a human to
    resolve (read_production).
    Every stack gets its admin token if it has none.
    """
    retired_file_check(stack)
    written = []
    new = is_new(stack)
    fresh = set(stack.models) if new else _never_deployed(stack)
    for model in stack.models:
        if model in fresh and not production_file(stack, model).exists():
            write_production(stack, stack.colour_names[0], model)
            written.append(str(production_file(stack, model)))
    if not admin_token_file(stack).exists():
        write_atomic(admin_token_file(stack), secrets.token_urlsafe(32) + "\n", mode=0o600)
        written.append(str(admin_token_file(stack)))
    return written


def admin_token_file(stack: Stack) -> Path:
    """The production switch's token: read by Nginx's master (root) at start and by the control plane."""
    return stack.state_dir / "admin-token"


def read_admin_token(stack: Stack) -> str:
    path = admin_token_file(stack)
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; run `make up` (it creates it), then restart Nginx") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({type(exc).__name__}); run as the stack's user (root)") from None
    if not token or not all(ch.isalnum() or ch in "-_" for ch in token):
        raise ConfigError(f"{path} holds no valid token; delete it, run `make up` and restart Nginx")
    return token


def deployments_file(stack: Stack) -> Path:
    return stack.state_dir / "deployments.json"


def _saved_deployments(stack: Stack) -> dict[str, dict[str, str]]:
    try:
        return json.loads(deployments_file(stack).read_text())
    except FileNotFoundError:
        return {}


def read_deployments(stack: Stack) -> dict[str, dict[str, str]]:
    """{colour: {model name: version}}; each colour starts with the stack's versions."""
    initial = {m.name: m.version for m in stack.models.values()}
    saved = _saved_deployments(stack)
    return {colour: {**initial, **saved.get(colour, {})} for colour in stack.colours}


def record_deployment(stack: Stack, colour: str, model: str, version: str) -> None:
    """Record what a deploy put on `colour`; only deployed models are saved (the rest serve the stack's version)."""
    saved = _saved_deployments(stack)
    saved.setdefault(colour, {})[model] = version
    write_atomic(deployments_file(stack), json.dumps(saved, indent=2, sort_keys=True) + "\n")


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
