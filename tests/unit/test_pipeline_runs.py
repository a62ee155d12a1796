"""twinserve/pipeline/runs.py (`twinserve pipeline`): stages run only in order; bad arguments are one line, exit 2."""

import pytest

from twinserve.cli import main
from twinserve.errors import ConfigError
from twinserve.pipeline import record as records
from twinserve.pipeline.runs import run_stage
from twinserve.pipeline.steps import Context


def test_stages_run_only_in_order_and_skipping_is_for_test_and_train_only(stack, tmp_path):
    ctx = Context(stack, records.new(stack, tmp_path, "regressor", "1.1", run_id="r"))
    with pytest.raises(ConfigError, match="the next stage is test"):
        run_stage(ctx, "deploy")
    assert run_stage(ctx, "test", skip=True)
    assert run_stage(ctx, "train", skip=True)
    with pytest.raises(ConfigError, match="archive cannot be skipped"):
        run_stage(ctx, "archive", skip=True)
    assert [s["status"] for s in records.load(stack, "r")["stages"]] == ["skipped", "skipped"]


def test_bad_arguments_give_one_line_and_exit_2(stack, tmp_path, capsys):
    assert main(["--stack", str(stack.path), "pipeline", "run", "--model-dir", str(tmp_path / "nope")]) == 2
    assert (
        main(["--stack", str(stack.path), "pipeline", "start", "--model-dir", "models/regressor", "--version", "1.x"])
        == 2
    )
    assert main(["--stack", str(stack.path), "pipeline", "stage", "smoke", "--run-id", "missing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("twinserve pipeline: error: ") for line in err)
    assert "not a model directory" in err[0] and "version '1.x'" in err[1] and "no pipeline run missing" in err[2]


def test_the_test_stage_runs_the_tests_of_what_the_archive_carries():
    from tests.checkout import REPO_ROOT
    from twinserve.pipeline.steps import shipped_tests

    digits = shipped_tests(REPO_ROOT, "digits")
    assert "tests/unit/test_models_digits_train.py" in digits
    assert "tests/unit/test_handlers_image_handler.py" in digits and "tests/unit/test_archiver_build.py" in digits
    assert "tests/unit/test_release_smoke.py" in digits
    assert not [f for f in digits if "test_models_regressor" in f or "test_pyproject" in f]
    assert all((REPO_ROOT / f).is_file() for f in digits)
