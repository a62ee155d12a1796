"""twinserve/pipeline/stages.py: the pipeline's pure core: bake verdicts, when to roll back, stage order, outcomes."""

import math

import pytest

from twinserve.errors import ConfigError
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
    with pytest.raises(ConfigError, match="out of order"):
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
