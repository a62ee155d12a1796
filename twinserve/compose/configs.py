"""The compose stack's description and the files rendered from it.

Nginx, Prometheus and Alertmanager run from images without Python, so their
configuration cannot be rendered at container start as `make up` does. It is
rendered here instead, with the same templates and from the same stack
description (config/stack.compose.yaml extends config/stack.yaml), into
compose/rendered/, which is committed; the Nginx image copies nginx.conf with
the repository's nginx/ folder (at NGINX_DIR), the other two are mounted. A
unit test fails when those files fall behind the templates or the description.

    python -m twinserve render-compose
"""

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from twinserve.errors import ConfigError
from twinserve.runtime.render import PROMETHEUS_TARGETS, render_alertmanager, render_nginx, render_prometheus
from twinserve.settings import Stack, _section, load_stack, project_dir, read_raw

# In the project directory (settings.project_dir).
COMPOSE_STACK = Path("config", "stack.compose.yaml")
COMPOSE_FILE = Path("docker-compose.yml")
RENDERED_DIR = Path("compose", "rendered")
HEADER = "# Rendered by `python -m twinserve render-compose` from {source}; do not edit.\n"
NGINX_DIR = "/etc/twinserve/nginx"  # where compose/nginx/Dockerfile copies the repository's nginx/


@dataclass(frozen=True)
class ComposeSettings:
    publish_address: str
    grafana_port: int
    kafka_controller_port: int
    prometheus_rules: str
    networks: dict[str, str] = field(default_factory=dict)  # {name: subnet}
    admin_networks: tuple[str, ...] = ()  # the networks whose containers may use Nginx's admin server
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def ports(self) -> list[int]:
        return [self.grafana_port, self.kafka_controller_port]


def load(path: Path | None = None) -> tuple[Stack, ComposeSettings]:
    """The compose stack (default: the project's config/stack.compose.yaml) and its compose-only settings;
    the latter must not reuse a stack port."""
    path = path or project_dir() / COMPOSE_STACK
    stack = load_stack(path)
    compose = _section(ComposeSettings, read_raw(path).get("compose"), f"{path}: compose")
    needed = {*PROMETHEUS_TARGETS, "alert_receiver"} - {"nginx", "prometheus"}  # those two: the stack's hosts
    if needed - set(compose.hosts):
        raise ConfigError(f"{path}: compose.hosts misses {sorted(needed - set(compose.hosts))}")
    taken = set(stack.ports) & set(compose.ports)
    if taken:
        raise ConfigError(f"{path}: compose port {sorted(taken)} is already a stack port")
    try:
        subnets = {name: ipaddress.ip_network(net) for name, net in compose.networks.items()}
    except ValueError as exc:
        raise ConfigError(f"{path}: compose.networks: {exc}") from None
    if {"serving", "control", "monitoring"} - set(subnets) or set(compose.admin_networks) - set(subnets):
        raise ConfigError(f"{path}: compose.networks needs serving, control, monitoring and the admin_networks")
    allow = tuple(compose.networks[n] for n in compose.admin_networks)
    return dataclasses.replace(stack, nginx=dataclasses.replace(stack.nginx, admin_allow=allow)), compose


def prometheus_hosts(stack: Stack, compose: ComposeSettings) -> dict[str, str]:
    return {
        **{c: stack.colour_host(c) for c in stack.colours}, "nginx": stack.nginx.host,
        "prometheus": stack.monitoring.prometheus_host, **compose.hosts,
    }  # fmt: skip


def nginx_conf(stack: Stack, root: Path | None = None) -> str:
    """The native template's rendering, with the project's nginx/ folder (`root`: the project's) where the
    image has it."""
    root = stack.project if root is None else root
    # Only the path itself, not the same letters inside another one (/var/lib/twinserve/nginx).
    return re.sub(rf"(?<![\w./-]){re.escape(str(root / 'nginx'))}(?=/|\b)", NGINX_DIR, render_nginx(stack))


def rendered(stack: Stack, compose: ComposeSettings, source: Path = COMPOSE_STACK) -> dict[str, str]:
    """{file name in compose/rendered/: text}; `source` is named relative to the project if it is inside it."""
    source = stack.project / source
    header = HEADER.format(source=source.relative_to(stack.project) if source.is_relative_to(stack.project) else source)
    hosts = prometheus_hosts(stack, compose)
    return {
        "nginx.conf": header + nginx_conf(stack),
        "prometheus.yml": header + render_prometheus(stack, rules_dir=compose.prometheus_rules, hosts=hosts),
        "alertmanager.yml": header + render_alertmanager(stack, host=compose.hosts["alert_receiver"]),
    }


def write_rendered(target: Path | None = None) -> str:
    """Render into the project's compose/rendered/; says which files changed."""
    stack, compose = load()
    target = target or stack.project / RENDERED_DIR
    target.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in rendered(stack, compose).items():
        path = target / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return f"{target}: {'rewrote ' + ', '.join(changed) if changed else 'up to date'}"
