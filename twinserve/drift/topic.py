"""The inputs topic: created by the control plane with a single partition, and
told apart from an earlier topic of the same name.

One partition keeps the inputs in the order production served them, so the
consumer's sliding window is the most recent inputs, not an interleaving of
partitions read at different speeds. The handlers' producers never create
topics (a broker's default would be several partitions); the stack creates
it at `make up` and the drift consumer again when the broker lost it (the
native broker keeps topics in memory).

A broker restarted with empty storage serves a new topic under the old name.
A consumer that kept its read position would then skip the new topic's first
messages, silently: reset_reason() recognises the new topic (its id changed,
its end offset moved backwards, or the read position lies beyond its end) so
the consumer can start it from the beginning.
"""

from dataclasses import dataclass

NEW_TOPIC_ID, END_BACKWARDS, BEYOND_END = "new topic id", "end offset moved backwards", "position beyond the end"
RESET_REASONS = (NEW_TOPIC_ID, END_BACKWARDS, BEYOND_END)


@dataclass(frozen=True)
class PartitionView:
    """What the consumer saw of one partition at one check: its topic's id (None or "" if
    the broker does not say) and its end offset, the high watermark of the last fetch
    response (None before the first one).

    Not ListOffsets: Tansu 0.6.0's in-memory engine answers it with the base offset of
    the most recently written batch + 1, not the end (400 records in one batch: "1").
    """

    topic_id: str | None
    end: int | None


def reset_reason(before: PartitionView | None, now: PartitionView, position: int) -> str | None:
    """Why the partition seen `now` is not the one seen `before`, or None if it is.

    `position` is the consumer's next offset to read. Checked in order: a new
    topic id (sure, where the broker has ids), an end offset that moved
    backwards (records are never removed from the end), a position beyond
    the end (what is left when the new topic has fewer messages than were read).
    """
    if before is not None and before.topic_id and now.topic_id and before.topic_id != now.topic_id:
        return NEW_TOPIC_ID
    if before is not None and before.end is not None and now.end is not None and now.end < before.end:
        return END_BACKWARDS
    if now.end is not None and position > now.end:
        return BEYOND_END
    return None


def retention_configs(max_mb: int) -> dict[str, str]:
    """Topic configs bounding a partition to about `max_mb` MiB, for brokers that honour them.

    Kafka deletes whole segments past retention.bytes, so segments are a quarter of
    it. Tansu 0.6.0's in-memory engine takes them and keeps everything (measured;
    its source has no retention for that engine, and its DeleteRecords is not
    implemented).
    """
    size = max_mb * 1024 * 1024
    return {"retention.bytes": str(size), "segment.bytes": str(max(size // 4, 1024 * 1024))}


def ensure_topic(bootstrap: str, topic: str, admin=None, max_mb: int | None = None) -> bool:
    """Create `topic` with one partition unless it exists; True if this call created it.

    Uses `admin` (a KafkaAdminClient) if given, else a client of its own; with
    `max_mb`, the topic is created with retention_configs(max_mb).
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    own = admin is None
    if own:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=5000, request_timeout_ms=10000)
    try:
        configs = retention_configs(max_mb) if max_mb else {}
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs=configs)])
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        if own:
            admin.close()


def describe(admin, topic: str) -> tuple[str, list[int]] | None:
    """(the broker's id of `topic`, its partitions), or None if the broker has no such topic.

    The id is a UUID as text, "" where the broker gives none. Asks without
    creating: a broker that auto-creates topics would make one with its own
    default partition count (4 on Tansu).
    """
    for described in admin.describe_topics([topic]):
        if described.get("name") == topic and not described.get("error_code"):
            tid = described.get("topic_id")
            tid = "" if tid is None or str(tid) == "00000000-0000-0000-0000-000000000000" else str(tid)
            return tid, sorted(p["partition_index"] for p in described.get("partitions") or [])
    return None
