"""twinserve's own Prometheus exporter: what only the control plane knows.

Read at every scrape (nothing cached, nothing to drift): which colour is
production for each model (its state file), which model version each colour serves and how
many of its workers are ready (each colour's management API, on loopback),
and how many production input rows the workers published to the broker or dropped.
Natively also the supervision of the stack's processes: whether each runs and
how often the supervisor restarted it.

    twinserve serve exporter           # natively (make up): loopback, with the supervision metrics
    twinserve container exporter       # in compose: all interfaces, no process supervision (Docker's job)

Listens on monitoring.exporter_port.
"""

import json
import time
from collections.abc import Callable

import requests
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from twinserve.errors import ConfigError, ServiceError
from twinserve.runtime import broker_retention, processes
from twinserve.runtime.torchserve import Management, publisher_stats_dir
from twinserve.settings import Stack
from twinserve.store.state import read_productions


class ControlPlaneCollector:
    """The production colour, each colour's versions and ready workers, the publishers' counters.

    `management` makes a colour's management-API client (the real one by default;
    the unit tests pass a fake to take a colour down or change its versions).
    """

    def __init__(self, stack: Stack, management: Callable[..., Management] = Management):
        self.stack = stack
        self.management = management

    def collect(self):
        state_ok = GaugeMetricFamily(
            "twinserve_state_valid",
            "1 if the model's production state file is valid; 0: /predict/<model> answers 503, see the logs.",
            labels=["model"],
        )
        productions = read_productions(self.stack)
        for model, production in productions.items():
            if isinstance(production, ConfigError):  # the rest of the page still says what it can
                print(f"exporter: {production}", flush=True)
            state_ok.add_metric([model], 0.0 if isinstance(production, ConfigError) else 1.0)
        yield state_ok
        prod = GaugeMetricFamily(
            "twinserve_production", "1 for the colour /predict/<model> is routed to.", labels=["model", "colour"]
        )
        up = GaugeMetricFamily("twinserve_colour_up", "1 if the colour's management API answers.", labels=["colour"])
        info = GaugeMetricFamily(
            "twinserve_model_version_info", "The default version each colour serves.",
            labels=["colour", "role", "model", "version"],
        )  # fmt: skip
        workers = GaugeMetricFamily(
            "twinserve_ready_workers", "Workers in state READY.", labels=["colour", "model", "version"]
        )
        for colour in self.stack.colours:
            for model, production in productions.items():
                prod.add_metric([model, colour], 1.0 if colour == production else 0.0)
            client = self.management(self.stack, colour, timeout=2.0)
            try:
                for model, production in productions.items():
                    role = "production" if colour == production else "staging"
                    default = client.default_version(model)
                    for description in client.describe(model):
                        version = description["modelVersion"]
                        ready = sum(w.get("status") == "READY" for w in description.get("workers", []))
                        workers.add_metric([colour, model, version], ready)
                        if version == default:
                            info.add_metric([colour, role, model, version], 1.0)
                up.add_metric([colour], 1.0)
            except (ServiceError, requests.RequestException, ValueError, KeyError):
                up.add_metric([colour], 0.0)
        yield from (prod, up, info, workers)
        yield from self._publisher_counters()

    def _publisher_counters(self):
        """Sums of the input publishers' counters (handlers/input_publisher.py) per colour."""
        families = {
            key: CounterMetricFamily(f"twinserve_inputs_{key}", help_text, labels=["colour"])
            for key, help_text in (
                ("rows_sent", "Production input rows published to the broker."),
                ("rows_dropped", "Production input rows dropped: queue full or broker unavailable."),
                ("send_errors", "Failed sends to the broker."),
            )
        }
        for colour in self.stack.colours:
            totals = dict.fromkeys(families, 0)
            for path in publisher_stats_dir(self.stack, colour).glob("publisher-*.json"):
                try:
                    stats = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                for key in totals:
                    totals[key] += stats.get(key, 0)
            for key, family in families.items():
                family.add_metric([colour], totals[key])
        yield from families.values()


class SupervisionCollector:
    """The native stack's processes, from their pid files and the supervisor's restart record."""

    def __init__(self, stack: Stack):
        from twinserve.runtime.stack import SUPERVISOR, parts

        self.stack = stack
        self.names = [part.name for part in parts(stack)] + [SUPERVISOR]

    def collect(self):
        up = GaugeMetricFamily("twinserve_process_up", "1 if the stack's process runs.", labels=["process"])
        restarts = CounterMetricFamily(
            "twinserve_process_restarts", "Restarts by the supervisor after the process died.", labels=["process"]
        )
        counts = processes.read_restarts(self.stack)
        for name in self.names:
            up.add_metric([name], 1.0 if processes.running_pid(self.stack, name) else 0.0)
            restarts.add_metric([name], counts.get(name, 0))
        recycles = broker_retention.read_record(self.stack)
        yield from (up, restarts)
        yield CounterMetricFamily(
            "twinserve_broker_recycles", "Restarts of the in-memory broker to bound its memory.",
            value=recycles["recycles"],
        )  # fmt: skip
        yield CounterMetricFamily(
            "twinserve_broker_recycle_lost_messages",
            "Messages the drift consumer had not read when the broker was recycled.",
            value=recycles["lost_messages"],
        )  # fmt: skip


def serve(stack: Stack, host: str, supervision: bool = True, registry: CollectorRegistry | None = None):
    """Serve /metrics on `host`: the control plane's view and, natively, the supervision of its processes.

    Returns prometheus_client's (server, thread); `run` is the service.
    """
    registry = registry or CollectorRegistry()
    registry.register(ControlPlaneCollector(stack))
    if supervision:
        registry.register(SupervisionCollector(stack))
    return start_http_server(stack.monitoring.exporter_port, addr=host, registry=registry)


def run(stack: Stack, host: str, supervision: bool = True) -> None:
    """The exporter's process: serve until killed."""
    serve(stack, host, supervision)
    while True:
        time.sleep(3600)
