"""make up / make down: the native stack (both TorchServe colours, Nginx, monitoring)."""

import shutil

from kafka.errors import KafkaError

from twinserve import monitoring, nginx, processes, torchserve
from twinserve.drift.topic import ensure_topic
from twinserve.errors import ConfigError, TwinserveError
from twinserve.models import archive_for, ensure_archive
from twinserve.settings import Stack
from twinserve.state import initialise, read_deployments, read_production


def _check_prerequisites(stack: Stack) -> None:
    for tool in ("java", *(s.argv[0] for s in monitoring.services(stack) if not s.argv[0].startswith("/"))):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} not found; run `make up` (it installs the Debian packages)")
    for module in ("ndk_http_module.so", "ngx_http_lua_module.so"):
        if not (stack.nginx.modules_dir / module).is_file():
            raise ConfigError(f"{stack.nginx.modules_dir / module} missing; install libnginx-mod-http-lua")
    if not torchserve.TORCHSERVE_BIN.is_file():
        raise ConfigError(f"{torchserve.TORCHSERVE_BIN} missing; run `make up` (it installs the .venv)")


def up(stack: Stack) -> list[str]:
    """Start whatever part of the stack is not running; returns what it started.

    Builds the initial archives if missing. If any part fails to start, the
    parts this call started are stopped again.
    """
    _check_prerequisites(stack)
    initialise(stack)  # a new state dir: the first colour; any stack: the admin token
    production = read_production(stack)  # a corrupt state file stops here, with the fix
    for spec in stack.models.values():
        ensure_archive(stack, spec.dir, spec.version)
    deployments = read_deployments(stack)
    started: list[str] = []
    try:
        for colour in stack.colours:
            if processes.running_pid(stack, torchserve.process_name(colour)):
                continue
            archives = {}
            for model, version in deployments[colour].items():
                path, meta = archive_for(stack, model, version)
                archives[model] = torchserve.stage_archive(stack, colour, path, meta["sha256"]).name
            torchserve.start(stack, colour, archives)
            started.append(torchserve.process_name(colour))
        if not processes.running_pid(stack, nginx.PROCESS):
            nginx.start(stack)
            started.append(nginx.PROCESS)
        monitoring.write_configs(stack)
        for service in monitoring.services(stack):
            if not processes.running_pid(stack, service.name):
                monitoring.start(stack, service)
                started.append(service.name)
        for colour in stack.colours:
            torchserve.wait_ready(stack, colour, list(deployments[colour]))
        nginx.wait_ready(stack)
        if nginx.get_production(stack) != production:  # a new Nginx with no valid state file, or a stale one
            nginx.set_production(stack, production)
        nginx.publish_keys(stack)  # TorchServe's inference keys change at every start
        for service in monitoring.services(stack):
            alive = lambda name=service.name: processes.running_pid(stack, name) is not None  # noqa: E731
            processes.wait_ready(service.ready_url, 60, alive=alive)
        ensure_topic(stack.drift.bootstrap, stack.drift.topic)
    except (TwinserveError, OSError, KafkaError):
        for name in reversed(started):
            processes.stop(stack, name)
        raise
    return started


def down(stack: Stack) -> list[str]:
    """Stop what up started; returns what was running."""
    stopped = []
    for service in reversed(monitoring.services(stack)):
        if processes.stop(stack, service.name):
            stopped.append(service.name)
    if nginx.stop(stack):
        stopped.append(nginx.PROCESS)
    for colour in stack.colours:
        if torchserve.stop(stack, colour):
            stopped.append(torchserve.process_name(colour))
    return stopped


def status(stack: Stack) -> list[str]:
    """One line per process, then the production colour and the deployed versions."""
    lines = []
    names = [torchserve.process_name(c) for c in stack.colours] + [nginx.PROCESS]
    names += [s.name for s in monitoring.services(stack)]
    for name in names:
        pid = processes.running_pid(stack, name)
        lines.append(f"{name:18} {'running pid ' + str(pid) if pid else 'stopped'}")
    production = read_production(stack)
    for colour, models in read_deployments(stack).items():
        role = "production" if colour == production else "staging"
        versions = ", ".join(f"{m} {v}" for m, v in models.items())
        lines.append(f"{colour:6} {role:10} {versions}")
    return lines


def urls(stack: Stack) -> list[str]:
    base = stack.nginx.url
    return [
        f"production  POST {base}/predict",
        f"staging     POST {base}/test/predict",
        f"health      GET  {base}/healthz",
        f"prometheus       http://127.0.0.1:{stack.monitoring.prometheus_port}",
        f"alertmanager     http://127.0.0.1:{stack.monitoring.alertmanager_port}",
        f"alerts received  http://127.0.0.1:{stack.monitoring.alert_receiver_port}/alerts",
    ]
