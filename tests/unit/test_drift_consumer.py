"""DriftConsumer.process: the statistics and metrics it keeps, without a broker."""

import json
import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from simulator.kafka_producer.stream import Drift, messages
from twinserve.drift.consumer import ConsumerSettings, DriftConsumer, load_references
from twinserve.drift.messages import encode
from twinserve.drift.stats import FeatureDrift

REFERENCE = {
    "x1": {"count": 1000, "mean": 0.5, "std": math.sqrt(1 / 12)},
    "x2": {"count": 1000, "mean": 0.5, "std": 0.3},
}


def make_consumer(tmp_path, window=500, min_samples=100):
    settings = ConsumerSettings("unused:9092", "inputs", window=window, min_samples=min_samples, model_store=tmp_path)
    registry = CollectorRegistry()
    return DriftConsumer(settings, registry, references={("regressor", "1.0"): REFERENCE}), registry


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_statistics_and_zscores_are_exported_per_model_version_and_feature(tmp_path):
    consumer, registry = make_consumer(tmp_path)
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6], [0.4, 0.8]]))
    labels = {"model": "regressor", "version": "1.0", "feature": "x1"}
    assert sample(registry, "twinserve_drift_count", **labels) == 2
    assert sample(registry, "twinserve_drift_mean", **labels) == pytest.approx(0.3)
    assert sample(registry, "twinserve_drift_window_count", **labels) == 2
    assert sample(registry, "twinserve_drift_reference_mean", **labels) == 0.5
    assert sample(registry, "twinserve_drift_zscore", **labels) is None  # below min_samples
    assert sample(registry, "twinserve_drift_messages_total") == 1


def test_a_seeded_undrifted_stream_stays_calm_and_a_shift_is_detected(tmp_path):
    consumer, registry = make_consumer(tmp_path)
    labels = {"model": "regressor", "version": "1.0", "feature": "x1"}
    for raw in messages("regressor", "1.0", REFERENCE, 1000, seed=3):
        consumer.process(raw)
    assert abs(sample(registry, "twinserve_drift_zscore", **labels)) < 3
    drifted = messages("regressor", "1.0", REFERENCE, 200, drift=Drift("x1", 1.0, after=0), seed=4)
    for raw in drifted:
        consumer.process(raw)
    # 200 of the window's 500 values moved by one std: z ~ 200/sqrt(500) ~ 9
    assert sample(registry, "twinserve_drift_zscore", **labels) > 4
    assert abs(sample(registry, "twinserve_drift_zscore", model="regressor", version="1.0", feature="x2")) < 3


def test_malformed_and_unknown_messages_are_counted_and_skipped(tmp_path):
    consumer, registry = make_consumer(tmp_path)
    assert not consumer.process(b"{broken")
    assert not consumer.process(encode("regressor", "9.9", ["x1", "x2"], [[0.1, 0.2]]))
    assert not consumer.process(encode("regressor", "1.0", ["x7"], [[0.1]]))
    assert sample(registry, "twinserve_drift_invalid_messages_total", reason="malformed") == 1
    assert sample(registry, "twinserve_drift_invalid_messages_total", reason="no reference statistics") == 2
    assert sample(registry, "twinserve_drift_messages_total") == 0
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[0.1, 0.2]]))


def test_references_of_a_version_deployed_later_are_picked_up_from_the_model_store(tmp_path):
    consumer, registry = make_consumer(tmp_path)
    meta = {"model_name": "regressor", "version": "2.0", "reference_stats": REFERENCE}
    (tmp_path / "regressor-2.0.json").write_text(json.dumps(meta))
    (tmp_path / "garbage.json").write_text("not json")
    assert consumer.process(encode("regressor", "2.0", ["x1", "x2"], [[0.1, 0.2]]))
    assert set(load_references(tmp_path)) == {("regressor", "2.0")}


def test_the_simulated_stream_is_reproducible_and_refuses_an_unknown_feature():
    first = list(messages("regressor", "1.0", REFERENCE, 5, rows_per_message=3, seed=9))
    assert first == list(messages("regressor", "1.0", REFERENCE, 5, rows_per_message=3, seed=9))
    assert first != list(messages("regressor", "1.0", REFERENCE, 5, rows_per_message=3, seed=10))
    with pytest.raises(ValueError, match="unknown feature"):
        list(messages("regressor", "1.0", REFERENCE, 5, drift=Drift("x9", 1.0)))


