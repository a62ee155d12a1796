"""twinserve/drift/detect.py: the tests per feature against a KLL reference, the window and the verdict."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from archiver.reference import column_reference
from twinserve.drift.detect import (
    Reference,
    VerdictSettings,
    VersionWindow,
    drifting,
    feature_tests,
    ks_pvalue,
    ks_statistic,
    wasserstein_sorted,
)  # fmt: skip
from twinserve.errors import ConfigError

RNG = np.random.default_rng(7)
TRAINING = RNG.random((8192, 2))
STATS = {"x1": column_reference(TRAINING[:, 0]), "x2": column_reference(TRAINING[:, 1])}


def window(settings: VerdictSettings | None = None):
    return VersionWindow.from_reference_stats(STATS, settings)


def feed(w, x1, x2, start=0.0, per=50):
    verdicts = []
    for i in range(0, len(x1), per):
        v = w.add({"x1": x1[i : i + per], "x2": x2[i : i + per]}, start + i / per)
        verdicts += [v] if v else []
    return verdicts


def test_the_reference_cdf_is_the_training_distributions():
    ref = Reference.from_entry(STATS["x1"])
    assert ref.count == 8192 and ref.mean == pytest.approx(0.5, abs=0.02)
    assert ref.cdf(np.array([-1.0, 0.25, 0.5, 0.75, 2.0])) == pytest.approx([0, 0.25, 0.5, 0.75, 1], abs=0.02)
    assert ref.psi_shares() == pytest.approx([0.1] * 10, abs=0.002)  # the 1001-point grid


def test_an_entry_without_a_sketch_has_no_distribution_reference():
    assert Reference.from_entry({"mean": 0.5, "std": 0.3}) is None
    assert VersionWindow.from_reference_stats({"x1": {"mean": 0.5, "std": 0.3}}) is None


def test_undrifted_values_pass_every_test_and_a_doubled_spread_fails_ks_and_wasserstein():
    ref = Reference.from_entry(STATS["x1"])
    calm = feature_tests(RNG.random(2000), ref, n_features=2)
    assert calm["ks_pvalue"] > 0.001 and calm["wasserstein"] < 0.05 and calm["psi"] < 0.05 and abs(calm["zscore"]) < 4
    assert not any(drifting(calm, VerdictSettings()).values())
    spread = 0.5 + 2 * (RNG.random(2000) - 0.5)
    wide = feature_tests(spread, ref, n_features=2)
    flags = drifting(wide, VerdictSettings())
    assert flags["ks"] and flags["wasserstein"] and flags["psi"] and flags["verdict"]
    assert abs(wide["zscore"]) < 4, "the same mean: the z-score cannot see it"


def test_the_ks_pvalue_is_bonferroni_corrected_over_the_features():
    ref = Reference.from_entry(STATS["x1"])
    values = RNG.random(1000) * 0.97
    one, three = feature_tests(values, ref, 1), feature_tests(values, ref, 3)
    assert three["ks_pvalue"] == pytest.approx(min(3 * one["ks_pvalue"], 1.0))


@pytest.mark.parametrize("shape", ["calm", "shifted", "wide", "ties"])
def test_the_hand_written_ks_and_wasserstein_are_scipys(shape):
    """detect.py computes them on the sorted window for speed; scipy.stats is the reference."""
    values = {
        "calm": RNG.random(2000), "shifted": RNG.random(1500) + 0.1, "wide": 0.5 + 2 * (RNG.random(700) - 0.5),
        "ties": np.round(RNG.random(600), 1),  # repeated values: the CDF's steps
    }[shape]  # fmt: skip
    ref = Reference.from_entry(STATS["x1"])
    x = np.sort(values)
    assert ks_statistic(x, ref) == pytest.approx(sps.kstest(values, ref.cdf).statistic, rel=1e-12, abs=1e-15)
    expected = sps.wasserstein_distance(values, ref.quantiles)
    assert wasserstein_sorted(x, ref.quantiles) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("n", [500, 1000, 2000])
def test_the_asymptotic_ks_pvalue_is_kolmogorovs_and_a_little_above_the_exact_one_near_the_threshold(n):
    """The p-value is the limit distribution's (kstwobign); against scipy's exact kstwo at the
    effective size, on the windows of the verdict (500-2,000 rows against 8,192), it is within
    +0-10% from p = 1e-2 down to 1e-4: a little conservative where alpha (1e-3 / features) lies."""
    m = 8192
    n_eff = n * m / (n + m)
    for p in (1e-2, 1e-3, 3e-4, 1e-4):
        d = sps.kstwo.isf(p, round(n_eff))
        assert ks_pvalue(d, n, m) == pytest.approx(sps.kstwobign.sf(math.sqrt(n_eff) * d), rel=1e-12)
        assert p <= ks_pvalue(d, n, m) <= 1.1 * p
    # and on actual windows, drifted or not, against the exact two-sample p-value at n_eff
    ref = Reference.from_entry(STATS["x1"])
    for values in (RNG.random(n), RNG.random(n) * 0.95, 0.5 + 1.3 * (RNG.random(n) - 0.5)):
        d = ks_statistic(np.sort(values), ref)
        exact = sps.kstwo.sf(d, round(n_eff))
        assert exact <= ks_pvalue(d, n, m)
        if exact >= 1e-4:
            assert ks_pvalue(d, n, m) <= 1.1 * exact
        else:  # the ratio grows in the far tail (1.24 at 1e-19), but both stay below alpha / 3 features
            assert ks_pvalue(d, n, m) < 1.2e-4 < VerdictSettings().alpha / 3


def test_no_verdict_below_the_minimum_window_then_one_every_few_rows():
    w = window(VerdictSettings(min_rows=500, every=250, max_rows=2000))
    verdicts = feed(w, RNG.random(400), RNG.random(400))
    assert verdicts == []
    verdicts = feed(w, RNG.random(1000), RNG.random(1000))
    assert [v.rows for v in verdicts] == [500, 750, 1000, 1250]
    assert not any(v.detected for v in verdicts) and all(v.share == 0 for v in verdicts)


def test_the_window_is_bounded_by_count_and_by_time():
    w = window(VerdictSettings(min_rows=100, every=100, max_rows=1000, max_age_s=60))
    feed(w, RNG.random(3000), RNG.random(3000), per=100)
    assert w.column("x1").size == 1000
    w.add({"x1": RNG.random(100), "x2": RNG.random(100)}, 1000.0)  # 1000 s later: only this message is recent
    assert w.rows == 100 and w.column("x1").size == 100


def test_a_spread_drift_on_one_feature_is_a_verdict_of_half_the_features():
    w = window()
    feed(w, RNG.random(2000), RNG.random(2000))
    verdicts = feed(w, 0.5 + 2 * (RNG.random(2000) - 0.5), RNG.random(2000), start=100)
    last = verdicts[-1]
    assert last.detected and last.share == 0.5
    assert last.flags["x1"]["verdict"] and not last.flags["x2"]["verdict"]


def test_a_feature_missing_from_older_messages_is_left_out_until_it_has_a_window():
    w = window(VerdictSettings(min_rows=100, every=100))
    v = w.add({"x1": RNG.random(200)}, 0.0)
    assert list(v.features) == ["x1"] and not v.detected


def test_a_zero_spread_feature_is_reported_not_tested():
    stats = {**STATS, "c": column_reference(np.full(100, 3.0))}
    assert stats["c"]["std"] == 0
    w = VersionWindow.from_reference_stats(stats, VerdictSettings(min_rows=100, every=100))
    v = w.add({"x1": RNG.random(200), "x2": RNG.random(200), "c": [3.0] * 200}, 0.0)
    assert v.zero_spread == ["c"] and "c" not in v.features and not v.detected
    assert math.isfinite(v.features["x1"]["ks"])


def test_the_verdict_says_drifted_only_once_the_rule_held_at_two_evaluations_running():
    w = window(VerdictSettings(min_rows=500, every=500, max_rows=500, decisive_wasserstein=10.0))
    wide = 0.5 + 2 * (RNG.random(1000) - 0.5)
    first, second = feed(w, wide, RNG.random(1000), per=500)
    assert first.flags["x1"]["verdict"] and not first.detected and first.streaks["verdict"] == 1
    assert second.detected and second.streaks["verdict"] == 2
    (calm,) = feed(w, RNG.random(500), RNG.random(500), start=10, per=500)
    assert not calm.detected and calm.streaks["verdict"] == 0


def test_a_decisive_change_is_drifted_at_its_first_evaluation_a_smaller_one_at_its_second():
    """Even quantiles shifted by 0.036 (0.125 training stds: over large_wasserstein 0.1, under decisive 0.15)
    wait for the confirmation; the doubled spread (0.87 stds) needs none."""
    settings = VerdictSettings(min_rows=500, every=500, max_rows=500)
    grid = (np.arange(500) + 0.5) / 500
    small = window(settings)
    first, second = feed(small, np.tile(grid + 0.036, 2), np.tile(grid, 2), per=500)
    assert 0.1 <= first.features["x1"]["wasserstein"] < 0.15, first.features["x1"]
    assert first.flags["x1"]["verdict"] and not first.detected
    assert second.detected and second.streaks["verdict"] == 2
    large = window(settings)
    (first,) = feed(large, 0.5 + 2 * (grid - 0.5), grid, per=500)
    assert first.features["x1"]["wasserstein"] > 0.8 and first.features["x1"]["ks_pvalue"] < settings.alpha
    assert first.detected and first.streaks["verdict"] == 1


def test_decisive_wasserstein_is_not_below_large_wasserstein():
    with pytest.raises(ConfigError, match="large_wasserstein exceeds decisive_wasserstein"):
        VerdictSettings.from_mapping({"large_wasserstein": 0.2}, "stack.yaml: drift.verdict")


def test_verdict_settings_from_the_stack_keep_defaults_for_keys_left_out():
    s = VerdictSettings.from_mapping({"max_rows": 3000, "alpha": 0.01}, "stack.yaml: drift.verdict")
    assert (s.max_rows, s.alpha, s.min_rows) == (3000, 0.01, VerdictSettings().min_rows)
    assert VerdictSettings.from_mapping(None, "w") == VerdictSettings()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"window": 10}, "unknown ['window']"),
        ({"min_rows": 2.5}, "drift.verdict.min_rows: expected a positive integer, got 2.5"),
        ({"every": True}, "drift.verdict.every: expected a positive integer, got True"),
        ({"alpha": -1}, "drift.verdict.alpha: expected a positive number, got -1"),
        ({"alpha": 1.5}, "drift.verdict.alpha: expected below 1"),
        ({"max_rows": 100, "min_rows": 500}, "min_rows 500 exceeds max_rows 100"),
        ({"psi_threshold": "x"}, "drift.verdict.psi_threshold: expected a positive number, got 'x'"),
        ([1], "expected a mapping, got list"),
    ],
)
def test_bad_verdict_settings_are_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        VerdictSettings.from_mapping(raw, "stack.yaml: drift.verdict")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("recent_z", [4.5, 1e9])
def test_a_mean_moved_in_the_last_rows_is_drifted_at_once_by_the_short_window_rule(recent_z):
    """Issue 23, item 11: on the 2,000-row window a mean moved only in its last 500 rows is diluted
    (a small Wasserstein distance, waiting for confirmation); the short window's z-score sees it at
    once. With the rule switched off (recent_z 1e9) the same evaluation waits."""
    settings = VerdictSettings(min_rows=500, every=500, max_rows=2000, recent_rows=500, recent_z=recent_z)
    grid = (np.arange(500) + 0.5) / 500
    w = window(settings)
    verdicts = feed(w, np.concatenate([np.tile(grid, 3), grid + 0.08]), np.tile(grid, 4), per=500)
    calm, last = verdicts[-2], verdicts[-1]
    assert not calm.detected and abs(calm.features["x1"]["recent_zscore"]) < 1
    stats = last.features["x1"]
    assert stats["recent_zscore"] > 6 and abs(stats["zscore"]) < 4 and stats["wasserstein"] < 0.15
    assert last.flags["x1"]["recent_zscore"] == (recent_z == 4.5)
    assert last.detected == (recent_z == 4.5)


def test_the_short_window_is_not_longer_than_the_window():
    with pytest.raises(ConfigError, match="recent_rows 3000 exceeds max_rows 2000"):
        VerdictSettings.from_mapping({"recent_rows": 3000}, "stack.yaml: drift.verdict")
