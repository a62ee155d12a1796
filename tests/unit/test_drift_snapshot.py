"""The drift consumer's snapshot (twinserve/drift/snapshot.py): its statistics across a restart."""

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from archiver.reference import column_reference
from twinserve.drift import snapshot
from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.drift.detect import VerdictSettings
from twinserve.drift.messages import encode

RNG = np.random.default_rng(11)
REFERENCE = {f: column_reference(RNG.random(4000)) for f in ("x1", "x2", "prediction")}
PLAIN = {"x1": {"count": 1000, "mean": 0.5, "std": 0.29}}  # no sketch: z-scores only
VERSION = {"model": "regressor", "version": "2.0"}


def consumer(tmp_path, clock=None, topic="inputs", group="twinserve-drift"):
    settings = ConsumerSettings(
        "unused:9092", topic, group_id=group, model_store=tmp_path / "store", snapshot=tmp_path / "snap.json",
        verdict=VerdictSettings(min_rows=400, every=200),
    )  # fmt: skip
    registry = CollectorRegistry()
    references = {("regressor", "2.0"): REFERENCE, ("plain", "1"): PLAIN}
    return DriftConsumer(settings, registry, references, clock=clock or (lambda: 0.0)), registry


def exported(registry, timestamps=True) -> dict:
    """Every sample of the statistics' gauges (not the process's counters)."""
    keep = ("twinserve_drift_count", "twinserve_drift_mean", "twinserve_drift_std", "twinserve_drift_window",
            "twinserve_drift_zscore", "twinserve_drift_feature_", "twinserve_drift_share", "twinserve_drift_detected",
            "twinserve_drift_verdict_window_rows", "twinserve_drift_verdict_timestamp")  # fmt: skip
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name.startswith(keep) and (timestamps or "timestamp" not in s.name)
    }


def feed(c, messages=30, start=0):
    rng = np.random.default_rng(start)
    for i in range(messages):
        rows = rng.random((50, 3))
        rows[:, 0] = 0.5 + 2 * (rows[:, 0] - 0.5)  # x1's spread doubled: the verdict turns on
        assert c.process(encode("regressor", "2.0", ["x1", "x2", "prediction"], rows.tolist()))
        assert c.process(encode("plain", "1", ["x1"], [[0.4 + 0.001 * i]]))


def test_the_statistics_come_back_from_the_snapshot_exactly_as_they_were_exported(tmp_path):
    first, registry = consumer(tmp_path)
    feed(first)
    first.positions, first.positions_tid = {0: 61}, "topic-a"
    assert first.save_snapshot()
    before = exported(registry)
    assert registry.get_sample_value("twinserve_drift_detected", VERSION) == 1
    assert registry.get_sample_value("twinserve_drift_window_count", {**VERSION, "feature": "x1"}) == 500

    second, registry2 = consumer(tmp_path)
    assert registry2.get_sample_value("twinserve_drift_snapshot_loads_total", {"result": "restored"}) == 1
    assert exported(registry2) == before
    assert (second.positions, second.positions_tid) == ({0: 61}, "topic-a")
    # and they go on as if there had been no restart: the same messages give the same figures
    feed(first, 10, start=99)
    feed(second, 10, start=99)
    assert exported(registry2, timestamps=False) == exported(registry, timestamps=False)  # new verdicts: now


def test_the_window_keeps_its_age_across_the_restart_and_the_time_bound_applies(tmp_path, monkeypatch):
    clock = [1000.0]
    first, _ = consumer(tmp_path, clock=lambda: clock[0])
    feed(first, 12)
    window = first.windows[("regressor", "2.0")]
    assert window.rows == 600
    first.save_snapshot()
    # restarted 899 s later (the window holds 900 s): a new process, a new monotonic clock
    written = json.loads((tmp_path / "snap.json").read_text())["written_at"]
    monkeypatch.setattr("time.time", lambda: written + 899.0)
    second, _ = consumer(tmp_path, clock=lambda: 5.0)
    restored = second.windows[("regressor", "2.0")]
    assert restored.rows == 600 and restored.blocks[0][0] == pytest.approx(5.0 - 899.0)
    restored._trim(7.0)  # two seconds on: the oldest rows are past max_age_s
    assert restored.rows < 600


