"""The inputs topic, created by the control plane with a single partition.

One partition keeps the inputs in the order production served them, so the
consumer's sliding window is the most recent inputs, not an interleaving of
partitions read at different speeds. The handlers' producers never create
topics (a broker's default would be several partitions); the stack creates
it at `make up` and the drift consumer again after a broker restart (the
native broker keeps topics in memory).
"""


def ensure_topic(bootstrap: str, topic: str) -> bool:
    """Create `topic` with one partition unless it exists; True if this call created it."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=5000, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()
