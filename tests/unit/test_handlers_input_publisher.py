"""The handler's Kafka publisher, against fake producers: it must never block or fail a prediction."""

import json
import os
import threading
import time

from input_publisher import InputPublisher, coalesce


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
        self.sent, self.keys, self.error = [], [], error

    def send(self, topic, message, key=None):
        self.sent.append((topic, message))
        self.keys.append(key)
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


KEY = ("regressor", "1.0", ["x1", "x2"])


def sent_messages(producer):
    return [json.loads(m) for _, m in producer.sent]


def test_batches_reach_the_producer_in_order_merged_into_few_messages(tmp_path):
    producer = FakeProducer()
    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=lambda: producer)
    try:
        for i in range(10):
            assert publisher.publish(*KEY, [[i, -i], [i + 0.5, -i]])
        assert wait_for(lambda: publisher.stats["batches_sent"] == 10)
        rows = [row for message in sent_messages(producer) for row in message["rows"]]
        assert rows == [r for i in range(10) for r in ([i, -i], [i + 0.5, -i])]
        assert len(producer.sent) < 10  # merged: 10 quick batches do not make 10 sends
        assert {t for t, _ in producer.sent} == {"inputs"}
        assert {(m["model"], m["version"], tuple(m["features"])) for m in sent_messages(producer)} == {
            ("regressor", "1.0", ("x1", "x2"))
        }
        assert publisher.stats["rows_sent"] == 20
        assert publisher.stats["messages_sent"] == len(producer.sent)
        assert publisher.stats["rows_dropped"] == 0
    finally:
        publisher.close()
    stats = json.loads((tmp_path / f"publisher-{os.getpid()}.json").read_text())
    assert stats["batches_sent"] == 10


def test_batches_queued_before_close_are_still_sent(tmp_path):
    producer = FakeProducer()
    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=lambda: producer)
    for i in range(5):
        publisher.publish(*KEY, [[i, i]])
    publisher.close()
    assert [r for m in sent_messages(producer) for r in m["rows"]] == [[i, i] for i in range(5)]


def test_coalesce_keeps_order_separates_versions_and_caps_rows():
    a, b = ("m", "1.0", ("x1",)), ("m", "1.1", ("x1",))
    items = [(a, [[1]]), (a, [[2], [3]]), (b, [[4]]), (a, [[5]]), (a, [[6], [7], [8]]), (a, [[9]])]
    assert coalesce(items, max_rows=4) == [
        (a, [[1], [2], [3]], 2),
        (b, [[4]], 1),
        (a, [[5], [6], [7], [8]], 2),
        (a, [[9]], 1),
    ]
    big = [(a, [[i] for i in range(10)])]
    assert coalesce(big, max_rows=4) == [(a, [[i] for i in range(10)], 1)]  # a single batch is never split


def test_a_broker_that_never_answers_fills_the_queue_then_drops_and_counts(tmp_path):
    release = threading.Event()

    def hanging_factory():
        release.wait()  # connecting takes forever
        return FakeProducer()

    publisher = InputPublisher("unused:9092", "inputs", tmp_path, max_batches=100, producer_factory=hanging_factory)
    try:
        started = time.monotonic()
        accepted = [publisher.publish(*KEY, [[1, 2]] * 3) for _ in range(150)]
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
            publisher.publish(*KEY, [[1, 2]] * 5)
        assert wait_for(lambda: publisher.stats["batches_dropped"] == 4)
        assert publisher.stats["rows_dropped"] == 20
        assert publisher.stats["send_errors"] == len(producer.sent) >= 1
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
        publisher.publish(*KEY, [[1, 2]])
        assert wait_for(lambda: publisher.stats["batches_sent"] == 1)
        assert len(attempts) == 2
    finally:
        publisher.close()


def test_a_producer_that_breaks_mid_flush_counts_every_batch_it_did_not_send(tmp_path):
    class BreaksOnSecondSend(FakeProducer):
        def send(self, topic, message, key=None):
            if self.sent:
                raise RuntimeError("connection lost")
            return super().send(topic, message, key)

    producer = BreaksOnSecondSend()
    release = threading.Event()

    def factory():
        release.wait()  # connect only once everything is queued: one flush, several messages
        return producer

    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=factory, max_rows_per_message=2)
    try:
        for i in range(4):
            publisher.publish(*KEY, [[i, i], [i, -i]])  # 2 rows each: one message per batch
        release.set()
        assert wait_for(lambda: publisher.stats["batches_sent"] + publisher.stats["batches_dropped"] == 4)
        assert publisher.stats["batches_sent"] == 1 and publisher.stats["rows_sent"] == 2
        assert publisher.stats["batches_dropped"] == 3 and publisher.stats["rows_dropped"] == 6
        assert publisher.stats["send_errors"] == 1
    finally:
        publisher.close()


def test_each_message_is_stamped_with_the_processs_id_its_number_and_its_first_row(tmp_path):
    producer = FakeProducer()
    publisher = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=lambda: producer,
                               max_rows_per_message=3)  # fmt: skip
    other = InputPublisher("unused:9092", "inputs", tmp_path, producer_factory=FakeProducer)
    try:
        for i in range(4):
            assert publisher.publish(*KEY, [[i, 0], [i, 1]])
        assert wait_for(lambda: publisher.stats["batches_sent"] == 4)
    finally:
        publisher.close()
        other.close()
    sent = sent_messages(producer)
    assert [m["seq"] for m in sent] == list(range(len(sent)))
    assert [m["row"] for m in sent] == [sum(len(m["rows"]) for m in sent[:i]) for i in range(len(sent))]
    assert {m["producer"] for m in sent} == {publisher.producer_id} != {other.producer_id}
    assert set(producer.keys) == {publisher.producer_id.encode()}  # one partition per producer, whatever the topic
