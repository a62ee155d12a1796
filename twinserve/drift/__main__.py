"""python -m twinserve.drift: the drift consumer of the stack (make up starts it).

Reads the stack description for the broker, topic, window and ports; serves
/metrics on drift.consumer_metrics_port until SIGTERM or SIGINT.
"""

import logging
import signal
import sys
import threading

from prometheus_client import CollectorRegistry, start_http_server

from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.errors import TwinserveError
from twinserve.settings import load_stack


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        stack = load_stack()
    except TwinserveError as exc:
        print(f"twinserve.drift: error: {exc}", file=sys.stderr)
        return exc.exit_code
    registry = CollectorRegistry()
    consumer = DriftConsumer(ConsumerSettings.from_stack(stack), registry)
    start_http_server(stack.drift.consumer_metrics_port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    consumer.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
