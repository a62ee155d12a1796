"""The pipeline's stages, one function each: they act, and return the figure they judged.

A stage that fails raises StageFailed (or any TwinserveError) with one line
saying what and why. Stages change nothing they cannot undo: a smoke failure
puts staging back; production changes only in promote, and the runner rolls
it back if anything fails from there on.
"""

import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from twinserve.errors import ConfigError, ServiceError, TwinserveError
from twinserve.pipeline import record as records
from twinserve.pipeline.loadtest import Thresholds, judge, model_samples, run_locust
from twinserve.pipeline.stages import BakeJudge, BakeLimits, BakeSample, alerts_against
from twinserve.release import deploy, promote
from twinserve.routes import route_for
from twinserve.runtime.torchserve import Management
from twinserve.settings import Stack
from twinserve.store.archives import training
from twinserve.store.state import read_production


class StageFailed(TwinserveError):
    """A stage ran and its gate said no."""


@dataclass
class Context:
    stack: Stack
    record: dict
    approve: bool = False
    seed: int | None = None
    interactive: bool = False

    @property
    def out_dir(self) -> Path:
        return self.stack.var_dir / "pipeline" / self.record["run_id"]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# What the test stage runs: the tests of what ships inside the archive (the model's own, every handler,
# the archiver and its golden cases, the smoke test's comparison). The control plane's own tests are CI's
# (`make test`); they need developer tools (import-linter, luacheck, ...) that a compose image leaves out.
SHIPPED_TESTS = ("test_models_{model}_*.py", "test_handlers_*.py", "test_archiver_*.py", "test_release_smoke.py")


def shipped_tests(project: Path, model: str) -> list[str]:
    """The unit test files of what the archive of `model` carries, relative to the project."""
    unit = project / "tests" / "unit"
    found = {p for pattern in SHIPPED_TESTS for p in unit.glob(pattern.format(model=model))}
    return sorted(str(p.relative_to(project)) for p in found)


def test(ctx: Context) -> str:
    """The unit tests of what is about to ship: the model, the handlers, the archiver, the smoke comparison."""
    files = shipped_tests(ctx.stack.project, ctx.record["model"])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=ctx.stack.project, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise StageFailed(f"unit tests failed: {_last_line(result.stdout)}")
    return _last_line(result.stdout)


def train(ctx: Context) -> str:
    """The model's own seeded train.py; it may import the handlers' codecs and the archiver (golden cases)."""
    script = Path(ctx.record["model_dir"]) / "train.py"
    if not script.is_file():
        raise ConfigError(f"{script} not found: cannot train")
    argv, env = training(script, ctx.seed)
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise StageFailed(f"training failed: {_last_line(result.stderr)}")
    return _last_line(result.stdout)


def archive(ctx: Context) -> str:
    from archiver.build import ArchiveError, build_archive

    try:
        built = build_archive(Path(ctx.record["model_dir"]), ctx.record["version"], ctx.stack.model_store)
    except ArchiveError as exc:
        raise StageFailed(str(exc)) from None
    return f"{built.path.name}, sha256 {built.sha256[:12]}"


def deploy_to_staging(ctx: Context) -> str:
    change = deploy.register_on_staging(ctx.stack, ctx.record["model"], ctx.record["version"])
    ctx.record["staging_change"] = asdict(change)
    return f"{change.model} {change.version} registered on {change.colour} (staging), its default version"


def smoke(ctx: Context) -> str:
    if "staging_change" not in ctx.record:
        raise StageFailed("nothing deployed to staging in this run")
    change = deploy.StagingChange(**ctx.record["staging_change"])
    try:
        checked = deploy.smoke_staging(ctx.stack, change)
    except TwinserveError as exc:
        deploy.undo(ctx.stack, change)
        raise StageFailed(f"{exc}; staging put back as it was") from None
    deploy.finish(ctx.stack, change)
    route = route_for(change.model, staging=True)
    return f"golden set: {checked} requests answered right via {route} by {change.colour} {change.version}"


def loadgate(ctx: Context) -> str:
    """Locust on the model's staging route with the model's own samples (twinserve.samples)."""
    model = ctx.record["model"]
    p = ctx.stack.gates(model)
    samples = model_samples(Path(ctx.record["model_dir"]))
    route = route_for(model, staging=True)
    agg = run_locust(
        ctx.stack.nginx.url, route, p.load_users, p.load_users, p.load_seconds, ctx.out_dir / "loadgate", samples
    )
    figure = (
        f"{p.load_users} users, {agg.requests} requests ({len(samples)} samples) in {p.load_seconds}s, "
        f"error ratio {agg.error_ratio:.4f}, p99 {agg.p99_ms:.0f} ms (at most {p.load_max_p99_ms:.0f}), "
        f"{agg.rps:.0f} req/s (at least {p.load_min_rps:.0f})"
    )
    missed = judge(agg, Thresholds(p.load_max_error_ratio, p.load_max_p99_ms, p.load_min_rps))
    if missed:
        raise StageFailed(f"{figure}: {'; '.join(missed)}")
    return figure


