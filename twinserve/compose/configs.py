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
from twinserve.settings import REPO_ROOT, Stack, _section, load_stack, read_raw

COMPOSE_STACK = REPO_ROOT / "config" / "stack.compose.yaml"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
RENDERED_DIR = REPO_ROOT / "compose" / "rendered"
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


def load(path: Path = COMPOSE_STACK) -> tuple[Stack, ComposeSettings]:
    """The compose stack and its compose-only settings; the latter must not reuse a stack port."""
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


def nginx_conf(stack: Stack, root: Path = REPO_ROOT) -> str:
    """The native template's rendering, with the repository's nginx/ folder where the image has it."""
    # Only the path itself, not the same letters inside another one (/var/lib/twinserve/nginx).
    return re.sub(rf"(?<![\w./-]){re.escape(str(root / 'nginx'))}(?=/|\b)", NGINX_DIR, render_nginx(stack))


def rendered(stack: Stack, compose: ComposeSettings, source: Path = COMPOSE_STACK) -> dict[str, str]:
    """{file name in compose/rendered/: text}."""
    header = HEADER.format(source=source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source)
    hosts = prometheus_hosts(stack, compose)
    return {
        "nginx.conf": header + nginx_conf(stack),
        "prometheus.yml": header + render_prometheus(stack, rules_dir=compose.prometheus_rules, hosts=hosts),
        "alertmanager.yml": header + render_alertmanager(stack, host=compose.hosts["alert_receiver"]),
    }


def write_rendered(target: Path = RENDERED_DIR) -> str:
    """Render into compose/rendered/; says which files changed."""
    stack, compose = load()
    target.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in rendered(stack, compose).items():
        path = target / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return f"{target}: {'rewrote ' + ', '.join(changed) if changed else 'up to date'}"
