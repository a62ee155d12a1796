"""Log rotation for the native stack: Debian's logrotate, run by the supervisor.

Every log under var/ is rotated once it passes `supervisor.log_max_mb`, and at
most `supervisor.log_keep` gzipped copies are kept, so a log never holds more
than about (keep + 1) x the size (plus what is written between two runs).

- Nginx's own logs (access_*.log, error.log) are renamed, then Nginx is told to
  reopen them (`nginx -s reopen`): no line is lost or written twice.
- The other processes write to the stdout log the stack opened for them
  (processes.start, in append mode), which cannot be reopened: copytruncate.
- TorchServe's own logs roll by themselves (config/torchserve/log4j2.xml) at the
  same bound; they are not listed here.
"""

import shlex
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


def render(stack: Stack, names: list[str], reopen_nginx: list[str]) -> str:
    """logrotate.conf for the stack; pure.

    Args:
        names: the stack's processes (each writes var/logs/<name>.log), Nginx excluded.
        reopen_nginx: the command that makes Nginx reopen its logs.
    """
    s = stack.supervisor
    common = [
        f"    size {s.log_max_mb}M",
        f"    rotate {s.log_keep}",
        "    compress",
        "    missingok",
        "    notifempty",
        "    nomail",
    ]
    nginx_logs = " ".join(str(stack.var_dir / "logs" / name) for name in NGINX_LOGS)
    lines = [
        "# Rendered by twinserve from the stack description (twinserve/logrotate.py); run by the supervisor.",
        f"{nginx_logs} {{",
        *common,
        "    sharedscripts",
        "    postrotate",
        f"        {shlex.join(reopen_nginx)} >/dev/null 2>&1 || true",
        "    endscript",
        "}",
        "",
        f"{' '.join(stdout_logs(stack, [n for n in names if n != 'nginx']))} {{",
        *common,
        "    copytruncate",
        "}",
        "",
    ]
    return "\n".join(lines)


def write_config(stack: Stack, names: list[str], reopen_nginx: list[str]):
    path = config_file(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(stack, names, reopen_nginx))
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
