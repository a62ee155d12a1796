import math
import random
import statistics

import pytest

from twinserve.drift.stats import MAX_ABS, FeatureDrift, Welford, Window, in_range, usable_spread, zscore


def test_welford_matches_the_statistics_module():
    rng = random.Random(1)
    values = [rng.gauss(1e6, 3.0) for _ in range(5000)]  # a large offset: the naive formula loses digits here
    w = Welford()
    for v in values:
        w.add(v)
    assert w.n == len(values)
    assert w.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert w.std == pytest.approx(statistics.stdev(values), rel=1e-9)


def test_welford_of_fewer_than_two_values_has_zero_variance():
    w = Welford()
    assert w.variance == 0.0
    w.add(5.0)
    assert (w.n, w.mean, w.variance) == (1, 5.0, 0.0)


def test_window_keeps_only_the_last_values():
    window = Window(size=3)
    for v in [1.0, 2.0, 3.0, 4.0, 5.0]:
        window.add(v)
    assert window.n == 3
    assert window.mean == pytest.approx(4.0)
    assert Window(size=3).mean == 0.0


def test_zscore_is_the_window_mean_in_standard_errors():
    # window mean 0.6, reference 0.5 ± 0.2, n = 400: standard error 0.01, z = 10
    assert zscore(0.6, 400, 0.5, 0.2, min_samples=100) == pytest.approx(10.0)
    assert zscore(0.4, 400, 0.5, 0.2, min_samples=100) == pytest.approx(-10.0)


def test_zscore_is_none_below_the_minimum_sample_count():
    assert zscore(0.9, 99, 0.5, 0.2, min_samples=100) is None
    assert zscore(0.9, 0, 0.5, 0.2, min_samples=0) is None


@pytest.mark.parametrize("std", [0.0, -1.0, math.inf, math.nan, None, "0.3", True])
def test_a_reference_without_spread_has_no_zscore_and_no_exception(std):
    assert not usable_spread(std)
    assert zscore(0.5, 200, 0.5, std, min_samples=1) is None
    assert FeatureDrift(window_size=10).z(0.5, std, min_samples=0) is None


def test_a_huge_value_does_not_raise_and_leaves_no_trace_once_out_of_the_window():
    drift = FeatureDrift(window_size=4)
    drift.add_many([MAX_ABS, 0.5])  # MAX_ABS**2 is 1e200; 1e200**2 would overflow
    assert math.isfinite(drift.overall.variance)
    assert drift.window.mean == pytest.approx(MAX_ABS / 2)
    drift.add_many([0.25, 0.75, 0.5, 0.5])  # the huge value leaves the window
    assert list(drift.window.values) == [0.25, 0.75, 0.5, 0.5]
    assert drift.window.mean == 0.5  # exact again: a float running sum would say 0.0 here


def test_values_beyond_max_abs_are_out_of_range():
    assert in_range(0.0) and in_range(-MAX_ABS) and in_range(MAX_ABS)
    assert not in_range(1e200) and not in_range(-1e101)
    assert not in_range(math.inf) and not in_range(math.nan)


def test_the_statistics_of_squares_near_the_float_limit_stay_finite_or_infinite_never_raise():
    w = Welford()
    w.add_many([1e200, -1e200])  # beyond MAX_ABS: the consumer drops such rows; stats must not raise anyway
    assert w.n == 2 and w.variance == math.inf


def test_feature_drift_z_follows_a_shift():
    rng = random.Random(7)
    drift = FeatureDrift(window_size=500)
    for _ in range(1000):
        drift.add(rng.uniform(0.0, 1.0))
    calm = drift.z(0.5, math.sqrt(1 / 12), min_samples=100)
    assert abs(calm) < 4
    for _ in range(500):  # the whole window moves by one reference std
        drift.add(rng.uniform(0.0, 1.0) + math.sqrt(1 / 12))
    shifted = drift.z(0.5, math.sqrt(1 / 12), min_samples=100)
    assert shifted > 15  # ~ 1 * sqrt(500) = 22
    assert drift.overall.n == 1500


@pytest.mark.parametrize("chunks", [[5], [1, 1, 1], [3, 0, 7, 2], [200, 1, 40], [12, 600, 3]])
def test_adding_a_message_at_once_is_adding_its_values_one_by_one(chunks):
    rng = random.Random(sum(chunks))
    one, many = FeatureDrift(window_size=50), FeatureDrift(window_size=50)
    for size in chunks:
        values = [rng.uniform(-3, 9) for _ in range(size)]
        for x in values:
            one.add(x)
        many.add_many(values)
        assert many.overall.n == one.overall.n
        assert many.overall.mean == pytest.approx(one.overall.mean, rel=1e-12, abs=1e-12)
        assert many.overall.variance == pytest.approx(one.overall.variance, rel=1e-9, abs=1e-12)
        assert list(many.window.values) == list(one.window.values)
        assert many.window.mean == pytest.approx(one.window.mean, rel=1e-12, abs=1e-12)
