"""The drift consumer: production inputs from Kafka in, z-scores to Prometheus out.

Offsets are committed only after the messages before them were processed.
The statistics survive a restart (snapshot.py): written with the offsets
they include every snapshot_s seconds and on stop, read back at start; the
consumer then reads on from those offsets, not the committed ones, so a
message is counted once whichever of snapshot and commit came last. Without
a snapshot (or with one it rejects) it starts empty from the last commit.

No message can stop it. process() guards each message: a malformed one, one
for a model version without reference statistics, or one whose processing
failed is counted by reason (twinserve_drift_invalid_messages_total) and
skipped; rows with a value beyond ±1e100 are dropped from their message and
counted (twinserve_drift_invalid_rows_total), the message's other rows are
used. Either way the offset is committed past it, so a restart does not
replay it. A feature whose training standard deviation is 0 has no z-score
and says so (twinserve_drift_zero_spread 1).

Only broker errors (Kafka's, the socket's, a topic without partitions) mean
"broker unavailable": the consumer then retries with backoff, reports
twinserve_drift_broker_up 0 and keeps serving /metrics. Any other error is a
bug and is raised, not retried as if it were the broker's.

A broker restarted with empty storage serves a new, empty topic under the
old name. Every check_s the consumer compares the topic with what it saw
before (twinserve/drift/topic.py); on a new topic it counts the reset
(twinserve_drift_topic_resets_total{reason}), logs it, and reads the new
topic from its start. Messages read from the new topic before the check are
read again, but counted once: each message of the handler's publisher has an id
(producer, sequence number), and the consumer takes each id once (dedupe.py),
counting the rest (twinserve_drift_duplicate_messages_total) and the numbers
it never saw (twinserve_drift_gap_messages_total, _gap_rows_total: lost with
the broker, or dropped by the publisher after it numbered them). The ids seen
are in the snapshot too. It creates the topic if the
broker has none, so a restarted broker gets it back without `make up`.
"""

import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from twinserve.drift import snapshot
from twinserve.drift.dedupe import Dedupe
from twinserve.drift.detect import Verdict, VerdictSettings, VersionWindow
from twinserve.drift.messages import InvalidMessage, decode_batch
from twinserve.drift.stats import MAX_ABS, FeatureDrift, usable_spread
from twinserve.drift.topic import RESET_REASONS, PartitionView, describe, ensure_topic, reset_reason

logger = logging.getLogger(__name__)
LABELS = ["model", "version", "feature"]
MALFORMED, NO_REFERENCE, OUT_OF_RANGE, FAILED = (
    "malformed", "no reference statistics", "value out of range", "processing error",
)  # fmt: skip
SKIP_REASONS = (MALFORMED, NO_REFERENCE, OUT_OF_RANGE, FAILED)


class BrokerUnavailable(Exception):
    """The broker answers, but not with what the consumer needs yet (e.g. a topic without partitions)."""


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
    check_s: float = 2.0  # lag, broker and topic-reset checks
    max_mb: int | None = None  # the topic is created with retention_configs(max_mb)
    verdict: VerdictSettings = VerdictSettings()  # the distribution tests' windows and thresholds (detect.py)
    snapshot: Path | None = None  # the statistics kept across restarts here (snapshot.py); None: not kept
    snapshot_s: float = 5.0  # written this often while messages arrive, and when the consumer stops

    @classmethod
    def from_stack(cls, stack) -> "ConsumerSettings":
        """The stack's drift consumer (natively and in compose)."""
        d = stack.drift
        return cls(
            bootstrap=d.bootstrap, topic=d.topic, window=d.window, min_samples=d.min_samples,
            model_store=stack.model_store, max_mb=d.topic_max_mb,
            verdict=VerdictSettings.from_mapping(d.verdict, f"{stack.path}: drift.verdict"),
            snapshot=stack.var_dir / "drift" / "consumer-snapshot.json",
        )  # fmt: skip


