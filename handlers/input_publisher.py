"""Publish the inputs production scores to Kafka, never slowing or failing a prediction.

The handler hands each batch's rows to publish(), which only appends them to a
bounded queue (put_nowait): no encoding, no I/O. A daemon thread drains the
queue every flush interval, merges consecutive batches of the same model
version into one message (up to max_rows_per_message rows) and hands them to
a Kafka producer. Merging matters: one Kafka send per TorchServe batch cost
a worker about 40% of its throughput under load (measured with
`make bench-drift`); a few sends per second cost almost nothing.

If the broker is slow or down, the queue fills and further batches are
dropped and counted, while predictions go on untouched. The thread
reconnects by itself. Each message carries this process's id (random, so a
restarted worker is another producer), its sequence number and its first row's number: the consumer
takes each (producer, seq) once, and counts the numbers it never sees as gaps
(twinserve/drift/dedupe.py). Counters are written every second to
<stats_dir>/publisher-<pid>.json; twinserve's exporter sums them.
"""

import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)


def input_message(
    model: str, version: str, features: list[str], rows: list[list[float]], stamp: tuple | None = None
) -> bytes:
    """Production inputs of one model version; twinserve/drift/messages.py decodes it on the other side.
    With a stamp (producer, seq, row), the consumer takes it once however often it reads it
    (twinserve/drift/dedupe.py). Not messages.encode: handlers run in TorchServe, without twinserve."""
    body = {"model": model, "version": version, "features": list(features), "rows": rows}
    if stamp is not None:
        body |= {"producer": stamp[0], "seq": stamp[1], "row": stamp[2]}
    return json.dumps(body).encode()


def coalesce(items: list[tuple[tuple, list]], max_rows: int) -> list[tuple[tuple, list, int]]:
    """Merge consecutive (key, rows) items with the same key: [(key, rows, batches merged)].

    Order is kept (the consumer's window is the most recent inputs); a merged
    message never exceeds max_rows unless a single batch does.
    """
    merged: list[list] = []  # [key, rows, batches], rows extended in place
    for key, rows in items:
        if merged and merged[-1][0] == key and len(merged[-1][1]) + len(rows) <= max_rows:
            merged[-1][1].extend(rows)
            merged[-1][2] += 1
        else:
            merged.append([key, list(rows), 1])
    return [tuple(m) for m in merged]


class InputPublisher:
    def __init__(
        self, bootstrap: str, topic: str, stats_dir: Path, max_batches: int = 1000, producer_factory=None,
        flush_interval: float = 0.1, max_rows_per_message: int = 2000, max_in_flight: int = 100,
    ):  # fmt: skip
        self.topic = topic
        self._flush_interval = flush_interval
        self._max_rows = max_rows_per_message
        self._max_in_flight = max_in_flight
        self._queue: queue.Queue = queue.Queue(maxsize=max_batches)
        self._stats_path = Path(stats_dir) / f"publisher-{os.getpid()}.json"
        self._stats_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the producer's I/O thread runs the delivery callbacks
        self._in_flight = 0
        self.producer_id = uuid.uuid4().hex[:12]  # per process: a restarted worker numbers from 0 again
        self._key = self.producer_id.encode()
        self._seq = self._row = 0  # the next message's number and first row; only the publisher thread sends
        self.stats = dict.fromkeys(
            ("messages_sent", "batches_sent", "rows_sent", "batches_dropped", "rows_dropped", "send_errors"), 0
        )
        self._factory = producer_factory or (lambda: _kafka_producer(bootstrap))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="input-publisher", daemon=True)
        self._thread.start()

    def publish(self, model: str, version: str, features: list[str], rows: list[list[float]]) -> bool:
        """Queue one batch's rows; False (and counted) if the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(((model, version, tuple(features)), rows))
            return True
        except queue.Full:
            self._count(batches_dropped=1, rows_dropped=len(rows))
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; what is queued by then is still sent."""
        self._stop.set()
        self._thread.join(timeout)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for key, n in increments.items():
                self.stats[key] += n

    def _delivered(self, rows: int, batches: int, _metadata) -> None:
        self._count(messages_sent=1, batches_sent=batches, rows_sent=rows)
        with self._lock:
            self._in_flight -= 1

    def _failed(self, rows: int, batches: int, exc) -> None:
        logger.warning("input publisher: send failed (%s)", exc)
        self._count(send_errors=1, batches_dropped=batches, rows_dropped=rows)
        with self._lock:
            self._in_flight -= 1

    def _write_stats(self) -> None:
        with self._lock:
            text = json.dumps(self.stats)
        tmp = self._stats_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self._stats_path)

    def _drain(self, first=None) -> list:
        items = [] if first is None else [first]
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(self._queue.get_nowait())
        return items

    def _send(self, producer, items: list) -> bool:
        """Hand merged messages to the producer; False if it broke (the rest is dropped and counted)."""
        messages = coalesce(items, self._max_rows)
        for i, ((model, version, features), rows, batches) in enumerate(messages):
            with self._lock:
                self._in_flight += 1
            try:
                raw = input_message(model, version, features, rows, (self.producer_id, self._seq, self._row))
                self._seq, self._row = self._seq + 1, self._row + len(rows)
                # Keyed by the producer: on a topic of several partitions (a restarted Tansu's
                # 4) each producer's messages still keep one partition and their order.
                future = producer.send(self.topic, raw, key=self._key)
            except Exception as exc:  # noqa: BLE001 - the producer is unusable: count, drop, reconnect
                self._failed(len(rows), batches, exc)
                unsent = messages[i + 1 :]
                self._count(batches_dropped=sum(m[2] for m in unsent), rows_dropped=sum(len(m[1]) for m in unsent))
                return False
            future.add_callback(self._delivered, len(rows), batches)
            future.add_errback(self._failed, len(rows), batches)
        return True

    def _run(self) -> None:
        """Every flush interval, send what the handler queued since the last one.

        Once max_in_flight messages await delivery the thread stops draining,
        the queue fills, and publish() drops and counts.
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
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if not self._send(producer, self._drain(first)):
                with contextlib.suppress(Exception):
                    producer.close(timeout=1)
                producer = None
                continue
            self._stop.wait(self._flush_interval)  # let the next batches gather into few messages
        if producer is not None:
            with contextlib.suppress(Exception):
                self._send(producer, self._drain())
                producer.flush(timeout=2)
        self._write_stats()


def _kafka_producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks=1, max_block_ms=5000, request_timeout_ms=5000,
        delivery_timeout_ms=10000, reconnect_backoff_max_ms=5000, bootstrap_timeout_ms=5000,
        allow_auto_create_topics=False,  # the control plane creates it with one partition: twinserve/drift/topic.py
    )  # fmt: skip