def approve(ctx: Context) -> str:
    if ctx.approve:
        return "approved (--approve)"
    question = f"promote {ctx.record['model']} {ctx.record['version']} to production? [y/N] "
    if not ctx.interactive:
        raise StageFailed("needs approval: answer the prompt in a terminal, or rerun with --approve")
    if input(question).strip().lower() not in ("y", "yes"):
        raise StageFailed("declined at the prompt")
    return "approved at the prompt"


def promote_staging(ctx: Context) -> str:
    """Swap, but only if staging still serves what this run tested (time passes while approval waits)."""
    change, stack = ctx.record["staging_change"], ctx.stack
    production = read_production(stack, change["model"])
    staging = stack.other(production)
    if staging != change["colour"]:
        raise StageFailed(f"{change['colour']} is production now, not staging: someone swapped since the deploy")
    serving = Management(stack, staging).default_version(change["model"])
    if serving != change["version"]:
        raise StageFailed(f"staging ({staging}) serves {serving} now, not {change['version']}: someone deployed since")
    ctx.record.update(production_before=production, promoted_colour=staging, promoted_at=time.time())
    records.save(stack, ctx.record)  # before the switch: an interrupted switch is still rolled back
    line = promote.swap(stack, change["model"])
    ctx.record["promoted"] = True
    return line


def _query(stack: Stack, promql: str) -> list[dict]:
    url = f"{stack.monitoring.prometheus_url}/api/v1/query"
    try:
        body = requests.get(url, params={"query": promql}, timeout=5).json()
    except (requests.RequestException, ValueError) as exc:
        raise ServiceError(f"Prometheus did not answer: {type(exc).__name__}") from None
    if body.get("status") != "success":
        raise ServiceError(f"Prometheus refused {promql!r}: {body.get('error')}")
    return body["data"]["result"]


def _scalar(stack: Stack, promql: str) -> float:
    result = _query(stack, promql)
    return float(result[0]["value"][1]) if result else math.nan


def bake_sample(stack: Stack, colour: str, window_s: int, since: float, model: str | None = None) -> BakeSample:
    """The promoted model's new production colour over the last `window_s` seconds of its route
    (/predict/<model>, and /predict for the default model: the same label), and the critical alerts
    about it since `since`. Another model's traffic and alerts do not count."""
    model = stack.model(model)
    sel = f'route="production",model="{model}",colour="{colour}"'
    rps = _scalar(stack, f"sum(rate(twinserve_http_requests_total{{{sel}}}[{window_s}s]))")
    errors = _scalar(stack, f'sum(rate(twinserve_http_requests_total{{{sel},status=~"5.."}}[{window_s}s]))')
    p99 = _scalar(
        stack,
        f"histogram_quantile(0.99, sum by (le) (rate(twinserve_http_request_duration_seconds_bucket{{{sel}}}"
        f"[{window_s}s])))",
    )
    try:
        alerts = requests.get(f"{stack.monitoring.prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"Prometheus did not list its alerts: {type(exc).__name__}") from None
    rps = 0.0 if math.isnan(rps) else rps
    return BakeSample(
        requests_per_s=rps,
        error_ratio=(0.0 if math.isnan(errors) else errors) / rps if rps > 0 else math.nan,
        p99_ms=p99 * 1000,
        firing=alerts_against(alerts, colour, since, model),
    )


def bake(ctx: Context, sleep=time.sleep) -> str:
    """Watch production for bake_seconds; fail as soon as the judge has seen enough bad checks."""
    stack, colour, model = ctx.stack, ctx.record["promoted_colour"], ctx.record["model"]
    p = stack.gates(model)
    judge_ = BakeJudge(BakeLimits(p.bake_max_error_ratio, p.bake_max_p99_ms, p.bake_breaches_to_fail))
    every = stack.monitoring.scrape_interval_seconds
    promoted_at = ctx.record.get("promoted_at", time.time())
    deadline = time.monotonic() + p.bake_seconds
    while True:
        sleep(every)
        # Only what happened since the promotion: the colour may have been production before.
        window = int(min(p.bake_window_seconds, max(2 * every, time.time() - promoted_at)))
        try:
            sample = bake_sample(stack, colour, window, promoted_at, model)
        except ServiceError as exc:
            sample = BakeSample(0.0, math.nan, math.nan, unavailable=f"no verdict: {exc}")
        now = read_production(stack, model)
        if now != colour:
            raise StageFailed(f"{model}'s production is {now} now, not {colour}: someone switched it")
        if judge_.add(sample):
            raise StageFailed(judge_.figure())
        if time.monotonic() >= deadline:
            return judge_.figure()


STEPS = {
    "test": test,
    "train": train,
    "archive": archive,
    "deploy": deploy_to_staging,
    "smoke": smoke,
    "loadgate": loadgate,
    "approve": approve,
    "promote": promote_staging,
    "bake": bake,
}
