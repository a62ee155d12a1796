"""What scripts/*.sh run: the one place that picks the native or the compose stack.

TWINSERVE_MODE=native (the default) runs `twinserve <verb>` with the checkout's
.venv (`.venv/bin/python -m twinserve <verb>`); TWINSERVE_MODE=compose runs the
same command in a one-off `control` container of the compose stack, whose
description (config/stack.compose.yaml) names the services. Either way the verb
is twinserve/cli/; this module only chooses where, so the shell scripts decide
nothing. Standard library only: the host needs no .venv to drive the compose stack.

    python3 -I twinserve/doorway.py <verb> [args...]     # e.g. swap; pipeline run ... (make pipeline)
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("native", "compose")
CONTROL_SERVICE = "control"
# Verbs whose first argument is a path; the control container's working directory is the repository.
PATH_ARGUMENT_VERBS = ("deploy",)


def container_path(arg: str, root: Path, cwd: Path) -> str:
    """`arg` relative to the repository if it names a path inside it, else unchanged."""
    path = (cwd / arg).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) and path.exists() else arg


def command(verb: str, args: list[str], mode: str, root: Path = ROOT, cwd: Path | None = None) -> list[str]:
    """The argv that runs `twinserve <verb> <args>` on the stack of `mode`."""
    twinserve = ["-m", "twinserve", verb]
    if mode == "native":
        return [str(root / ".venv" / "bin" / "python"), *twinserve, *args]
    if mode == "compose":
        if verb in PATH_ARGUMENT_VERBS and args:
            args = [container_path(args[0], root, cwd or Path.cwd()), *args[1:]]
        compose = ["docker-compose", "-f", str(root / "docker-compose.yml")]
        return [*compose, "run", "--rm", "-T", CONTROL_SERVICE, "python", *twinserve, *args]
    raise ValueError(f"TWINSERVE_MODE={mode!r}; expected one of {', '.join(MODES)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("twinserve: error: expected a verb (see `twinserve --help`)", file=sys.stderr)
        return 2
    try:
        cmd = command(argv[0], argv[1:], os.environ.get("TWINSERVE_MODE") or "native")
    except ValueError as exc:
        print(f"twinserve {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("TWINSERVE_HOME", str(ROOT))  # this checkout is the project (twinserve/settings.py)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        print(f"twinserve {argv[0]}: error: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