def load_references(model_store: Path) -> dict[tuple[str, str], dict]:
    """{(model, version): reference stats} from the archive metadata in the model store."""
    references = {}
    for path in Path(model_store).glob("*.json"):
        try:
            meta = json.loads(path.read_text())
            references[(meta["model_name"], meta["version"])] = meta["reference_stats"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return references


def has_reference(reference, features: list[str]) -> bool:
    """True if `reference` has a finite training mean for every feature (the std may be anything)."""
    if not isinstance(reference, dict):
        return False
    for f in features:
        mean = reference.get(f, {}).get("mean") if isinstance(reference.get(f), dict) else None
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
            return False
    return True


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry):
        def gauge(name, doc, labels=LABELS):
            return Gauge(f"twinserve_drift_{name}", doc, labels, registry=registry)

        self.count = gauge("count", "Inputs seen (kept across restarts by the consumer's snapshot).")
        self.mean = gauge("mean", "Mean of all inputs seen.")
        self.std = gauge("std", "Standard deviation of all inputs seen.")
        self.window_mean = gauge("window_mean", "Mean of the inputs in the sliding window.")
        self.window_count = gauge("window_count", "Inputs in the sliding window.")
        self.zscore = gauge("zscore", "(window mean - training mean) / (training std / sqrt(window count)).")
        self.reference_mean = gauge("reference_mean", "Training mean.")
        self.zero_spread = gauge("zero_spread", "1 if the training std is 0 (or unusable): no z-score then.")
        self.consumed = Counter("twinserve_drift_messages", "Messages processed.", registry=registry)
        self.invalid = Counter(
            "twinserve_drift_invalid_messages", "Messages skipped, or with rows dropped, by reason.", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.invalid_rows = Counter(
            "twinserve_drift_invalid_rows", "Rows dropped from processed messages, by reason.", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.resets = Counter(
            "twinserve_drift_topic_resets", "Times the topic was found replaced (read again from its start).",
            ["reason"], registry=registry,
        )  # fmt: skip
        for reason in SKIP_REASONS:
            self.invalid.labels(reason)  # exported as 0 from the start, so rate() has a series
        self.invalid_rows.labels(OUT_OF_RANGE)
        for reason in RESET_REASONS:
            self.resets.labels(reason)
        version = ["model", "version"]
        self.drifting = gauge(
            "feature_drifting", "1 if the feature drifts by this test (test=verdict: by the verdict's rule).",
            [*LABELS, "test"],
        )  # fmt: skip
        self.statistic = gauge(
            "feature_statistic", "The test's statistic on the window (ks, ks_pvalue after Bonferroni, "
            "wasserstein in training stds, psi, zscore).", [*LABELS, "test"],
        )  # fmt: skip
        self.share = gauge("share", "Share of the version's tested features drifting (the verdict's rule).", version)
        self.detected = gauge("detected", "1 if the version's inputs or outputs drifted (the verdict).", version)
        self.verdict_rows = gauge("verdict_window_rows", "Rows in the window of the last verdict.", version)
        self.verdicts = Counter("twinserve_drift_verdicts", "Verdicts made.", version, registry=registry)
        self.verdict_time = gauge("verdict_timestamp_seconds", "Unix time of the last verdict.", version)
        self.lag = Gauge("twinserve_drift_consumer_lag", "Messages on the topic not yet processed.", registry=registry)
        self.broker_up = Gauge("twinserve_drift_broker_up", "1 while the broker answers.", registry=registry)
        self.snapshot_loads = Counter(
            "twinserve_drift_snapshot_loads", "Snapshots read at start, by result (restored, none, corrupt, foreign).",
            ["result"], registry=registry,
        )  # fmt: skip
        for result in snapshot.LOAD_RESULTS:
            self.snapshot_loads.labels(result)
        self.duplicates = Counter(
            "twinserve_drift_duplicate_messages", "Messages read again (the same producer and sequence number): "
            "not counted again.", registry=registry,
        )  # fmt: skip
        self.gaps = Counter(
            "twinserve_drift_gap_messages", "Sequence numbers a producer skipped: messages never read.",
            registry=registry,
        )  # fmt: skip
        self.gap_rows = Counter(
            "twinserve_drift_gap_rows", "Rows of the messages never read (twinserve_drift_gap_messages).",
            registry=registry,
        )  # fmt: skip
        self.snapshot_errors = Counter(
            "twinserve_drift_snapshot_write_errors", "Snapshots that could not be written.", registry=registry
        )
        self.snapshot_time = Gauge(
            "twinserve_drift_snapshot_timestamp_seconds", "Unix time of the last snapshot written.", registry=registry
        )


@dataclass(eq=False)  # hashed by identity: the consumer keeps a set of those to export
class Tracked:
    """One feature of one model version: its statistics, its reference and its gauges
    (labelled once: a label lookup per value per message cost a quarter of the throughput)."""

    drift: FeatureDrift
    ref_mean: float
    ref_std: float | None  # None: no usable spread, no z-score
    gauges: tuple
    zscore_family: Gauge
    labels: tuple
    zscore: object = None  # labelled at the first z-score: no series before min_samples

    @classmethod
    def start(cls, metrics: DriftMetrics, labels: tuple, reference: dict, window: int) -> "Tracked":
        m = metrics
        spread = usable_spread(reference.get("std"))
        m.reference_mean.labels(*labels).set(reference["mean"])
        m.zero_spread.labels(*labels).set(0 if spread else 1)
        if not spread:
            logger.warning("drift consumer: %s %s %s has no training spread (std %r): no z-score",
                           *labels, reference.get("std"))  # fmt: skip
        gauges = tuple(g.labels(*labels) for g in (m.count, m.mean, m.std, m.window_mean, m.window_count))
        std = reference["std"] if spread else None
        return cls(FeatureDrift(window), reference["mean"], std, gauges, m.zscore, labels)

    def export(self, min_samples: int) -> None:
        count, mean, std, window_mean, window_count = self.gauges
        d = self.drift
        count.set(d.overall.n)
        mean.set(d.overall.mean)
        std.set(d.overall.std)
        window_mean.set(d.window.mean)
        window_count.set(d.window.n)
        if self.ref_std is not None:
            z = d.z(self.ref_mean, self.ref_std, min_samples)
            if z is not None:
                if self.zscore is None:
                    self.zscore = self.zscore_family.labels(*self.labels)
                self.zscore.set(z)


class DriftConsumer:
    def __init__(self, settings: ConsumerSettings, registry: CollectorRegistry, references=None, clock=time.monotonic):
        self.settings = settings
        self.clock = clock  # the time windows' (the evaluation passes its own)
        self.windows: dict[tuple[str, str], VersionWindow | None] = {}  # None: no sketches in the reference
        self.metrics = DriftMetrics(registry)
        self.references = references if references is not None else load_references(settings.model_store)
        self.features: dict[tuple[str, str, str], Tracked] = {}
        self._by_message: dict[tuple, list[Tracked]] = {}  # (model, version, *features) -> their Tracked
        self.seen: dict = {}  # TopicPartition -> PartitionView at the last check, kept across reconnects
        self.stale: dict = {}  # TopicPartition -> the replaced topic's high watermark, still in the client
        # The offsets the statistics include: {partition: next offset to read}, of the topic with id
        # positions_tid (None: not known yet). Read from at each (re)connection, and saved in the snapshot.
        self.positions: dict[int, int] = {}
        self.positions_tid: str | None = None
        self.topic_id: str | None = None  # the topic's id at the last check ("" if the broker gives none)
        self.verdict_times: dict[tuple[str, str], float] = {}  # (model, version) -> wall time of its last verdict
        self.changed = False  # since the last snapshot
        self.dedupe = Dedupe()  # the message ids seen (dedupe.py)
        self._touched: set[Tracked] = set()  # features changed since the last export
        if settings.snapshot is not None:
            self.load_snapshot()

    def process(self, raw: bytes) -> bool:
        """Update the statistics with one message and export them; False if it was skipped. Never raises."""
        taken = self._guarded(raw)
        self.export()
        return taken

    def export(self) -> None:
        """Set the gauges of the features changed since the last export. The consuming loop calls it
        once per poll (up to max_records messages), not per message: ~10 us a feature."""
        for tracked in self._touched:
            tracked.export(self.settings.min_samples)
        self._touched.clear()

    def _guarded(self, raw: bytes) -> bool:
        try:
            return self._process(raw)
        except Exception:  # noqa: BLE001 - no message may stop the consumer or be replayed forever
            logger.exception("drift consumer: a message of %d bytes failed; counted and skipped", len(raw or b""))
            self.metrics.invalid.labels(FAILED).inc()
            return False

    def _process(self, raw: bytes) -> bool:
        try:
            batch = decode_batch(raw)
        except InvalidMessage:
            self.metrics.invalid.labels(MALFORMED).inc()
            return False
        if batch.producer is not None:
            seen = self.dedupe.see(batch.producer, batch.seq, batch.row, len(batch.values))
            if seen.skipped:
                self.metrics.gaps.inc(seen.skipped)
                self.metrics.gap_rows.inc(seen.skipped_rows)
            if not seen.first:
                self.metrics.duplicates.inc()
                return False
        tracked = self._tracked(batch.model, batch.version, batch.features)
        if tracked is None:
            self.metrics.invalid.labels(NO_REFERENCE).inc()
            return False
        values = batch.values
        if values.size and (values.min() < -MAX_ABS or values.max() > MAX_ABS):
            kept = np.all(np.abs(values) <= MAX_ABS, axis=1)
            self.metrics.invalid.labels(OUT_OF_RANGE).inc()
            self.metrics.invalid_rows.labels(OUT_OF_RANGE).inc(int(values.shape[0] - kept.sum()))
            values = values[kept]
        columns = {}
        for j, (name, feature) in enumerate(zip(batch.features, tracked, strict=True)):
            column = columns[name] = values[:, j]
            if feature is not None:
                feature.drift.add_many(column)
                self._touched.add(feature)
        self._judge(batch.model, batch.version, columns)
        self.metrics.consumed.inc()
        self.changed = True
        return True

    def _judge(self, model: str, version: str, columns: dict[str, np.ndarray]):
        """Add the message to its version's window; export the verdict if one was due."""
        key = (model, version)
        if key not in self.windows:
            self.windows[key] = VersionWindow.from_reference_stats(self.references.get(key), self.settings.verdict)
        window = self.windows[key]
        verdict = window.add(columns, self.clock()) if window is not None else None
        if verdict is None:
            return None
        self.metrics.verdicts.labels(model, version).inc()
        self._export_verdict(key, verdict, time.time())  # wall time, for Prometheus' time()
        return verdict

    def _export_verdict(self, key: tuple[str, str], verdict: Verdict, at: float) -> None:
        m, (model, version) = self.metrics, key
        for feature, results in verdict.features.items():
            for test, value in results.items():
                m.statistic.labels(model, version, feature, test).set(value)
            for test, flag in verdict.flags[feature].items():
                m.drifting.labels(model, version, feature, test).set(int(flag))
        m.share.labels(model, version).set(verdict.share)
        m.detected.labels(model, version).set(int(verdict.detected))
        m.verdict_rows.labels(model, version).set(verdict.rows)
        m.verdict_time.labels(model, version).set(at)
        self.verdict_times[key] = at

    def _tracked(self, model: str, version: str, features: list[str]) -> list["Tracked | None"] | None:
        """The tracked features of a message's model version (None where a feature has no reference:
        an older archive than the message's columns), or None without usable reference statistics."""
        found = self._by_message.get((model, version, *features))
        if found is not None:
            return found
        key = (model, version)
        if key not in self.references:
            self.references.update(load_references(self.settings.model_store))  # a version deployed since
        reference = self.references.get(key)
        known = [f for f in features if has_reference(reference, [f])]
        if not known:
            return None  # not cached: the version's statistics may arrive with its archive
        found = []
        for f in features:
            if f in known and (model, version, f) not in self.features:
                self.features[(model, version, f)] = Tracked.start(
                    self.metrics, (model, version, f), reference[f], self.settings.window
                )
            found.append(self.features.get((model, version, f)) if f in known else None)
        self._by_message[(model, version, *features)] = found
        return found

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, reconnecting whenever the broker goes away."""
        from kafka.errors import KafkaError

        backoff = 0.5
        while not stop.is_set():
            consumer = admin = None
            try:
                consumer, admin = self._connect()
                self.metrics.broker_up.set(1)
                backoff = 0.5
                self._consume(consumer, admin, stop)
            except (KafkaError, OSError, BrokerUnavailable) as exc:
                self.metrics.broker_up.set(0)
                logger.warning("drift consumer: broker unavailable (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                for client, close in ((consumer, {"autocommit": False}), (admin, {})):
                    if client is not None:
                        with contextlib.suppress(Exception):  # closing a client of a dead broker
                            client.close(**close)
        if self.settings.snapshot is not None:
            self.save_snapshot()  # on SIGTERM: what was processed since the last one

    def _connect(self):
        from kafka import KafkaConsumer, TopicPartition
        from kafka.admin import KafkaAdminClient

        s = self.settings
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap, bootstrap_timeout_ms=5000, request_timeout_ms=10000)
        try:
            ensure_topic(s.bootstrap, s.topic, admin, s.max_mb)  # gone after a restart of the in-memory broker
            consumer = KafkaConsumer(
                bootstrap_servers=s.bootstrap, group_id=s.group_id, enable_auto_commit=False,
                auto_offset_reset="earliest", request_timeout_ms=10000, bootstrap_timeout_ms=5000,
                reconnect_backoff_max_ms=5000, consumer_timeout_ms=-1,
                allow_auto_create_topics=False,  # a restarted Tansu would create it with 4 partitions
            )  # fmt: skip
        except BaseException:
            admin.close()
            raise
        partitions = consumer.partitions_for_topic(s.topic)
        if not partitions:
            consumer.close()
            admin.close()
            raise BrokerUnavailable(f"topic {s.topic} has no partitions yet")
        # Manual assignment, offsets committed under the group id: resumes from the
        # last commit without a group join (10-25 s on this broker).
        consumer.assign([TopicPartition(s.topic, p) for p in sorted(partitions)])
        return consumer, admin

    def _consume(self, consumer, admin, stop: threading.Event) -> None:
        self._check(consumer, admin)  # at once: a committed offset may lie beyond a new topic's end
        self._resume(consumer)
        last_check = last_snapshot = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - last_check > self.settings.check_s:
                self._check(consumer, admin)
                last_check = time.monotonic()
            batches = consumer.poll(timeout_ms=self.settings.poll_ms, max_records=self.settings.max_records)
            for records in batches.values():
                for record in records:
                    self._guarded(record.value)
                    self.positions[record.partition] = record.offset + 1
                    self.changed = True  # a skipped message moves the offsets too
            self.export()
            if batches:
                consumer.commit()
            if self.settings.snapshot is not None and time.monotonic() - last_snapshot >= self.settings.snapshot_s:
                self.save_snapshot()
                last_snapshot = time.monotonic()

    def _resume(self, consumer) -> None:
        """Read on from the offsets the statistics include (a snapshot's, or this process's before a
        reconnection), not from the group's committed ones, if they are of the topic now there:
        a message is then counted once whether the snapshot or the commit came last."""
        if self.positions_tid and self.topic_id and self.positions_tid != self.topic_id:
            logger.warning(
                "drift consumer: the statistics' offsets are of topic id %s, the topic is now %s: statistics "
                "kept, reading from the committed offsets", self.positions_tid, self.topic_id,
            )  # fmt: skip
            self.positions = {}
        for tp in sorted(consumer.assignment()):
            if tp.partition in self.positions:
                consumer.seek(tp, self.positions[tp.partition])
        self.positions_tid = self.topic_id or self.positions_tid

    def _check(self, consumer, admin) -> None:
        """Recreate a missing topic, restart a replaced one from its start, export the lag."""
        from kafka import TopicPartition

        topic = self.settings.topic
        described = describe(admin, topic)
        if described is None:
            logger.warning("drift consumer: the broker has no topic %s; creating it", topic)
            ensure_topic(self.settings.bootstrap, topic, admin, self.settings.max_mb)
            described = describe(admin, topic) or ("", [])
        tid, partitions = described
        self.topic_id = tid
        wanted = {TopicPartition(topic, p) for p in partitions}
        if wanted and wanted != consumer.assignment():
            # Someone made the topic with more partitions (a client that auto-creates it):
            # read them all rather than miss what lands on the others.
            logger.warning("drift consumer: topic %s has partitions %s; reading all of them", topic, partitions)
            consumer.assign(sorted(wanted))
        lag = 0
        for tp in sorted(consumer.assignment()):
            end = consumer.highwater(tp)
            if tp in self.stale and end == self.stale[tp]:
                end = None  # the old topic's, until a fetch from the new one answers
            else:
                self.stale.pop(tp, None)
            now, position = PartitionView(tid, end), consumer.position(tp)
            reason = reset_reason(self.seen.get(tp), now, position)
            if reason is not None:
                before = self.seen.get(tp)
                logger.warning(
                    "drift consumer: topic %s partition %d was replaced (%s: topic id %s -> %s, end %s -> %s, "
                    "read position %d); reading it again from offset 0",
                    topic, tp.partition, reason, before and before.topic_id, tid, before and before.end, now.end,
                    position,
                )  # fmt: skip
                self.metrics.resets.labels(reason).inc()
                consumer.seek_to_beginning(tp)
                position = consumer.position(tp)
                self.positions[tp.partition], self.positions_tid = position, tid or self.positions_tid
                consumer.commit()  # else a restart would find the old offset beyond the end and reset again
                if before is not None and now.end is not None and now.end == before.end:
                    # Unchanged since the old topic's last check: likely still the old topic's.
                    self.stale[tp], now = now.end, PartitionView(tid, None)
            self.seen[tp] = now
            lag += max((now.end or 0) - position, 0)
        self.metrics.lag.set(lag)
        self.metrics.broker_up.set(1)

    def state(self) -> dict:
        """Everything the statistics are, with the offsets they include (snapshot.py)."""
        now = self.clock()
        return {
            "topic": self.settings.topic, "group_id": self.settings.group_id, "written_at": time.time(),
            "topic_id": self.positions_tid, "offsets": {str(p): o for p, o in sorted(self.positions.items())},
            "features": [
                {"model": m, "version": v, "feature": f, **t.drift.state()} for (m, v, f), t in self.features.items()
            ],
            "versions": [
                {"model": m, "version": v, "verdict_time": self.verdict_times.get((m, v)), **w.state(now)}
                for (m, v), w in self.windows.items() if w is not None
            ],
            "dedupe": self.dedupe.state(),
        }  # fmt: skip

    def save_snapshot(self) -> bool:
        """Write the snapshot if anything changed since the last one; never raises (a full disk
        is logged and counted, and the consumer goes on)."""
        if not self.changed:
            return False
        try:
            snapshot.write(self.settings.snapshot, self.state())
        except (OSError, ValueError, TypeError) as exc:
            self.metrics.snapshot_errors.inc()
            logger.warning("drift consumer: could not write the snapshot %s (%s)", self.settings.snapshot, exc)
            return False
        self.changed = False
        self.metrics.snapshot_time.set(time.time())
        return True

    def load_snapshot(self) -> str:
        """Restore the statistics from the snapshot, if there is one; the result, as counted. A file
        that is not a snapshot of this consumer leaves it empty: one line logged, the file set aside."""
        path = self.settings.snapshot
        try:
            state = snapshot.read(path, self.settings.topic, self.settings.group_id)
            if state is not None:
                self.restore(state)
            result = snapshot.MISSING if state is None else snapshot.LOADED
        except snapshot.SnapshotRejected as exc:
            result = exc.reason
            aside = None
            with contextlib.suppress(OSError):
                aside = snapshot.set_aside(path)
            logger.warning("drift consumer: snapshot %s rejected (%s); starting with empty statistics; "
                           "the file is now %s", path, exc, aside)  # fmt: skip
        self.metrics.snapshot_loads.labels(result).inc()
        return result

    def restore(self, state: dict) -> None:
        """Take the statistics back from a snapshot's state; SnapshotRejected (corrupt) if any part
        of it is malformed, and then nothing is taken."""
        try:
            downtime = max(time.time() - float(state["written_at"]), 0.0)
            now = self.clock()
            window_size = self.settings.window
            drifts = {
                (str(e["model"]), str(e["version"]), str(e["feature"])): FeatureDrift.from_state(window_size, e)
                for e in state["features"]
            }
            windows = {}
            for e in state["versions"]:
                key = (str(e["model"]), str(e["version"]))
                if key not in self.references:
                    self.references.update(load_references(self.settings.model_store))
                window = VersionWindow.from_reference_stats(self.references.get(key), self.settings.verdict)
                if window is not None:  # an archive without sketches since: nothing to judge
                    window.restore(e, now - downtime, now)
                    at = e["verdict_time"]
                    windows[key] = window, (float(at) if at is not None else None)
            positions = {int(p): int(o) for p, o in state["offsets"].items()}
            tid = state["topic_id"]
            tid = None if tid is None else str(tid)
            dedupe = Dedupe(self.dedupe.window, self.dedupe.max_producers)
            dedupe.restore(state.get("dedupe", {}))  # none in a snapshot from before the ids
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise snapshot.SnapshotRejected(snapshot.CORRUPT, f"malformed ({type(exc).__name__}: {exc})") from None
        for (model, version, feature), drift in drifts.items():
            (tracked,) = self._tracked(model, version, [feature]) or (None,)
            if tracked is not None:  # else the version's reference is gone: nothing to compare with
                tracked.drift = drift
                tracked.export(self.settings.min_samples)
        for key, (window, at) in windows.items():
            self.windows[key] = window
            if window.last is not None and at is not None:
                self._export_verdict(key, window.last, at)
        self.positions, self.positions_tid, self.dedupe = positions, tid, dedupe
