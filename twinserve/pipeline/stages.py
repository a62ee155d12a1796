"""The pipeline's order and decisions, without I/O (unit-tested in tests/unit/test_pipeline_stages.py)."""

import math
import re
from dataclasses import dataclass
from datetime import datetime

from twinserve.errors import ConfigError

# In order. Jenkins has one stage per name (a test checks jenkins/pipeline.groovy against it).
STAGES = ("test", "train", "archive", "deploy", "smoke", "loadgate", "approve", "promote", "bake")
SKIPPABLE = ("test", "train")  # the rest are the gates; skipping them would defeat the pipeline
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


def needs_rollback(failed_stage: str, production_before: str | None, production_now: str, rolled_back: bool) -> bool:
    """A failure at or after promotion, with production not (or no longer) where this run found it.

    Decided from the colours, not from whether the promote stage returned: an
    interrupt in the middle of the switch must still be undone.
    """
    promoting = STAGES.index(failed_stage) >= STAGES.index("promote")
    return promoting and production_before is not None and production_now != production_before and not rolled_back


@dataclass(frozen=True)
class BakeSample:
    """One look at the new production colour over the last window (from Prometheus)."""

    requests_per_s: float
    error_ratio: float  # NaN when there was no request
    p99_ms: float  # NaN when there was no request
    firing: tuple[str, ...] = ()  # names of critical alerts firing
    unavailable: str = ""  # why there is no sample (Prometheus down): counts as a bad check


def alerts_against(alerts: list[dict], colour: str, since: float, model: str | None = None) -> tuple[str, ...]:
    """Names of the critical alerts that speak against the promoted colour of the promoted model.

    Firing, about this colour or about no colour in particular (not the staging
    one's), about this model or no model in particular (not another model's: each
    model has its own production), and active only since the promotion: an alert already pending or
    firing before the switch (a burn alert about the old colour's errors, whose
    windows still hold them) says nothing about the new version, whose own error
    ratio the bake judges directly.

    Args:
        alerts: Prometheus' /api/v1/alerts list (labels, state, activeAt).
        since: the promotion's time (Unix seconds).
    """
    return tuple(sorted({
        a["labels"].get("alertname", "?") for a in alerts
        if a.get("state") == "firing" and a["labels"].get("severity") == "critical"
        and a["labels"].get("colour", colour) == colour and _unix(a.get("activeAt", "")) >= since
        and (model is None or a["labels"].get("model", model) == model)
    }))  # fmt: skip


def _unix(rfc3339: str) -> float:
    """Prometheus' activeAt (nanoseconds, Z) as Unix seconds; an unreadable time counts as recent."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return math.inf


@dataclass(frozen=True)
class BakeLimits:
    max_error_ratio: float
    max_p99_ms: float
    breaches_to_fail: int


def problems(sample: BakeSample, limits: BakeLimits) -> list[str]:
    """What is wrong in one sample, as sentences; empty if nothing."""
    found = [sample.unavailable] if sample.unavailable else []
    traffic = sample.requests_per_s > 0
    if traffic and not math.isnan(sample.error_ratio) and sample.error_ratio > limits.max_error_ratio:
        found.append(f"error ratio {sample.error_ratio:.4f} > {limits.max_error_ratio}")
    if traffic and not math.isnan(sample.p99_ms) and sample.p99_ms > limits.max_p99_ms:
        found.append(f"p99 {sample.p99_ms:.0f} ms > {limits.max_p99_ms:.0f} ms")
    if sample.firing:
        found.append(f"critical alerts firing: {', '.join(sorted(sample.firing))}")
    return found


class BakeJudge:
    """Rolls back after `breaches_to_fail` consecutive bad samples: one noisy scrape is not a verdict."""

    def __init__(self, limits: BakeLimits):
        self.limits = limits
        self.streak = 0
        self.checks = 0
        self.judged = 0  # samples with traffic: the ones that say something about the version
        self.worst_p99 = 0.0
        self.worst_error_ratio = 0.0
        self.last_problems: list[str] = []

    def add(self, sample: BakeSample) -> bool:
        """Record one sample; True once the version must be rolled back."""
        self.checks += 1
        if sample.requests_per_s > 0:
            self.judged += 1
            if not math.isnan(sample.p99_ms):
                self.worst_p99 = max(self.worst_p99, sample.p99_ms)
            if not math.isnan(sample.error_ratio):
                self.worst_error_ratio = max(self.worst_error_ratio, sample.error_ratio)
        self.last_problems = problems(sample, self.limits)
        self.streak = self.streak + 1 if self.last_problems else 0
        return self.streak >= self.limits.breaches_to_fail

    def figure(self) -> str:
        if self.streak >= self.limits.breaches_to_fail:
            return f"{'; '.join(self.last_problems)} in {self.streak} consecutive checks"
        if not self.judged:
            return f"{self.checks} checks, no production traffic to judge"
        return (
            f"{self.checks} checks ({self.judged} with traffic): worst p99 {self.worst_p99:.0f} ms, "
            f"worst error ratio {self.worst_error_ratio:.4f}, no critical alert"
        )


def summary(record: dict) -> str:
    """The table printed at the end of a run (and by `twinserve pipeline show`)."""
    lines = [
        f"pipeline run {record['run_id']}: {record['model']} {record.get('version') or '?'} from {record['model_dir']}",
        f"{'stage':<9} {'status':<8} {'seconds':>7}  figure",
    ]
    for stage in record["stages"]:
        lines.append(f"{stage['name']:<9} {stage['status']:<8} {stage['seconds']:>7.1f}  {stage['figure']}")
    lines.append(f"outcome: {record.get('outcome', 'running')}")
    return "\n".join(lines)


def outcome(failed_stage: str | None, reason: str, rolled_back: bool | None, version: str, colour: str) -> str:
    """One line: where the version ended and why."""
    if failed_stage is None:
        return f"promoted: {version} serves /predict from {colour}"
    if rolled_back:
        return f"rolled back: {failed_stage} failed ({reason}); production is back on {colour}"
    if rolled_back is False:
        return f"ROLLBACK FAILED after {failed_stage} failed ({reason}); production is {colour}: act now"
    return f"stopped at {failed_stage}: {reason}; production untouched ({colour})"


def next_stage(record: dict) -> str | None:
    """The stage a run may run now: the first not yet run; None if the run is over."""
    if record.get("outcome"):
        return None
    done = [s["name"] for s in record["stages"]]
    if done != list(STAGES[: len(done)]):
        raise ConfigError(f"run {record['run_id']} ran its stages out of order: {done}")
    return STAGES[len(done)] if len(done) < len(STAGES) else None
