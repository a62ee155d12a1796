"""Log rotation for the native stack: Debian's logrotate, run by the supervisor.

Every log under var/ is rotated once it passes `supervisor.log_max_mb`, and at
most `supervisor.log_keep` gzipped copies are kept, so a log never holds more
than about (keep + 1) x the size (plus what is written between two runs).

All are copied and truncated (copytruncate): every process writes its log in
append mode, so after the truncation it goes on at the new end. Nginx's own
logs too: `nginx -s reopen` makes its workers reopen them, and they run as
`nobody`, who cannot reach var/ when the checkout sits under a private
directory (/root, pytest's temporary folders) — Nginx then kept writing into
the deleted file, rotated on disk for ever. The price of copytruncate is the
lines written between the copy and the truncation (milliseconds); Nginx's
metrics do not come from its logs.

TorchServe's own logs roll by themselves (config/torchserve/log4j2.xml) at the
same bound; they are not listed here.
"""

import subprocess

from twinserve.errors import ServiceError
from twinserve.settings import Stack

# Logs Nginx writes itself (the template's error_log and access_log lines).
NGINX_LOGS = ("access_*.log", "error.log")


def config_file(stack: Stack):
    return stack.var_dir / "logrotate" / "logrotate.conf"


def state_file(stack: Stack):
    return stack.var_dir / "logrotate" / "status"


def stdout_logs(stack: Stack, names: list[str]) -> list[str]:
    """The stdout logs the stack opens: var/logs/<name>.log per process, var/<colour>/logs/stdout.log."""
    logs = [str(stack.var_dir / "logs" / f"{name}.log") for name in names if not name.startswith("torchserve-")]
    logs.append(str(stack.var_dir / "logs" / "nginx-stdout.log"))
    logs += [str(stack.colour_dir(colour) / "logs" / "stdout.log") for colour in stack.colours]
    return logs


def logs(stack: Stack, names: list[str]) -> list[str]:
    """Every log the stack writes outside TorchServe: var/logs/<name>.log per process
    (Nginx's own: access_*.log, error.log, its stdout), var/<colour>/logs/stdout.log."""
    found = [str(stack.var_dir / "logs" / name) for name in NGINX_LOGS]
    return found + stdout_logs(stack, [n for n in names if n != "nginx"])


def render(stack: Stack, names: list[str]) -> str:
    """logrotate.conf for the stack; pure.

    Args:
        names: the stack's processes (each writes var/logs/<name>.log).
    """
    s = stack.supervisor
    return "\n".join(
        [
            "# Rendered by twinserve from the stack description (twinserve/runtime/logrotate.py);"
            " run by the supervisor.",
            f"{' '.join(logs(stack, names))} {{",
            f"    size {s.log_max_mb}M",
            f"    rotate {s.log_keep}",
            "    compress",
            "    copytruncate",
            "    missingok",
            "    notifempty",
            "    nomail",
            "}",
            "",
        ]
    )


def write_config(stack: Stack, names: list[str]):
    path = config_file(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(stack, names))
    return path


def rotate(stack: Stack) -> None:
    """Run logrotate once over the rendered config (it rotates only what passed the size)."""
    done = subprocess.run(
        ["logrotate", "--state", str(state_file(stack)), str(config_file(stack))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise ServiceError(f"logrotate failed: {(done.stderr.strip().splitlines() or ['no message'])[-1]}")
