"""The native stack's supervisor: restarts a process of the stack that died, rotates logs.

    twinserve serve supervisor     # started by `twinserve up`, stopped first by `twinserve down`

Systemd is not the init system on these machines, so the stack supervises
itself. Every `check_seconds` it looks at each part (stack.parts): a pid file
whose process is gone means a crash (a deliberate stop removes the pid file
first), so it kills what the dead process left in its session (workers still
holding its ports) and starts it again exactly as `make up` does — a TorchServe
colour with the archives the state says it serves. Each restart is counted in
var/run/restarts.json, which the exporter serves as
twinserve_process_restarts_total{process}.

A crash loop backs off: the first crash is restarted at once, a crash within
`stable_seconds` of the previous restart waits 1 s, then 2, 4 ... up to
`backoff_max_seconds`. Every `rotate_every_seconds` it runs logrotate
(twinserve/runtime/logrotate.py). If the supervisor itself dies, `make up` starts it
again, and `make status` shows it.
"""

import contextlib
import os
import time
from datetime import UTC, datetime

from kafka.errors import KafkaError

from twinserve.errors import TwinserveError
from twinserve.runtime import logrotate, nginx, processes, torchserve
from twinserve.runtime.broker_retention import BROKER, BrokerRetention
from twinserve.runtime.stack import SUPERVISOR, parts
from twinserve.settings import Stack


class Backoff:
    """When to restart a process that died, given how soon after its last restart it died."""

    def __init__(self, stable_seconds: float, max_delay: float):
        self.stable_seconds = stable_seconds
        self.max_delay = max_delay
        self.quick_crashes = 0
        self.last_restart: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait before restarting a process found dead at `now` (call once per death)."""
        quick = self.last_restart is not None and now - self.last_restart < self.stable_seconds
        self.quick_crashes = self.quick_crashes + 1 if quick else 0
        return 0.0 if not self.quick_crashes else min(2.0 ** (self.quick_crashes - 1), self.max_delay)

    def restarted(self, now: float) -> None:
        self.last_restart = now


def log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)


class Supervisor:
    def __init__(self, stack: Stack, clock=time.monotonic):
        self.stack = stack
        self.clock = clock
        self.parts = {part.name: part for part in parts(stack)}
        cfg = stack.supervisor
        self.backoff = {name: Backoff(cfg.stable_seconds, cfg.backoff_max_seconds) for name in self.parts}
        self.due: dict[str, float] = {}  # process found dead -> when it will be restarted
        self.colours = {torchserve.process_name(c): c for c in stack.colours}
        self.keys_pending: set[str] = set()  # restarted colours whose new inference key Nginx lacks
        self.retention = BrokerRetention(stack, self.parts[BROKER].start, log)

    def check(self) -> list[str]:
        """One pass: restart every crashed part whose backoff is over; returns what it restarted."""
        _reap_children()
        restarted = []
        for name, part in self.parts.items():
            with processes.locked(self.stack):
                if not processes.crashed(self.stack, name):
                    self.due.pop(name, None)
                    continue
                now = self.clock()
                if name not in self.due:
                    self.due[name] = now + self.backoff[name].delay(now)
                    wait = self.due[name] - now
                    log(f"{name} died" + (f"; restarting in {wait:.0f}s (crash loop)" if wait else "; restarting"))
                if now < self.due[name]:
                    continue
                processes.kill_remnants(self.stack, name)
                self.backoff[name].restarted(now)
                del self.due[name]
                try:
                    pid = part.start()
                except (TwinserveError, OSError) as exc:
                    log(f"{name} did not start: {exc}")  # its pid file still names the dead pid: retried
                    continue
                count = processes.count_restart(self.stack, name)
                log(f"{name} restarted, pid {pid} (restart {count})")
                restarted.append(name)
                if name in self.colours:
                    self.keys_pending.add(self.colours[name])
        self.publish_keys()
        return restarted

    def publish_keys(self) -> None:
        """A restarted colour has new TorchServe keys: hand Nginx the inference key once it is written.

        Until then Nginx answers that colour's requests with a JSON 503 and Retry-After.
        """
        if not self.keys_pending or not all(self.stack.key_file(c).is_file() for c in self.keys_pending):
            return
        try:
            nginx.publish_keys(self.stack)
        except (TwinserveError, OSError) as exc:
            log(f"inference keys of {', '.join(sorted(self.keys_pending))} not yet published: {exc}")
            return
        log(f"published the new inference keys of {', '.join(sorted(self.keys_pending))} to nginx")
        self.keys_pending.clear()

    def rotate_logs(self) -> None:
        """Logs past their bound, and the broker past its (twinserve/runtime/broker_retention.py)."""
        try:
            logrotate.rotate(self.stack)
        except (TwinserveError, OSError, TimeoutError) as exc:
            log(str(exc))
        try:
            self.retention.check()
        except (TwinserveError, OSError, KafkaError) as exc:
            log(f"broker recycle failed: {exc}")  # a broker left stopped is restarted by check()

    def run(self) -> None:
        cfg = self.stack.supervisor
        logrotate.write_config(self.stack, [*self.parts, SUPERVISOR])
        log(f"supervising {', '.join(self.parts)}; logs rotated past {cfg.log_max_mb} MB, {cfg.log_keep} kept")
        next_rotation = self.clock()
        while True:
            self.check()
            if self.clock() >= next_rotation:
                self.rotate_logs()
                next_rotation = self.clock() + cfg.rotate_every_seconds
            time.sleep(cfg.check_seconds)


def _reap_children() -> None:
    """What the supervisor restarted is its child: collect the exit status of those that died."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