def test_a_row_with_a_huge_value_is_dropped_counted_and_its_message_still_used(tmp_path):
    """Finding 2 of issue 13: {"data": [[1e200, 0.5], [0.2, 0.6]]} used to kill the consumer for good."""
    consumer, registry = make_consumer(tmp_path)
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[1e200, 0.5], [0.2, 0.6]]))
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[0.4, -1e101]]))  # nothing left: still fine
    labels = {"model": "regressor", "version": "1.0", "feature": "x1"}
    assert sample(registry, "twinserve_drift_count", **labels) == 1
    assert sample(registry, "twinserve_drift_mean", **labels) == pytest.approx(0.2)
    assert sample(registry, "twinserve_drift_invalid_messages_total", reason="value out of range") == 2
    assert sample(registry, "twinserve_drift_invalid_rows_total", reason="value out of range") == 2
    assert sample(registry, "twinserve_drift_messages_total") == 2
    for raw in messages("regressor", "1.0", REFERENCE, 300, seed=5):  # later messages are counted as ever
        assert consumer.process(raw)
    assert sample(registry, "twinserve_drift_count", **labels) == 301
    assert abs(sample(registry, "twinserve_drift_zscore", **labels)) < 4


def test_values_at_the_limit_are_taken():
    consumer, registry = make_consumer(Path("/nonexistent"), min_samples=1)
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[1e100, -1e100], [0.0, 0.0]]))
    assert sample(registry, "twinserve_drift_std", model="regressor", version="1.0", feature="x1") > 1e99
    assert sample(registry, "twinserve_drift_invalid_rows_total", reason="value out of range") == 0


def test_a_feature_without_training_spread_says_so_instead_of_raising(tmp_path):
    """Issue 18, item 5: a reference std of 0 used to raise ValueError, taken for "broker unavailable"."""
    reference = {"x1": {"mean": 1.0, "std": 0.0}, "x2": {"mean": 0.5, "std": 0.3}}
    settings = ConsumerSettings("unused:9092", "inputs", min_samples=1, model_store=tmp_path)
    registry = CollectorRegistry()
    consumer = DriftConsumer(settings, registry, references={("constant", "1.0"): reference})
    assert consumer.process(encode("constant", "1.0", ["x1", "x2"], [[1.0, 0.5], [1.0, 0.8]]))
    x1 = {"model": "constant", "version": "1.0", "feature": "x1"}
    x2 = {**x1, "feature": "x2"}
    assert sample(registry, "twinserve_drift_zero_spread", **x1) == 1
    assert sample(registry, "twinserve_drift_zscore", **x1) is None
    assert sample(registry, "twinserve_drift_window_mean", **x1) == 1.0
    assert sample(registry, "twinserve_drift_zero_spread", **x2) == 0
    assert sample(registry, "twinserve_drift_zscore", **x2) == pytest.approx((0.65 - 0.5) / (0.3 / math.sqrt(2)))
    assert sample(registry, "twinserve_drift_messages_total") == 1


@pytest.mark.parametrize("reference", [{"x1": {"std": 1.0}}, {"x1": {"mean": None}}, {"x1": 3}, {"x1": {"mean": "0"}}])
def test_a_reference_without_a_usable_mean_is_no_reference(tmp_path, reference):
    settings = ConsumerSettings("unused:9092", "inputs", model_store=tmp_path)
    registry = CollectorRegistry()
    consumer = DriftConsumer(settings, registry, references={("m", "1"): reference})
    assert not consumer.process(encode("m", "1", ["x1"], [[0.1]]))
    assert sample(registry, "twinserve_drift_invalid_messages_total", reason="no reference statistics") == 1


def test_a_message_whose_processing_fails_is_counted_and_the_next_one_is_processed(tmp_path, monkeypatch, caplog):
    consumer, registry = make_consumer(tmp_path)
    original = FeatureDrift.add_many
    calls = []

    def fails_once(self, xs):
        calls.append(xs)
        if len(calls) == 1:
            raise ArithmeticError("a bug in the statistics")
        return original(self, xs)

    monkeypatch.setattr(FeatureDrift, "add_many", fails_once)
    assert not consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6]]))
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6]]))
    assert sample(registry, "twinserve_drift_invalid_messages_total", reason="processing error") == 1
    assert sample(registry, "twinserve_drift_messages_total") == 1
    assert "failed; counted and skipped" in caplog.text


def sketched_consumer(tmp_path):
    """A consumer whose reference has KLL sketches (as the archiver writes) of x1, x2 and the prediction."""
    import numpy as np

    from archiver.reference import column_reference
    from twinserve.drift.detect import VerdictSettings

    rng = np.random.default_rng(5)
    reference = {f: column_reference(rng.random(4000)) for f in ("x1", "x2", "prediction")}
    settings = ConsumerSettings(
        "unused:9092", "inputs", model_store=tmp_path, verdict=VerdictSettings(min_rows=400, every=200)
    )
    registry = CollectorRegistry()
    clock = [0.0]
    consumer = DriftConsumer(settings, registry, {("regressor", "2.0"): reference}, clock=lambda: clock[0])
    return consumer, registry, rng


