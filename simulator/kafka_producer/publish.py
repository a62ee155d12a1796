"""Publish a synthetic input stream to the stack's broker (`twinserve drift-demo`).

Tags messages with a model version whose archive is in the model store (its
metadata carries the reference statistics); the broker and topic come from the
stack description unless given.
"""

import time
from dataclasses import dataclass

from simulator.kafka_producer.stream import Drift, messages
from twinserve.errors import ConfigError, ServiceError
from twinserve.settings import Stack
from twinserve.store.archives import archive_for


@dataclass(frozen=True)
class Stream:
    model: str = "regressor"
    version: str | None = None  # default: the version the stack description builds first
    messages: int = 2000
    rows: int = 1  # rows per message
    drift: Drift = Drift()
    seed: int = 0
    rate: float = 0  # messages per second; 0: as fast as possible


def publish(stack: Stack, stream: Stream, bootstrap: str | None = None, topic: str | None = None) -> str:
    """Send `stream` to the broker; returns what was published, as a sentence."""
    if stream.model not in stack.models:
        raise ConfigError(f"unknown model {stream.model!r}; the stack serves {sorted(stack.models)}")
    version = stream.version or stack.models[stream.model].version
    _, meta = archive_for(stack, stream.model, version)
    try:
        encoded = list(
            messages(stream.model, version, meta["reference_stats"], stream.messages, stream.rows, stream.drift,
                     stream.seed)
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from twinserve.drift.topic import ensure_topic

    bootstrap, topic = bootstrap or stack.drift.bootstrap, topic or stack.drift.topic
    try:
        ensure_topic(bootstrap, topic, max_mb=stack.drift.topic_max_mb)  # one partition, as the stack makes it
        producer = KafkaProducer(  # acks=1 as the handler's publisher: kafka-python 3's idempotent default
            bootstrap_servers=bootstrap,
            linger_ms=5,
            max_block_ms=10000,
            allow_auto_create_topics=False,
            acks=1,
            enable_idempotence=False,  # takes one UnknownError from Tansu as fatal for every batch
        )
        for message in encoded:
            producer.send(topic, message)
            if stream.rate > 0:
                time.sleep(1.0 / stream.rate)
        producer.flush(timeout=30)
        producer.close()
    except KafkaError as exc:
        raise ServiceError(f"broker {bootstrap}: {type(exc).__name__}: {exc}") from None
    return f"published {len(encoded)} messages of {stream.rows} row(s) for {stream.model} {version}"
