"""Publish the inputs production scores to Kafka, never slowing or failing a prediction.

The handler hands each batch's rows to publish(), which only appends to a
bounded queue (put_nowait). A daemon thread drains the queue into a Kafka
producer. If the broker is slow or down, the queue fills and further batches
are dropped and counted, while predictions go on untouched. The thread
reconnects by itself.

Counters (batches and rows sent and dropped, send errors) are written every
second to <stats_dir>/publisher-<pid>.json; twinserve's exporter sums them.
"""

import contextlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def input_message(model: str, version: str, features: list[str], rows: list[list[float]]) -> bytes:
    """One batch's production inputs; twinserve/drift/messages.py decodes it on the other side."""
    return json.dumps({"model": model, "version": version, "features": features, "rows": rows}).encode()


class InputPublisher:
    def __init__(self, bootstrap: str, topic: str, stats_dir: Path, max_batches: int = 1000, producer_factory=None):
        self.topic = topic
        self._max_in_flight = max_batches
        self._queue: queue.Queue = queue.Queue(maxsize=max_batches)
        self._stats_path = Path(stats_dir) / f"publisher-{os.getpid()}.json"
        self._stats_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the producer's I/O thread runs the delivery callbacks
        self._in_flight = 0
        self.stats = {"batches_sent": 0, "rows_sent": 0, "batches_dropped": 0, "rows_dropped": 0, "send_errors": 0}
        self._factory = producer_factory or (lambda: _kafka_producer(bootstrap))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="input-publisher", daemon=True)
        self._thread.start()

    def publish(self, message: bytes, rows: int) -> bool:
        """Queue one message; False (and counted) if the queue is full. Never blocks."""
        try:
            self._queue.put_nowait((message, rows))
            return True
        except queue.Full:
            self._count(batches_dropped=1, rows_dropped=rows)
            return False

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for key, n in increments.items():
                self.stats[key] += n

    def _delivered(self, rows: int, _metadata) -> None:
        self._count(batches_sent=1, rows_sent=rows)
        with self._lock:
            self._in_flight -= 1

    def _failed(self, rows: int, exc) -> None:
        logger.warning("input publisher: send failed (%s)", exc)
        self._count(send_errors=1, batches_dropped=1, rows_dropped=rows)
        with self._lock:
            self._in_flight -= 1

    def _write_stats(self) -> None:
        with self._lock:
            text = json.dumps(self.stats)
        tmp = self._stats_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self._stats_path)

    def _run(self) -> None:
        """Drain the queue into the producer without waiting for each delivery.

        At most max_batches messages are in flight; beyond that the thread stops
        draining, the queue fills, and publish() drops and counts.
        """
        producer, backoff, last_stats = None, 0.5, 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_stats > 1.0:
                self._write_stats()
                last_stats = time.monotonic()
            if producer is None:
                try:
                    producer = self._factory()
                    backoff = 0.5
                except Exception as exc:  # noqa: BLE001 - any connection failure: wait and retry
                    logger.warning("input publisher: broker unavailable (%s); retrying in %.1fs", exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
            if self._in_flight >= self._max_in_flight:
                self._stop.wait(0.01)
                continue
            try:
                message, rows = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                self._in_flight += 1
            try:
                future = producer.send(self.topic, message)
            except Exception as exc:  # noqa: BLE001 - the producer is unusable: count, drop, reconnect
                self._failed(rows, exc)
                with contextlib.suppress(Exception):
                    producer.close(timeout=1)
                producer = None
                continue
            future.add_callback(self._delivered, rows)
            future.add_errback(self._failed, rows)
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.flush(timeout=2)
        self._write_stats()


def _kafka_producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks=1, max_block_ms=5000, request_timeout_ms=5000,
        delivery_timeout_ms=10000, reconnect_backoff_max_ms=5000, bootstrap_timeout_ms=5000,
        allow_auto_create_topics=False,  # the control plane creates it with one partition: twinserve/drift/topic.py
    )  # fmt: skip
