"""A pipeline run, stage by stage: its record, its locks, its rollback (`twinserve pipeline`).

A stage that fails, whatever it raised, is recorded as failed; if production had
been switched by this run, it is switched back. The stages that change the
stack (deploy, smoke, promote) take the stack's lock, as deploy and swap do.
"""

import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from archiver.build import VERSION_RE
from twinserve.errors import EXIT_FAILED, ConfigError, TwinserveError
from twinserve.pipeline import record as records
from twinserve.pipeline import stages
from twinserve.pipeline.steps import STEPS, Context
from twinserve.release.promote import switch_to
from twinserve.runtime import nginx
from twinserve.settings import Stack
from twinserve.store.archives import next_version
from twinserve.store.state import exclusive, read_production

EXIT_ROLLBACK_FAILED = 3
LOCKED = ("deploy", "smoke", "promote")  # the stages that change the stack: one change at a time


def start(stack: Stack, model_dir: Path, version: str | None, run_id: str | None = None) -> dict:
    model_dir = Path(model_dir)
    model = model_dir.resolve().name
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir} is not a model directory")
    if model not in stack.models:
        raise ConfigError(f"model {model!r} is not in the stack description; expected one of {list(stack.models)}")
    version = version or next_version(stack, model)
    if not VERSION_RE.fullmatch(version):
        raise ConfigError(f"version {version!r}: expected numbers separated by dots, like 1.1")
    return records.new(stack, model_dir.resolve(), model, version, run_id)


def _production(ctx: Context) -> str:
    """The production colour of the model this run ships (every model has its own)."""
    return read_production(ctx.stack, ctx.record["model"])


def _roll_back(ctx: Context) -> bool:
    """Production back to the colour it had before this run promoted; True if it is."""
    before = ctx.record["production_before"]
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second abort must not split state and Nginx
    try:
        with exclusive(ctx.stack, f"pipeline run {ctx.record['run_id']} (rollback)"):
            if _production(ctx) != before:
                switch_to(ctx.stack, before, ctx.record["model"])
            elif (
                nginx.get_production(ctx.stack, ctx.record["model"]) != before
            ):  # state restored, Nginx not: finish the job
                nginx.set_production(ctx.stack, before, ctx.record["model"])
    except TwinserveError as exc:
        print(f"pipeline: rollback to {before} failed: {exc}", file=sys.stderr)
        return False
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"pipeline: rolled back: {ctx.record['model']}'s production is {before.upper()}")
    return True


def run_stage(ctx: Context, name: str, skip: bool = False) -> bool:
    """Run (or skip) one stage, record it, and on failure roll back if production had been switched."""
    expected = stages.next_stage(ctx.record)
    if name != expected:
        raise ConfigError(f"run {ctx.record['run_id']}: the next stage is {expected or 'none (the run is over)'}")
    if skip and name not in stages.SKIPPABLE:
        raise ConfigError(f"{name} cannot be skipped; only {', '.join(stages.SKIPPABLE)} can")
    began = time.monotonic()
    status, figure = stages.SKIPPED, "skipped"
    if not skip:
        try:
            with exclusive(ctx.stack, f"pipeline run {ctx.record['run_id']}") if name in LOCKED else nullcontext():
                figure, status = STEPS[name](ctx), stages.PASSED
        except TwinserveError as exc:
            figure, status = str(exc), stages.FAILED
        except KeyboardInterrupt:
            figure, status = "interrupted", stages.FAILED
        except Exception as exc:  # noqa: BLE001 - a bug is a failed stage too: recorded, rolled back
            figure, status = f"{type(exc).__name__}: {exc}", stages.FAILED
    seconds = time.monotonic() - began
    ctx.record["stages"].append({"name": name, "status": status, "seconds": round(seconds, 1), "figure": figure})
    print(f"{name:<9} {status:<8} {seconds:>6.1f}s  {figure}", flush=True)
    version, failed = ctx.record["version"], status == stages.FAILED
    if failed:
        rolled_back = None
        before = ctx.record.get("production_before")
        if stages.needs_rollback(name, before, _production(ctx), bool(ctx.record["rolled_back"])):
            rolled_back = ctx.record["rolled_back"] = _roll_back(ctx)
        production = _production(ctx)
        ctx.record["outcome"] = stages.outcome(name, figure, rolled_back, version, production)
    elif stages.next_stage(ctx.record) is None:
        ctx.record["outcome"] = stages.outcome(None, "", None, version, _production(ctx))
    if ctx.record.get("outcome"):
        ctx.record["finished"] = records.now()
    records.save(ctx.stack, ctx.record)
    return not failed


def abort(ctx: Context) -> None:
    """End a run from outside (Jenkins' abort, a lost agent): production back if this run had switched it."""
    failed = stages.next_stage(ctx.record)
    if failed is None:
        return
    rolled_back = None
    before = ctx.record.get("production_before")
    if stages.needs_rollback(failed, before, _production(ctx), bool(ctx.record["rolled_back"])):
        rolled_back = ctx.record["rolled_back"] = _roll_back(ctx)
    version, production = ctx.record["version"], _production(ctx)
    ctx.record["outcome"] = stages.outcome(failed, "aborted", rolled_back, version, production)
    ctx.record["finished"] = records.now()
    records.save(ctx.stack, ctx.record)


def interrupt(signum, frame):
    """SIGTERM's handler while a run goes on (Jenkins' abort): ends the stage like Ctrl-C, recorded, rolled back."""
    raise KeyboardInterrupt


def exit_code(record: dict) -> int:
    """0 passed, 1 a stage failed (production rolled back if it had been switched), 3 the rollback failed."""
    if record.get("rolled_back") is False:
        return EXIT_ROLLBACK_FAILED
    return EXIT_FAILED if any(s["status"] == stages.FAILED for s in record["stages"]) else 0
