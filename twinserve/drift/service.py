"""The drift consumer of the stack as a process (`twinserve serve drift-consumer`, `twinserve container ...`).

Reads the stack description for the broker, topic, window and ports; serves
/metrics on drift.consumer_metrics_port, bound to the address it is given
(loopback natively, all interfaces in its container), until SIGTERM or SIGINT.
"""

import logging
import signal
import threading

from prometheus_client import CollectorRegistry, start_http_server

from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.settings import Stack


def run(stack: Stack, host: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    registry = CollectorRegistry()
    consumer = DriftConsumer(ConsumerSettings.from_stack(stack), registry)
    start_http_server(stack.drift.consumer_metrics_port, addr=host, registry=registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    consumer.run(stop)
