"""twinserve/tools/drift_eval.py: the regressor's streams through the consumer, and the table's targets."""

import numpy as np
import pytest

from tests.checkout import REPO_ROOT
from twinserve.tools import drift_eval, drift_sources


@pytest.fixture(scope="module")
def regressor():
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        yield drift_sources.Regressor(REPO_ROOT / "models" / "regressor", epochs=2, samples=2048)
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


def test_the_regressors_stream_changes_x1_from_the_warmup_on_and_scores_it(regressor):
    rows = regressor.rows("mean +1 std", warmup=1000, after=1000, seed=3)
    assert rows.shape == (2000, len(regressor.names)) and regressor.names[-1] == "prediction"
    before, after = rows[:1000, 0].mean(), rows[1000:, 0].mean()
    assert (after - before) / regressor.std == pytest.approx(1, abs=0.15)
    assert np.allclose(rows[:, -1], regressor.score(rows[:, :-1]))


def test_a_small_run_detects_large_changes_and_keeps_the_windows_evidently_is_to_judge(regressor):
    result, windows = drift_eval.evaluate(
        regressor, null_rows=3000, warmup=2000, after=2000, repeats=1, evidently_rows=1500
    )
    assert set(result["delays"]) == set(drift_sources.REGRESSOR_SCENARIOS)
    assert result["delays"]["std x2"]["verdict"][0] is not None
    assert result["delays"]["bimodal"]["old zscore"] == [None]  # the mean does not move
    # the undrifted stream's windows up to 1,500 rows; each changed stream's windows after its change only
    assert windows.null and all(seen <= 1500 for seen, _ in windows.null)
    assert [s for s, _, _ in windows.changed] == list(drift_sources.REGRESSOR_SCENARIOS)
    for _, warmup, ws in windows.changed:
        assert ws and all(seen > warmup for seen, _ in ws)
        for seen, window in ws:
            assert set(window) == set(regressor.names)
            assert window["x1"].size == min(seen, 2000)  # the consumer's window: its last 2,000 rows


def result(model="m", fa=None, **delays):
    fa = fa or {d: 0.0 for d in drift_eval.COLUMNS}
    return {"model": model, "false_alarms": fa, "delays": delays}


def delays(verdict, evidently, others=100):
    out = {d: [others] for d in drift_eval.DETECTORS}
    out["verdict"] = verdict
    if evidently is not None:
        out["evidently"] = evidently
    return out


def test_the_verdict_is_compared_with_evidentlys_median_delay_a_miss_counting_as_infinitely_late():
    assert drift_eval.no_worse(delays([400, 500, 600], [500, 500, 900])) is True  # medians 500 <= 500
    assert drift_eval.no_worse(delays([700], [696])) is False
    assert drift_eval.no_worse(delays([None], [696])) is False
    assert drift_eval.no_worse(delays([1900], [None])) is True
    assert drift_eval.no_worse(delays([None], [None])) is True  # both miss: not worse (the 2,000-row target says so)
    assert drift_eval.no_worse(delays([400], None)) is None  # Evidently not run


def test_the_table_and_the_targets_mark_each_miss_and_say_where():
    results = [
        result("a", **{"one": delays([400], [696]), "two": delays([2100], [400])}),
        result("b", fa={**{d: 0.0 for d in drift_eval.COLUMNS}, "verdict": 1.5}, three=delays([None], [None])),
    ]
    text = drift_eval.table(results, after=5000)
    lines = text.splitlines()
    assert lines[0].endswith("| evidently | verdict no worse than Evidently |")
    assert "| a: one, delay in rows (target <= 2000) | 400 met |" in text and lines[3].endswith("| 696 met | met |")
    assert lines[4].startswith("| a: two, delay in rows (target <= 2000) | 2100 MISSED |")
    assert lines[4].endswith("| 400 met | MISSED |")
    assert "| b: none, false alarms per 100k rows (target <= 1) | 1.50 MISSED |" in text
    assert "| b: three, delay in rows (target <= 2000) | not within 5000 MISSED |" in text
    assert drift_eval.targets(results) == [
        "verdict: at most 1 false alarm per 100,000 undrifted rows: MISSED (b 1.50)",
        "verdict: every change detected within 2,000 rows: MISSED (a two, b three)",
        "verdict: detection delay no worse than Evidently's on any scenario: MISSED (a two)",
    ]


def test_without_evidently_the_table_has_no_column_for_it_and_the_comparison_says_not_compared():
    fa = {d: 0.0 for d in drift_eval.DETECTORS}
    results = [result("a", fa=fa, one=delays([400], None))]
    assert "evidently |" not in drift_eval.table(results, after=5000).splitlines()[0].replace("Evidently |", "")
    assert drift_eval.targets(results) == [
        "verdict: at most 1 false alarm per 100,000 undrifted rows: met",
        "verdict: every change detected within 2,000 rows: met",
        "verdict: detection delay no worse than Evidently's on any scenario: not compared (Evidently not run)",
    ]


def test_evidentlys_scores_become_one_more_detector_per_100k_of_the_rows_it_judged():
    r = result("a", fa={d: 0.0 for d in drift_eval.DETECTORS}, one=delays([400], None))
    scored = {"false_alarms": 1, "null_rows": 50_000, "delays": {"one": [300]}, "tests": {"x": "K-S p_value"}}
    drift_eval.add_evidently(r, scored, "0.7.23")
    assert r["false_alarms"]["evidently"] == 2.0
    assert r["delays"]["one"]["evidently"] == [300]
    assert r["evidently"] == {"null_rows": 50_000, "version": "0.7.23", "tests": {"x": "K-S p_value"}}


def test_the_table_replaces_its_block_in_the_doc(tmp_path):
    doc = tmp_path / "drift.md"
    doc.write_text(f"intro\n{drift_eval.BEGIN}\nold\n{drift_eval.END}\nrest\n")
    drift_eval.write_doc("new table", doc)
    assert doc.read_text() == f"intro\n{drift_eval.BEGIN}\nnew table\n{drift_eval.END}\nrest\n"


def test_a_repeated_log_message_passes_once():
    import logging

    once = drift_eval.Once()
    records = [logging.LogRecord("x", logging.WARNING, "", 0, "feature %s has no spread", (f,), None) for f in "aab"]
    assert [once.filter(r) for r in records] == [True, False, True]


def test_a_run_writes_docs_only_when_asked(regressor, tmp_path, monkeypatch):
    """Issue 23, item 7: every `make drift-eval` rewrote docs/drift.md and docs/drift-eval.png."""
    import argparse
    import shutil

    from twinserve.cli import drift_eval as cli

    for name in ("config/stack.yaml", "docs/drift.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    doc = (tmp_path / "docs" / "drift.md").read_text()
    monkeypatch.setenv("TWINSERVE_HOME", str(tmp_path))
    monkeypatch.setattr(drift_eval, "sources", lambda root, models: iter([regressor]))
    parser = argparse.ArgumentParser()
    cli.arguments(parser)
    small = ["--models", "regressor", "--null-rows", "2000", "--warmup", "1000", "--after", "1000", "--repeats", "1"]

    assert cli.run(parser.parse_args([*small, "--no-evidently"])) == 0
    assert (tmp_path / "var" / "drift-eval" / "drift-eval.png").is_file()
    assert (tmp_path / "docs" / "drift.md").read_text() == doc
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["drift.md"]

    assert cli.run(parser.parse_args([*small, "--no-evidently", "--write-docs"])) == 0
    assert (tmp_path / "docs" / "drift-eval.png").is_file()
    written = (tmp_path / "docs" / "drift.md").read_text()
    assert written != doc and "Evidently not run" in written
