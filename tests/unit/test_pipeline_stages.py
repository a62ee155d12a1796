"""The pipeline's pure core: bake verdicts, when to roll back, stage order, outcomes; and its run records."""

import copy
import math

import pytest
import yaml

from twinserve.errors import ConfigError
from twinserve.pipeline import record as records
from twinserve.pipeline.__main__ import main, run_stage
from twinserve.pipeline.stages import (
    STAGES,
    BakeJudge,
    BakeLimits,
    BakeSample,
    alerts_against,
    needs_rollback,
    next_stage,
    outcome,
    problems,
    summary,
)
from twinserve.pipeline.steps import Context
from twinserve.settings import DEFAULT_STACK, load_stack

LIMITS = BakeLimits(max_error_ratio=0.01, max_p99_ms=250, breaches_to_fail=2)
GOOD = BakeSample(requests_per_s=50, error_ratio=0.0, p99_ms=20)
SLOW = BakeSample(requests_per_s=50, error_ratio=0.0, p99_ms=480)


def test_a_healthy_sample_has_no_problem():
    assert problems(GOOD, LIMITS) == []


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (SLOW, ["p99 480 ms > 250 ms"]),
        (BakeSample(50, 0.02, 20), ["error ratio 0.0200 > 0.01"]),
        (BakeSample(50, 0.0, 20, ("TwinserveTargetDown",)), ["critical alerts firing: TwinserveTargetDown"]),
        (BakeSample(0, math.nan, math.nan, unavailable="no verdict: Prometheus did not answer"),
         ["no verdict: Prometheus did not answer"]),
        (BakeSample(50, 0.5, 900), ["error ratio 0.5000 > 0.01", "p99 900 ms > 250 ms"]),
    ],
)  # fmt: skip
def test_each_breach_is_named(sample, expected):
    assert problems(sample, LIMITS) == expected


def test_no_traffic_is_not_a_breach_but_is_said():
    judge = BakeJudge(LIMITS)
    assert not any(judge.add(BakeSample(0, math.nan, math.nan)) for _ in range(5))
    assert judge.figure() == "5 checks, no production traffic to judge"


def test_one_bad_check_is_noise_two_in_a_row_roll_back():
    judge = BakeJudge(LIMITS)
    assert judge.add(SLOW) is False
    assert judge.add(GOOD) is False  # the streak resets
    assert judge.add(SLOW) is False
    assert judge.add(SLOW) is True
    assert judge.figure() == "p99 480 ms > 250 ms in 2 consecutive checks"


def test_a_passed_bake_reports_its_worst_figures():
    judge = BakeJudge(LIMITS)
    for sample in (GOOD, BakeSample(40, 0.004, 120), BakeSample(0, math.nan, math.nan)):
        judge.add(sample)
    assert judge.figure() == "3 checks (2 with traffic): worst p99 120 ms, worst error ratio 0.0040, no critical alert"


@pytest.mark.parametrize(
    ("stage", "before", "now", "rolled_back", "expected"),
    [
        ("smoke", None, "blue", False, False),
        ("approve", None, "blue", False, False),
        ("promote", None, "blue", False, False),  # failed before recording anything: nothing switched
        ("promote", "blue", "blue", False, False),  # the swap undid itself
        ("promote", "blue", "green", False, True),  # interrupted in the middle of the switch
        ("bake", "blue", "green", False, True),
        ("bake", "blue", "green", True, False),  # already rolled back
        ("bake", "blue", "blue", False, False),  # production is where the run found it
    ],
)
def test_rollback_only_when_production_was_switched_away(stage, before, now, rolled_back, expected):
    assert needs_rollback(stage, before, now, rolled_back) is expected


def test_next_stage_follows_the_order_and_ends():
    record = {"run_id": "r", "stages": []}
    assert next_stage(record) == "test"
    record["stages"] = [{"name": n} for n in STAGES[:4]]
    assert next_stage(record) == STAGES[4]
    record["stages"] = [{"name": n} for n in STAGES]
    assert next_stage(record) is None
    assert next_stage({"run_id": "r", "stages": [], "outcome": "stopped"}) is None
    with pytest.raises(ValueError, match="out of order"):
        next_stage({"run_id": "r", "stages": [{"name": "train"}]})


def test_outcomes_say_where_the_version_ended():
    assert outcome(None, "", None, "1.1", "green") == "promoted: 1.1 serves /predict from green"
    assert outcome("smoke", "NaN", None, "1.1", "blue") == "stopped at smoke: NaN; production untouched (blue)"
    assert outcome("bake", "slow", True, "1.1", "blue").startswith("rolled back: bake failed (slow)")
    assert outcome("bake", "slow", False, "1.1", "green").startswith("ROLLBACK FAILED")


def test_the_summary_has_a_line_per_stage_and_the_outcome():
    record = {"run_id": "r1", "model": "regressor", "version": "1.1", "model_dir": "models/regressor",
              "stages": [{"name": "test", "status": "skipped", "seconds": 0.0, "figure": "skipped"},
                         {"name": "train", "status": "failed", "seconds": 2.5, "figure": "training failed: boom"}],
              "outcome": "stopped at train: training failed: boom; production untouched (blue)"}  # fmt: skip
    lines = summary(record).splitlines()
    assert lines[0] == "pipeline run r1: regressor 1.1 from models/regressor"
    assert lines[3] == "train     failed       2.5  training failed: boom"
    assert lines[-1].startswith("outcome: stopped at train")


@pytest.fixture
def stack(tmp_path):
    raw = copy.deepcopy(yaml.safe_load(DEFAULT_STACK.read_text()))
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    raw["model_store"] = str(tmp_path / "store")
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_stack(path)


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
    assert main(["--stack", str(stack.path), "run", "--model-dir", str(tmp_path / "nope")]) == 2
    assert main(["--stack", str(stack.path), "start", "--model-dir", "models/regressor", "--version", "1.x"]) == 2
    assert main(["--stack", str(stack.path), "stage", "smoke", "--run-id", "missing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("pipeline: error: ") for line in err)
    assert "not a model directory" in err[0] and "version '1.x'" in err[1] and "no pipeline run missing" in err[2]


def _alert(name, state="firing", severity="critical", active="2026-11-28T02:00:10.123456789Z", **labels):
    return {"labels": {"alertname": name, "severity": severity, **labels}, "state": state, "activeAt": active}


PROMOTED_AT = 1_795_831_205.0  # 2026-11-28T02:00:05Z


def test_only_critical_alerts_firing_since_the_promotion_count_against_the_colour():
    alerts = [
        _alert("Since", colour="green"),
        _alert("NoColour"),
        _alert("Before", active="2026-11-28T01:55:00Z"),  # a burn alert about the old colour's errors
        _alert("Staging", colour="blue"),
        _alert("Pending", state="pending"),
        _alert("Warning", severity="warning"),
        _alert("Unreadable", active="yesterday"),  # counted: an unknown start is no excuse
    ]
    assert alerts_against(alerts, "green", PROMOTED_AT) == ("NoColour", "Since", "Unreadable")


def test_only_the_promoted_model_s_alerts_count():
    alerts = [
        _alert("Digits", model="digits", colour="green"),
        _alert("Regressor", model="regressor", colour="green"),  # another model's production on green
        _alert("NoModel", colour="green"),  # a colour's own trouble (its target down) concerns every model
    ]
    assert alerts_against(alerts, "green", PROMOTED_AT, "digits") == ("Digits", "NoModel")


def test_no_alert_is_no_verdict_against():
    assert alerts_against([], "green", PROMOTED_AT) == ()
