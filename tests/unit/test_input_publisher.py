"""The handler's Kafka publisher, against fake producers: it must never block or fail a prediction."""

import json
import os
import threading
import time

from input_publisher import InputPublisher


class FakeFuture:
    def __init__(self, error=None):
        self.error = error

    def add_callback(self, fn, *args):  # kafka.future.Future's signature
        if self.error is None:
            fn(*args, "metadata")

    def add_errback(self, fn, *args):
        if self.error is not None:
            fn(*args, self.error)


class FakeProducer:
    def __init__(self, error=None):
        self.sent, self.error = [], error

    def send(self, topic, message):
        self.sent.append((topic, message))
        return FakeFuture(self.error)

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_messages_reach_the_producer_in_order_and_are_counted(tmp_path):
    producer = FakeProducer()
    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=lambda: producer)
    try:
        for i in range(10):
            assert publisher.publish(f"m{i}".encode(), rows=2)
        assert wait_for(lambda: publisher.stats["batches_sent"] == 10)
        assert [m for _, m in producer.sent] == [f"m{i}".encode() for i in range(10)]
        assert {t for t, _ in producer.sent} == {"inputs"}
        assert publisher.stats["rows_sent"] == 20
        assert publisher.stats["rows_dropped"] == 0
    finally:
        publisher.close()
    stats = json.loads((tmp_path / f"publisher-{os.getpid()}.json").read_text())
    assert stats["batches_sent"] == 10


def test_a_broker_that_never_answers_fills_the_queue_then_drops_and_counts(tmp_path):
    release = threading.Event()

    def hanging_factory():
        release.wait()  # connecting takes forever
        return FakeProducer()

    publisher = InputPublisher("unused:9092", "inputs", tmp_path, max_batches=100, producer_factory=hanging_factory)
    try:
        started = time.monotonic()
        accepted = [publisher.publish(b"m", rows=3) for _ in range(150)]
        elapsed = time.monotonic() - started
        assert accepted.count(True) == 100
        assert accepted.count(False) == 50
        assert publisher.stats["batches_dropped"] == 50
        assert publisher.stats["rows_dropped"] == 150
        assert elapsed < 1.0  # generous: 150 put_nowait calls; a blocking publish would hang here forever
    finally:
        release.set()
        publisher.close()


def test_failed_deliveries_are_counted_as_errors_and_drops(tmp_path):
    producer = FakeProducer(error=RuntimeError("broker gone"))
    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=lambda: producer)
    try:
        for _ in range(4):
            publisher.publish(b"m", rows=5)
        assert wait_for(lambda: publisher.stats["send_errors"] == 4)
        assert publisher.stats["rows_dropped"] == 20
        assert publisher.stats["batches_sent"] == 0
    finally:
        publisher.close()


def test_a_failing_connection_is_retried_until_it_works(tmp_path):
    attempts = []

    def flaky_factory():
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("no broker yet")
        return FakeProducer()

    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=flaky_factory)
    try:
        publisher.publish(b"m", rows=1)
        assert wait_for(lambda: publisher.stats["batches_sent"] == 1)
        assert len(attempts) == 2
    finally:
        publisher.close()
