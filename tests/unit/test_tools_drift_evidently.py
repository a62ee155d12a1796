"""twinserve/tools/drift_evidently.py and evidently_windows.py: what goes to Evidently and what its answers count."""

from pathlib import Path

import numpy as np
import pytest

from twinserve.tools import drift_evidently, evidently_windows
from twinserve.tools.drift_evidently import Windows


def window(value, n=4):
    return {"x": np.full(n, float(value)), "y": np.zeros(n)}


def windows():
    w = Windows({"x": np.arange(5.0), "y": np.ones(5)})
    w.null = [(500, window(0)), (750, window(1)), (1000, window(2))]
    w.changed = [("up", 3000, [(3024, window(3)), (3264, window(4))]), ("up", 3000, [(3024, window(5))])]
    return w


def test_the_npz_holds_the_reference_each_window_its_stream_and_whether_it_follows_the_change(tmp_path):
    path = tmp_path / "w.npz"
    windows().write(path)
    with np.load(path) as data:
        assert np.array_equal(data["ref/x"], np.arange(5.0))
        assert [float(data[f"win/{i}/x"][0]) for i in range(6)] == [0, 1, 2, 3, 4, 5]
        assert data["stream"].tolist() == [0, 0, 0, 1, 1, 2]
        assert data["post"].tolist() == [False, False, False, True, True, True]


def test_onsets_are_the_turns_on_and_a_window_not_judged_ends_the_stream():
    assert drift_evidently.onsets([1, 2, 3, 4, 5], [False, True, True, False, True]) == [2, 5]
    assert drift_evidently.onsets([1, 2, 3], [True, None, True]) == [1]


def test_scores_count_false_alarms_on_the_undrifted_stretch_and_delays_from_each_change():
    verdicts = [False, True, False, False, True, None]  # stream 1 drifted at its second window; stream 2 never
    output = {"version": "x", "windows": [None if v is None else {"drifted": v, "tests": {"x": "t"}} for v in verdicts]}
    output["windows"][5] = {"drifted": False, "tests": {}}
    scored = drift_evidently.score(windows(), output)
    assert scored == {"false_alarms": 1, "null_rows": 1000, "delays": {"up": [264, None]}, "tests": {"x": "t"}}
    with pytest.raises(RuntimeError, match="judged 2 windows of 6"):
        drift_evidently.score(windows(), {"windows": output["windows"][:2]})


def test_an_installed_venv_with_the_same_pins_is_used_as_it_is(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    (tmp_path / "twinserve-pins.txt").write_text("\n".join(drift_evidently.PINS) + "\n")
    assert drift_evidently.ensure_venv(tmp_path) == tmp_path / "bin" / "python"
    assert all(p.startswith(("evidently==", "pandas==")) for p in drift_evidently.PINS)


def test_the_presets_dataset_verdict_is_its_drifted_share_against_drift_share():
    metrics = [
        {
            "metric_name": "DriftedColumnsCount(drift_share=0.5)",
            "config": {"drift_share": 0.5},
            "value": {"count": 1, "share": 0.5},
        },
        {"metric_name": "ValueDrift(column=x)", "config": {"column": "x", "method": "K-S p_value"}, "value": 0.01},
        {"metric_name": "ValueDrift(column=y)", "config": {"column": "y", "method": "K-S p_value"}, "value": 0.4},
    ]
    assert evidently_windows.judged(metrics) == {
        "drifted": True,
        "share": 0.5,
        "tests": {"x": "K-S p_value", "y": "K-S p_value"},
    }
    metrics[0]["value"]["share"] = 0.25
    assert evidently_windows.judged(metrics)["drifted"] is False
    with pytest.raises(RuntimeError, match="no DriftedColumnsCount"):
        evidently_windows.judged(metrics[1:])


def test_a_failed_evidently_run_is_an_error_and_leaves_no_file_behind(tmp_path):
    import sys

    queue = drift_evidently.Queue(Path(sys.executable), tmp_path / "var")  # the project's venv: no evidently
    try:
        with pytest.raises(RuntimeError, match="Evidently's subprocess exited 1"):
            queue.submit(windows()).result(timeout=120)
    finally:
        queue.close()
    assert list((tmp_path / "var").iterdir()) == []
