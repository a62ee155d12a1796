"""Telling a replaced topic from the one read before, and what the consumer does then, without a broker.

The integration test (tests/integration/test_drift.py) kills and restarts the real broker;
here the consumer's checks run against small stand-ins for kafka-python's clients.
"""

import threading

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from twinserve.drift.consumer import BrokerUnavailable, ConsumerSettings, DriftConsumer
from twinserve.drift.topic import BEYOND_END, END_BACKWARDS, NEW_TOPIC_ID, PartitionView, describe, reset_reason

A, B = "01a21fa4-0000-7000-8000-00000000000a", "01a21fa4-0000-7000-8000-00000000000b"


@pytest.mark.parametrize(
    ("before", "now", "position", "reason"),
    [
        (None, PartitionView(A, 10), 4, None),  # first look, inside the topic
        (PartitionView(A, 10), PartitionView(A, 12), 10, None),  # it grew
        (PartitionView(A, 10), PartitionView(B, 500), 10, NEW_TOPIC_ID),  # new topic, already longer
        (PartitionView(A, 10), PartitionView(A, 3), 3, END_BACKWARDS),  # no ids: the end moved back
        (PartitionView("", 10), PartitionView("", 3), 3, END_BACKWARDS),
        (None, PartitionView(A, 3), 10, BEYOND_END),  # a committed offset beyond a new topic's end
        (PartitionView(None, 10), PartitionView(B, 10), 10, None),  # an id appearing is no evidence
        (PartitionView(A, 10), PartitionView(A, None), 10, None),  # no fetch answered yet: no end known
        (PartitionView(A, None), PartitionView(A, 3), 3, None),
    ],
)
def test_reset_reason(before, now, position, reason):
    assert reset_reason(before, now, position) == reason


class Admin:
    def __init__(self, topics: dict, partitions: int = 1):
        self.topics, self.created, self.partitions = topics, [], partitions

    def describe_topics(self, names):
        parts = [{"partition_index": p} for p in range(self.partitions)]
        return [
            {"name": n, "error_code": 0, "topic_id": self.topics[n], "partitions": parts} if n in self.topics
            else {"name": n, "error_code": 3, "topic_id": None, "partitions": []}
            for n in names
        ]  # fmt: skip

    def create_topics(self, new_topics):
        for t in new_topics:
            self.created.append(t.name)
            self.topics[t.name] = B


class Consumer:
    def __init__(self, end: int, position: int):
        self.assigned = {TopicPartition("inputs", 0)}
        self.end, self.pos, self.commits = end, position, 0

    def assignment(self):
        return set(self.assigned)

    def assign(self, tps):
        self.assigned = set(tps)

    def highwater(self, tp):
        return self.end

    def position(self, tp):
        return self.pos

    def seek_to_beginning(self, tp):
        self.pos = 0

    def commit(self):
        self.commits += 1


def make_consumer():
    registry = CollectorRegistry()
    return DriftConsumer(ConsumerSettings("unused:9092", "inputs"), registry, references={}), registry


def resets(registry, reason):
    return registry.get_sample_value("twinserve_drift_topic_resets_total", {"reason": reason})


def test_a_topic_replaced_by_a_broker_restart_is_read_again_from_its_start():
    drift, registry = make_consumer()
    admin, consumer = Admin({"inputs": A}), Consumer(end=120, position=120)
    drift._check(consumer, admin)
    assert resets(registry, NEW_TOPIC_ID) == 0 and consumer.pos == 120
    admin.topics["inputs"], consumer.end = B, 30  # restarted: a new topic with 30 messages, we are at 120
    drift._check(consumer, admin)
    assert resets(registry, NEW_TOPIC_ID) == 1
    assert consumer.pos == 0 and consumer.commits == 1
    assert registry.get_sample_value("twinserve_drift_consumer_lag") == 30  # not clamped to 0: all 30 to read
    drift._check(consumer, admin)  # the same new topic: nothing more
    assert resets(registry, NEW_TOPIC_ID) == 1


def test_the_old_topics_high_watermark_left_in_the_client_is_not_taken_for_the_new_ones():
    drift, registry = make_consumer()
    admin, consumer = Admin({"inputs": A}), Consumer(end=400, position=400)
    drift._check(consumer, admin)
    admin.topics["inputs"] = B  # replaced; the client has fetched nothing from it yet: its high watermark says 400
    drift._check(consumer, admin)
    assert resets(registry, NEW_TOPIC_ID) == 1 and consumer.pos == 0
    drift._check(consumer, admin)  # still 400 in the client: unknown, not an end
    consumer.end, consumer.pos = 123, 123  # the first fetches from the new topic
    drift._check(consumer, admin)
    assert sum(resets(registry, r) for r in (NEW_TOPIC_ID, END_BACKWARDS, BEYOND_END)) == 1
    assert consumer.pos == 123  # not read again


def test_a_topic_the_broker_lost_is_created_again():
    drift, registry = make_consumer()
    admin, consumer = Admin({}), Consumer(end=0, position=0)
    drift._check(consumer, admin)
    assert admin.created == ["inputs"]
    assert registry.get_sample_value("twinserve_drift_broker_up") == 1


def test_describe_gives_the_id_and_partitions_none_when_missing_and_an_empty_id_when_the_broker_has_none():
    assert describe(Admin({"inputs": A}), "inputs") == (A, [0])
    assert describe(Admin({}), "inputs") is None
    assert describe(Admin({"inputs": None}), "inputs") == ("", [0])
    assert describe(Admin({"inputs": "00000000-0000-0000-0000-000000000000"}), "inputs") == ("", [0])


def test_partitions_made_by_someone_else_are_all_read():
    drift, _ = make_consumer()
    admin, consumer = Admin({"inputs": A}, partitions=3), Consumer(end=0, position=0)
    drift._check(consumer, admin)
    assert consumer.assignment() == {TopicPartition("inputs", p) for p in range(3)}


def run_once_with(drift, connect):
    """drift.run() with _connect replaced; stops after the first retry."""
    stop = threading.Event()
    drift._connect = lambda: connect(stop)
    drift.run(stop)


def test_broker_errors_mean_broker_unavailable_and_are_retried():
    for error in (KafkaConnectionError("gone"), OSError("refused"), BrokerUnavailable("no partitions")):
        drift, registry = make_consumer()

        def connect(stop, error=error):
            stop.set()
            raise error

        run_once_with(drift, connect)
        assert registry.get_sample_value("twinserve_drift_broker_up") == 0


def test_other_errors_are_not_taken_for_the_broker():
    drift, registry = make_consumer()

    def connect(stop):
        raise ValueError("a bug, not the broker")

    with pytest.raises(ValueError, match="a bug"):
        run_once_with(drift, connect)
    assert registry.get_sample_value("twinserve_drift_broker_up") == 0.0  # never set to 1 either
