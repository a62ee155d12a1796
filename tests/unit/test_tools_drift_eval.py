"""twinserve/tools/drift_eval.py: the streams' changes, and the table's targets, on a small run."""

import numpy as np
import pytest

from tests.checkout import REPO_ROOT
from twinserve.tools import drift_eval


@pytest.fixture(scope="module")
def regressor():
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        yield drift_eval.Regressor(REPO_ROOT / "models" / "regressor", epochs=2, samples=2048)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@pytest.mark.parametrize(
    "scenario, mean_moved, std_times", [("mean +0.5 std", 0.5, 1), ("std x2", 0, 2), ("bimodal", 0, 1)]
)
def test_each_change_moves_what_it_says_and_keeps_the_rest(regressor, scenario, mean_moved, std_times):
    x1 = regressor.draw(50_000, seed=1)[:, 0]
    changed = regressor.change(scenario, x1, np.random.default_rng(2))
    s = regressor.std
    assert (changed.mean() - x1.mean()) / s == pytest.approx(mean_moved, abs=0.02)
    assert changed.std() / x1.std() == pytest.approx(std_times, rel=0.02)


def test_a_stream_with_a_large_change_is_detected_after_it_and_the_table_marks_the_targets(regressor):
    result = drift_eval.evaluate(regressor, null_rows=3000, warmup=2000, after=2000, repeats=1)
    assert set(result["delays"]) == set(drift_eval.SCENARIOS[1:])
    assert result["delays"]["std x2"]["verdict"][0] is not None
    assert result["delays"]["bimodal"]["old zscore"] == [None]  # the mean does not move
    text = drift_eval.table(result, after=2000)
    assert "| none: false alarms per 100k rows" in text and "not within 2000 MISSED" in text


def test_the_table_replaces_its_block_in_the_doc(tmp_path):
    doc = tmp_path / "drift.md"
    doc.write_text(f"intro\n{drift_eval.BEGIN}\nold\n{drift_eval.END}\nrest\n")
    drift_eval.write_doc("new table", doc)
    assert doc.read_text() == f"intro\n{drift_eval.BEGIN}\nnew table\n{drift_eval.END}\nrest\n"
