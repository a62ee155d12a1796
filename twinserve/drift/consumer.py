"""The drift consumer: production inputs from Kafka in, z-scores to Prometheus out.

At least once: offsets are committed only after the messages before them were
processed, so a restart resumes from the last commit and may count again at
most the messages of one poll. A malformed message, or one for a model version
without reference statistics, is counted and skipped. While the broker is
down the consumer retries with backoff, reports twinserve_drift_broker_up 0,
and keeps serving /metrics.
"""

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from twinserve.drift.messages import InvalidMessage, decode
from twinserve.drift.stats import FeatureDrift
from twinserve.drift.topic import ensure_topic

logger = logging.getLogger(__name__)
LABELS = ["model", "version", "feature"]
MALFORMED, NO_REFERENCE = "malformed", "no reference statistics"
SKIP_REASONS = (MALFORMED, NO_REFERENCE)


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap: str
    topic: str
    group_id: str = "twinserve-drift"
    window: int = 500
    min_samples: int = 100
    model_store: Path = Path("model_store")
    poll_ms: int = 500
    max_records: int = 1000


def load_references(model_store: Path) -> dict[tuple[str, str], dict]:
    """{(model, version): reference stats} from the archive metadata in the model store."""
    import json

    references = {}
    for path in Path(model_store).glob("*.json"):
        try:
            meta = json.loads(path.read_text())
            references[(meta["model_name"], meta["version"])] = meta["reference_stats"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return references


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry):
        def gauge(name, doc, labels=LABELS):
            return Gauge(f"twinserve_drift_{name}", doc, labels, registry=registry)

        self.count = gauge("count", "Inputs seen since the consumer started.")
        self.mean = gauge("mean", "Mean of all inputs seen.")
        self.std = gauge("std", "Standard deviation of all inputs seen.")
        self.window_mean = gauge("window_mean", "Mean of the inputs in the sliding window.")
        self.window_count = gauge("window_count", "Inputs in the sliding window.")
        self.zscore = gauge("zscore", "(window mean - training mean) / (training std / sqrt(window count)).")
        self.reference_mean = gauge("reference_mean", "Training mean.")
        self.consumed = Counter("twinserve_drift_messages", "Messages processed.", registry=registry)
        self.invalid = Counter("twinserve_drift_invalid_messages", "Messages skipped.", ["reason"], registry=registry)
        for reason in SKIP_REASONS:
            self.invalid.labels(reason)  # exported as 0 from the start, so rate() has a series
        self.lag = Gauge("twinserve_drift_consumer_lag", "Messages on the topic not yet processed.", registry=registry)
        self.broker_up = Gauge("twinserve_drift_broker_up", "1 while the broker answers.", registry=registry)


class DriftConsumer:
    def __init__(self, settings: ConsumerSettings, registry: CollectorRegistry, references=None):
        self.settings = settings
        self.metrics = DriftMetrics(registry)
        self.references = references if references is not None else load_references(settings.model_store)
        self.features: dict[tuple[str, str, str], FeatureDrift] = {}

    def process(self, raw: bytes) -> bool:
        """Update the statistics with one message; False if it was skipped."""
        try:
            inputs = decode(raw)
        except InvalidMessage:
            self.metrics.invalid.labels(MALFORMED).inc()
            return False
        key = (inputs.model, inputs.version)
        if key not in self.references:
            self.references.update(load_references(self.settings.model_store))  # a version deployed since
        reference = self.references.get(key)
        if reference is None or any(f not in reference for f in inputs.features):
            self.metrics.invalid.labels(NO_REFERENCE).inc()
            return False
        for j, feature in enumerate(inputs.features):
            drift = self.features.setdefault((*key, feature), FeatureDrift(self.settings.window))
            drift.add_many([row[j] for row in inputs.rows])
            self._export(inputs.model, inputs.version, feature, drift, reference[feature])
        self.metrics.consumed.inc()
        return True

    def _export(self, model, version, feature, drift: FeatureDrift, reference: dict) -> None:
        labels = (model, version, feature)
        self.metrics.count.labels(*labels).set(drift.overall.n)
        self.metrics.mean.labels(*labels).set(drift.overall.mean)
        self.metrics.std.labels(*labels).set(drift.overall.std)
        self.metrics.window_mean.labels(*labels).set(drift.window.mean)
        self.metrics.window_count.labels(*labels).set(drift.window.n)
        self.metrics.reference_mean.labels(*labels).set(reference["mean"])
        z = drift.z(reference["mean"], reference["std"], self.settings.min_samples)
        if z is not None:
            self.metrics.zscore.labels(*labels).set(z)

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, reconnecting whenever the broker goes away."""
        from kafka.errors import KafkaError

        backoff = 0.5
        while not stop.is_set():
            consumer = None
            try:
                consumer = self._connect()
                self.metrics.broker_up.set(1)
                backoff = 0.5
                self._consume(consumer, stop)
            except (KafkaError, OSError, ValueError) as exc:
                self.metrics.broker_up.set(0)
                logger.warning("drift consumer: broker unavailable (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if consumer is not None:
                    with contextlib.suppress(Exception):  # closing a consumer of a dead broker
                        consumer.close(autocommit=False)

    def _connect(self):
        from kafka import KafkaConsumer, TopicPartition

        s = self.settings
        ensure_topic(s.bootstrap, s.topic)  # gone after a restart of the in-memory broker
        consumer = KafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=s.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", request_timeout_ms=10000, bootstrap_timeout_ms=5000,
            reconnect_backoff_max_ms=5000, consumer_timeout_ms=-1,
        )  # fmt: skip
        partitions = consumer.partitions_for_topic(s.topic)
        if not partitions:
            consumer.close()
            raise ValueError(f"topic {s.topic} has no partitions yet")
        # Manual assignment, offsets committed under the group id: resumes from the
        # last commit without a group join (10-25 s on this broker).
        consumer.assign([TopicPartition(s.topic, p) for p in sorted(partitions)])
        return consumer

    def _consume(self, consumer, stop: threading.Event) -> None:
        last_lag = 0.0
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=self.settings.poll_ms, max_records=self.settings.max_records)
            for records in batches.values():
                for record in records:
                    self.process(record.value)
            if batches:
                consumer.commit()
            if time.monotonic() - last_lag > 2:
                ends = consumer.end_offsets(list(consumer.assignment()))
                self.metrics.lag.set(sum(max(end - consumer.position(tp), 0) for tp, end in ends.items()))
                self.metrics.broker_up.set(1)
                last_lag = time.monotonic()
