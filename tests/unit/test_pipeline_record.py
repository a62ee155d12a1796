"""twinserve/pipeline/record.py: a pipeline run's record, saved, loaded and listed under the state dir."""

import pytest

from twinserve.errors import ConfigError
from twinserve.pipeline import record as records


def test_records_are_saved_loaded_and_listed(stack, tmp_path):
    first = records.new(stack, tmp_path, "regressor", "1.1", run_id="a-1")
    records.new(stack, tmp_path, "regressor", "1.2", run_id="b-2")
    assert records.load(stack, "a-1") == first
    assert [r["run_id"] for r in records.history(stack)] == ["a-1", "b-2"]
    with pytest.raises(ConfigError, match="exists already"):
        records.new(stack, tmp_path, "regressor", "1.3", run_id="a-1")


@pytest.mark.parametrize("run_id", ["../escape", "a b", "", "x" * 101])
def test_a_run_id_cannot_name_a_path(stack, tmp_path, run_id):
    with pytest.raises(ConfigError, match="run id"):
        records.new(stack, tmp_path, "regressor", "1.1", run_id=run_id)
    with pytest.raises(ConfigError, match="run id"):
        records.load(stack, run_id)
