"""make up / make down / make status: the native stack.

The stack's processes are its parts: the two TorchServe colours and Nginx
(serving: /predict depends on them) and the side services (broker, monitoring,
exporters, drift consumer), plus the supervisor that restarts any of them that
dies (twinserve/runtime/supervisor.py). `up` and the supervisor start a part the same
way, so a restarted colour loads the archives the state says it serves.

A side service that fails never costs serving: `up` reports it in one line and
exits non-zero, leaving Nginx and TorchServe as they are.
"""

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka.errors import KafkaError

from twinserve.drift.topic import ensure_topic
from twinserve.errors import ConfigError, ServiceError, TwinserveError
from twinserve.routes import route_for
from twinserve.runtime import monitoring, nginx, processes, torchserve
from twinserve.settings import Stack
from twinserve.store.archives import ensure_archive
from twinserve.store.state import initialise, read_deployments, read_production

# The supervisor's process name. It is named here, where `up` starts it, so that the supervisor
# imports this module (for the parts it watches) and this module never imports it: no cycle.
SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Part:
    """One process of the stack: how to start it and how to know it is ready."""

    name: str
    ports: tuple[int, ...]
    serving: bool  # TorchServe and Nginx: never stopped because a side service failed
    start: Callable[[], object]
    wait_ready: Callable[[], None]


def start_colour(stack: Stack, colour: str) -> int:
    """Start `colour`'s TorchServe with the archives the state says it serves (sha256-checked)."""
    return torchserve.start(stack, colour, torchserve.stage_served(stack, colour))


def parts(stack: Stack) -> list[Part]:
    """Every supervised process, in start order (colours, Nginx, then the side services)."""

    def colour_ready(colour):
        return lambda: torchserve.wait_ready(stack, colour, list(read_deployments(stack)[colour]))

    def service_ready(service):
        alive = lambda: processes.running_pid(stack, service.name) is not None  # noqa: E731
        return lambda: processes.wait_ready(service.ready_url, 60, alive=alive)

    found = [
        Part(torchserve.process_name(c), tuple(stack.colours[c].ports), True,
             lambda c=c: start_colour(stack, c), colour_ready(c))
        for c in stack.colours
    ]  # fmt: skip
    found.append(
        Part(nginx.PROCESS, (stack.nginx.port, stack.nginx.admin_port), True,
             lambda: nginx.start(stack), lambda: nginx.wait_ready(stack))
    )  # fmt: skip
    found += [
        Part(s.name, s.ports, False, lambda s=s: monitoring.start(stack, s), service_ready(s))
        for s in monitoring.services(stack)
    ]
    return found


def _check_prerequisites(stack: Stack) -> None:
    for tool in ("java", *(s.argv[0] for s in monitoring.services(stack) if not s.argv[0].startswith("/"))):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} not found; run `make up` (it installs the Debian packages)")
    for module in ("ndk_http_module.so", "ngx_http_lua_module.so"):
        if not (stack.nginx.modules_dir / module).is_file():
            raise ConfigError(f"{stack.nginx.modules_dir / module} missing; install libnginx-mod-http-lua")
    if shutil.which("logrotate") is None:
        raise ConfigError("logrotate not found; run `make up` (it installs the Debian packages)")