def test_no_snapshot_is_an_empty_start_and_nothing_is_written_before_a_message(tmp_path):
    c, registry = consumer(tmp_path)
    assert registry.get_sample_value("twinserve_drift_snapshot_loads_total", {"result": "none"}) == 1
    assert not c.save_snapshot() and not (tmp_path / "snap.json").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x00\xff garbage", "corrupt"),
        (
            b'{"format": "twinserve-drift-snapshot/1", "topic": "inputs", "group_id": "twinserve-drift", "feat',
            "corrupt",
        ),
        (b"[]", "foreign"),
        (b'{"format": "someone-else/3"}', "foreign"),
        (b'{"format": "twinserve-drift-snapshot/1", "topic": "other", "group_id": "twinserve-drift"}', "foreign"),
    ],
)
def test_a_corrupt_or_foreign_snapshot_is_an_empty_start_counted_logged_and_set_aside(
    tmp_path, caplog, content, reason
):
    (tmp_path / "snap.json").write_bytes(content)
    c, registry = consumer(tmp_path)
    assert registry.get_sample_value("twinserve_drift_snapshot_loads_total", {"result": reason}) == 1
    assert c.features == {} and c.positions == {}
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "rejected" in caplog.text
    assert (tmp_path / "snap.json.rejected").read_bytes() == content
    feed(c, 2)
    assert c.save_snapshot()  # and the next snapshot is a good one
    assert consumer(tmp_path)[1].get_sample_value("twinserve_drift_snapshot_loads_total", {"result": "restored"}) == 1


def test_a_snapshot_malformed_inside_takes_nothing_back(tmp_path):
    first, _ = consumer(tmp_path)
    feed(first, 12)
    first.save_snapshot()
    state = json.loads((tmp_path / "snap.json").read_text())
    state["versions"][0]["blocks"][-1][1]["x1"][3] = "NaN?"  # after every feature was read back
    (tmp_path / "snap.json").write_text(json.dumps(state))
    second, registry = consumer(tmp_path)
    assert registry.get_sample_value("twinserve_drift_snapshot_loads_total", {"result": "corrupt"}) == 1
    assert second.features == {} and second.windows == {}
    assert registry.get_sample_value("twinserve_drift_count", {**VERSION, "feature": "x1"}) is None


def test_an_unwritable_snapshot_is_counted_and_the_consumer_goes_on(tmp_path):
    c, registry = consumer(tmp_path)
    (tmp_path / "snap.json").mkdir()  # a directory where the file should go: the rename fails
    feed(c, 1)
    assert not c.save_snapshot()
    assert registry.get_sample_value("twinserve_drift_snapshot_write_errors_total") == 1
    feed(c, 1)


def test_the_snapshot_file_is_replaced_whole(tmp_path):
    c, _ = consumer(tmp_path)
    feed(c, 1)
    c.save_snapshot()
    feed(c, 1)
    c.save_snapshot()
    assert [p.name for p in tmp_path.iterdir() if p.name != "store"] == ["snap.json"]  # no temp file left
    assert snapshot.read(tmp_path / "snap.json", "inputs", "twinserve-drift")["features"]


def test_the_message_ids_seen_survive_the_snapshot_so_a_re_read_after_a_restart_counts_nothing_twice(tmp_path):
    first, registry = consumer(tmp_path)
    stamped = [encode("plain", "1", ["x1"], [[0.4]], ("p1", s, s)) for s in range(3)]
    assert all(first.process(raw) for raw in stamped)
    assert first.save_snapshot()
    again, registry = consumer(tmp_path)
    assert not any(again.process(raw) for raw in stamped)
    assert registry.get_sample_value("twinserve_drift_duplicate_messages_total") == 3
    assert registry.get_sample_value("twinserve_drift_count", {"model": "plain", "version": "1", "feature": "x1"}) == 3
    state = json.loads((tmp_path / "snap.json").read_text())
    del state["dedupe"]  # a snapshot from before the ids: restored, with none seen
    (tmp_path / "snap.json").write_text(json.dumps(state))
    older, registry = consumer(tmp_path)
    assert registry.get_sample_value("twinserve_drift_snapshot_loads_total", {"result": "restored"}) == 1
    assert older.process(stamped[0])
    state["dedupe"] = {"p1": {"high": "three"}}
    (tmp_path / "snap.json").write_text(json.dumps(state))
    _, registry = consumer(tmp_path)
    assert registry.get_sample_value("twinserve_drift_snapshot_loads_total", {"result": "corrupt"}) == 1