def test_the_verdict_is_exported_per_model_version_and_turns_on_for_a_doubled_spread(tmp_path):
    consumer, registry, rng = sketched_consumer(tmp_path)
    version = {"model": "regressor", "version": "2.0"}
    for _ in range(20):  # old messages: inputs only, no prediction column
        assert consumer.process(encode("regressor", "2.0", ["x1", "x2"], rng.random((50, 2)).tolist()))
    assert sample(registry, "twinserve_drift_detected", **version) == 0
    assert sample(registry, "twinserve_drift_verdicts_total", **version) >= 1
    assert sample(registry, "twinserve_drift_verdict_timestamp_seconds", **version) > 1.7e9  # wall time
    x1 = {**version, "feature": "x1"}
    assert sample(registry, "twinserve_drift_feature_drifting", **x1, test="verdict") == 0
    assert sample(registry, "twinserve_drift_feature_statistic", **x1, test="ks_pvalue") > 0.001
    assert sample(registry, "twinserve_drift_feature_statistic", **version, feature="prediction", test="ks") is None
    for _ in range(40):
        rows = rng.random((50, 3))
        rows[:, 0] = 0.5 + 2 * (rows[:, 0] - 0.5)
        assert consumer.process(encode("regressor", "2.0", ["x1", "x2", "prediction"], rows.tolist()))
    assert sample(registry, "twinserve_drift_detected", **version) == 1
    assert sample(registry, "twinserve_drift_share", **version) == pytest.approx(1 / 3)
    assert sample(registry, "twinserve_drift_feature_drifting", **x1, test="ks") == 1
    assert sample(registry, "twinserve_drift_feature_drifting", **version, feature="x2", test="verdict") == 0
    assert sample(registry, "twinserve_drift_verdict_window_rows", **version) == 2000


def test_a_column_the_reference_lacks_is_ignored_and_the_others_used(tmp_path):
    """A newer handler (with the prediction) in front of an archive built before the sketches."""
    consumer, registry = make_consumer(tmp_path)
    assert consumer.process(encode("regressor", "1.0", ["x1", "x2", "prediction"], [[0.2, 0.6, 1.0]]))
    assert sample(registry, "twinserve_drift_count", model="regressor", version="1.0", feature="x1") == 1
    assert sample(registry, "twinserve_drift_count", model="regressor", version="1.0", feature="prediction") is None


def test_the_consumer_takes_its_verdict_settings_from_the_stacks_drift_section(tmp_path):
    import yaml

    from tests.unit.stacks import raw_copy
    from twinserve.settings import load_stack

    raw = raw_copy()
    raw["model_store"] = str(tmp_path)
    raw["drift"]["verdict"] = {"max_rows": 3000, "min_rows": 700, "every": 100, "alpha": 0.01}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(raw))
    v = ConsumerSettings.from_stack(load_stack(tmp_path / "stack.yaml")).verdict
    assert (v.max_rows, v.min_rows, v.every, v.alpha) == (3000, 700, 100, 0.01)


def test_a_message_read_again_is_counted_as_a_duplicate_not_as_rows_and_a_gap_is_counted(tmp_path):
    consumer, registry = make_consumer(tmp_path)
    stamped = [encode("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6]] * 3, ("p1", s, 3 * s)) for s in range(4)]
    assert all(consumer.process(raw) for raw in stamped[:2])
    assert not any(consumer.process(raw) for raw in stamped[:2])  # read again (a topic re-read from 0)
    assert consumer.process(stamped[3])  # seq 2 never arrives
    labels = {"model": "regressor", "version": "1.0", "feature": "x1"}
    assert sample(registry, "twinserve_drift_count", **labels) == 9
    assert sample(registry, "twinserve_drift_duplicate_messages_total") == 2
    assert sample(registry, "twinserve_drift_gap_messages_total") == 1
    assert sample(registry, "twinserve_drift_gap_rows_total") == 3
    assert sample(registry, "twinserve_drift_messages_total") == 3
    plain = encode("regressor", "1.0", ["x1", "x2"], [[0.2, 0.6]])
    assert consumer.process(plain) and consumer.process(plain)  # unstamped (the simulator's): taken as it comes
    assert sample(registry, "twinserve_drift_count", **labels) == 11