def check_ports(stack: Stack, missing: list[Part], settle_s: float = 5.0) -> None:
    """Refuse, naming the holder, if a process holds a port that a part about to start needs.

    A listening socket that no process owns is one being closed (a part just stopped, its
    socket not yet gone): it gets `settle_s` seconds to go before it counts as taken. CI
    once refused the exporter's port as "held by pytest" for such a socket: psutil gives no
    pid for it, and psutil.Process(None) is the calling process (processes.listeners)."""
    wanted = {port: part.name for part in missing for port in part.ports}
    deadline = time.monotonic() + settle_s
    taken = processes.listeners(wanted)
    while any(proc is None for proc in taken.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        taken = processes.listeners(wanted)
    for port, proc in sorted(taken.items()):
        who = processes.describe(proc) if proc else "a process this user cannot see"
        if proc and processes.belongs(stack, proc):
            fix = "it is left over from this stack: `make down` stops it"
        else:
            fix = "it is not this stack's: stop it, or give the stack another port in config/stack.yaml"
        raise ServiceError(f"port {port} ({wanted[port]}) is held by {who}; {fix}; nothing was started")


def up(stack: Stack) -> list[str]:
    """Start whatever part of the stack is not running, then the supervisor; returns what it started.

    Builds the initial archives if missing. If a serving part fails to start,
    the parts this call started are stopped again; if only side services fail,
    they are stopped and named, and serving is left alone.
    """
    _check_prerequisites(stack)
    initialise(stack)  # a new state dir: the first colour; any stack: the admin token
    productions = {m: read_production(stack, m) for m in stack.models}  # a corrupt state file stops here, with the fix
    every = parts(stack)
    missing = [p for p in every if not processes.running_pid(stack, p.name)]
    for part in missing:
        if processes.crashed(stack, part.name):
            processes.kill_remnants(stack, part.name)  # e.g. Nginx workers of a killed master, on its ports
    check_ports(stack, missing)
    for spec in stack.models.values():
        ensure_archive(stack, spec.dir, spec.version)
    started: list[str] = []
    serving = [p for p in every if p.serving]
    try:
        for part in serving:
            if part in missing and _start(stack, part):
                started.append(part.name)
        for part in serving:
            part.wait_ready()
        for model, production in productions.items():
            if nginx.get_production(stack, model) != production:  # a new Nginx with no valid state file, or a stale one
                nginx.set_production(stack, production, model)
        nginx.publish_keys(stack)  # TorchServe's inference keys change at every start
    except (TwinserveError, OSError):
        processes.stop_all(stack, started)
        raise
    failed = _start_side_services(stack, [p for p in missing if not p.serving], started)
    if not processes.running_pid(stack, SUPERVISOR):
        if processes.crashed(stack, SUPERVISOR):
            processes.count_restart(stack, SUPERVISOR)  # the supervisor itself died: `make up` restarts it
        start_supervisor(stack)
        started.append(SUPERVISOR)
    if failed:
        raise ServiceError(f"side service failed, serving left running: {'; '.join(failed)}")
    return started


def _start(stack: Stack, part: Part) -> bool:
    """Start `part` unless it runs (the supervisor may have just restarted it); True if started."""
    with processes.locked(stack):
        if processes.running_pid(stack, part.name):
            return False
        part.start()
        return True


def _start_side_services(stack: Stack, side: list[Part], started: list[str]) -> list[str]:
    """Start the side services; returns one phrase per failure (each failed one is stopped)."""
    failed: dict[str, str] = {}
    monitoring.write_configs(stack)
    launched = []
    for part in side:
        try:
            if _start(stack, part):
                launched.append(part)
        except (TwinserveError, OSError) as exc:
            failed[part.name] = str(exc)
    for part in launched:
        try:
            part.wait_ready()
            started.append(part.name)
        except TwinserveError as exc:
            failed[part.name] = str(exc)
            processes.stop(stack, part.name)
    if "broker" not in failed:
        try:
            ensure_topic(stack.drift.bootstrap, stack.drift.topic)
        except KafkaError as exc:
            failed["broker"] = f"topic {stack.drift.topic} not created ({type(exc).__name__}: is it still stopping?)"
    return [f"{name}: {why} (its log: {stack.var_dir / 'logs' / f'{name}.log'})" for name, why in failed.items()]


def start_supervisor(stack: Stack) -> int:
    """`twinserve serve supervisor` in the background, as `up` starts the control plane's other services."""
    log = stack.var_dir / "logs" / f"{SUPERVISOR}.log"
    env = {"TWINSERVE_STACK": str(stack.path)}
    return processes.start(stack, SUPERVISOR, monitoring.twinserve_argv("serve", SUPERVISOR), stack.var_dir, env, log)


def down(stack: Stack) -> list[str]:
    """Stop what up started, whatever died first, and what it left; returns what was running.

    The supervisor goes first (nothing is restarted behind our back); then every
    part at once: a signal to each, one wait for all.
    """
    stopped = [SUPERVISOR] if processes.stop(stack, SUPERVISOR) else []
    stopped += processes.stop_all(stack, [p.name for p in parts(stack)])
    orphans = processes.leftovers(stack, stack.ports)
    processes.terminate(orphans)
    return stopped + [f"leftover {processes.describe(p)}" for p in orphans]


def status(stack: Stack) -> list[str]:
    """One line per process, then the production colour and the deployed versions."""
    restarts = processes.read_restarts(stack)
    lines = []
    for name in [p.name for p in parts(stack)] + [SUPERVISOR]:
        pid = processes.running_pid(stack, name)
        if pid:
            state = f"running pid {pid}"
        elif processes.crashed(stack, name):
            restarter = "`make up`" if name == SUPERVISOR else "the supervisor"
            state = f"down: crashed, {restarter} restarts it"
        else:
            state = "stopped"
        count = restarts.get(name, 0)
        lines.append(f"{name:18} {state}" + (f" (restarted {count}x)" if count else ""))
    productions = {m: read_production(stack, m) for m in stack.models}  # a bad state file: its one-line error
    for colour, models in read_deployments(stack).items():
        roles = [f"{m} {v} ({'production' if productions[m] == colour else 'staging'})" for m, v in models.items()]
        lines.append(f"{colour:6} {', '.join(roles)}")
    return lines


def urls(stack: Stack) -> list[str]:
    base = stack.nginx.url
    return [
        f"production  POST {base}{route_for('<model>')}  ({', '.join(stack.models)}; {route_for()}: {stack.default})",
        f"staging     POST {base}{route_for('<model>', staging=True)}",
        f"health      GET  {base}/healthz",
        f"prometheus       http://127.0.0.1:{stack.monitoring.prometheus_port}",
        f"alertmanager     http://127.0.0.1:{stack.monitoring.alertmanager_port}",
        f"alerts received  http://127.0.0.1:{stack.monitoring.alert_receiver_port}/alerts",
    ]
