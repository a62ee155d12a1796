"""Entry points of the twinserve image's containers (docker-compose.yml).

`make up` starts these as background processes on loopback; a container runs
one of them in the foreground instead, listening on all its interfaces: the
compose network is the boundary, and only what docker-compose.yml publishes
leaves it. Everything else (the stack description, staging archives, the
TorchServe configuration, the collectors) is the native stack's own code.

    python -m twinserve.container archives              # build the stack's initial archives if missing
    python -m twinserve.container torchserve [colour]   # default: $TWINSERVE_COLOUR
    python -m twinserve.container exporter | alert-receiver | drift-consumer
    python -m twinserve.container health <service> [colour] | health stack   # compose healthchecks
"""

import os
import sys
import urllib.request

from twinserve.errors import ConfigError, TwinserveError
from twinserve.settings import Stack, load_stack

LISTEN = "0.0.0.0"
SERVICES = ("torchserve", "exporter", "alert-receiver", "drift-consumer")
ONE_SHOTS = ("archives",)


def ready_url(stack: Stack, service: str, colour: str | None = None) -> str:
    """What the healthcheck of `service` asks, from inside its own container."""
    m = stack.monitoring
    urls = {
        "exporter": f"http://127.0.0.1:{m.exporter_port}/metrics",
        "alert-receiver": f"http://127.0.0.1:{m.alert_receiver_port}/healthz",
        "drift-consumer": f"http://127.0.0.1:{stack.drift.consumer_metrics_port}/metrics",
    }
    if service == "torchserve":
        return f"http://127.0.0.1:{stack.colours[_colour(stack, colour)].inference_port}/ping"
    if service not in urls:
        raise ConfigError(f"unknown service {service!r}; expected one of {list(SERVICES)}")
    return urls[service]


def _colour(stack: Stack, colour: str | None) -> str:
    colour = colour or os.environ.get("TWINSERVE_COLOUR", "")
    if colour not in stack.colours:
        raise ConfigError(f"colour {colour!r} (argument or $TWINSERVE_COLOUR); expected one of {stack.colour_names}")
    return colour


def torchserve_command(stack: Stack, colour: str, archives: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of TorchServe for `colour`: exactly what twinserve.torchserve.start runs natively."""
    from twinserve import torchserve

    return torchserve.command(stack, colour, archives)


def build_archives(stack: Stack) -> list[str]:
    """As `make up` does first: each model's initial version, archived (trained first) if missing."""
    from twinserve.models import ensure_archive

    return [ensure_archive(stack, spec.dir, spec.version).name for spec in stack.models.values()]


def run_torchserve(stack: Stack, colour: str) -> None:
    """Stage the versions the state says `colour` serves (sha256-checked), then become TorchServe."""
    from twinserve import torchserve
    from twinserve.models import archive_for
    from twinserve.state import read_deployments

    archives = {}
    for model, version in read_deployments(stack)[colour].items():
        path, meta = archive_for(stack, model, version)
        archives[model] = torchserve.stage_archive(stack, colour, path, meta["sha256"]).name
    argv, env = torchserve_command(stack, colour, archives)
    os.chdir(stack.colour_dir(colour))  # TorchServe writes its key_file.json here, as natively
    os.execve(argv[0], argv, {**os.environ, **env})


def run_exporter(stack: Stack) -> None:
    import time

    from prometheus_client import CollectorRegistry, start_http_server

    from twinserve.exporter import ControlPlaneCollector

    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(stack))
    start_http_server(stack.monitoring.exporter_port, addr=LISTEN, registry=registry)
    while True:
        time.sleep(3600)


def run_alert_receiver(stack: Stack) -> None:
    from http.server import ThreadingHTTPServer

    from twinserve.alert_receiver import alerts_file, make_handler

    server = ThreadingHTTPServer((LISTEN, stack.monitoring.alert_receiver_port), make_handler(alerts_file(stack)))
    server.serve_forever()


def run_drift_consumer(stack: Stack) -> None:
    """As twinserve.drift's main, with its metrics on all interfaces."""
    import logging
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from twinserve.drift.consumer import ConsumerSettings, DriftConsumer

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    registry = CollectorRegistry()
    consumer = DriftConsumer(ConsumerSettings.from_stack(stack), registry)
    start_http_server(stack.drift.consumer_metrics_port, addr=LISTEN, registry=registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    consumer.run(stop)


def healthy(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        stack = load_stack()
        match args:
            case ["health", "stack"]:  # one-shot containers: the description loads
                return 0
            case ["health", "torchserve", *colour]:  # /ping needs the colour's inference key
                from twinserve.torchserve import authorization

                name = _colour(stack, colour[0] if colour else None)
                try:
                    key = authorization(stack, name, "inference")
                except TwinserveError:
                    return 1
                return 0 if healthy(ready_url(stack, "torchserve", name), key) else 1
            case ["health", service, *colour]:
                return 0 if healthy(ready_url(stack, service, *colour[:1])) else 1
            case ["archives"]:
                from twinserve.state import initialise

                print(f"archives: {', '.join(build_archives(stack))}")
                print(f"state: {', '.join(initialise(stack)) or 'set up already'}")  # before Nginx reads it
            case ["torchserve", *colour]:
                run_torchserve(stack, _colour(stack, colour[0] if colour else None))
            case ["exporter"]:
                run_exporter(stack)
            case ["alert-receiver"]:
                run_alert_receiver(stack)
            case ["drift-consumer"]:
                run_drift_consumer(stack)
            case _:
                raise ConfigError(f"expected one of {[*SERVICES, *ONE_SHOTS]} or health <service>, got {args}")
    except TwinserveError as exc:
        print(f"twinserve.container: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
