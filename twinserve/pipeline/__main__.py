"""python -m twinserve.pipeline: run the delivery pipeline, whole or one stage at a time.

    run   --model-dir models/regressor [--version 1.1] [--approve] [--seed N] [--skip test train]
    start --model-dir ... [--version V] [--run-id ID]      a new run record; prints its id (Jenkins)
    stage <name> --run-id ID [--approve] [--seed N] [--skip]  the run's next stage (Jenkins)
    abort --run-id ID                                       end a run; roll back if it had promoted (Jenkins)
    show  [--run-id ID]                                     a run's summary, or the recent runs

Exit codes: 0 passed (run: promoted), 1 a stage failed (and, after promotion,
production was rolled back), 2 bad arguments, 3 the rollback itself failed.
"""

import argparse
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from archiver.build import VERSION_RE
from twinserve.errors import EXIT_USAGE, ConfigError, TwinserveError
from twinserve.pipeline import record as records
from twinserve.pipeline import stages
from twinserve.pipeline.steps import STEPS, Context
from twinserve.release.promote import switch_to
from twinserve.runtime import nginx
from twinserve.settings import Stack, load_stack
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
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a bug or a tool's exit is a failed stage too
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


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (Jenkins' abort) ends the stage like Ctrl-C: recorded, rolled back


def _exit_code(record: dict) -> int:
    if record.get("rolled_back") is False:
        return EXIT_ROLLBACK_FAILED
    return 1 if any(s["status"] == stages.FAILED for s in record["stages"]) else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m twinserve.pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--stack", type=Path, help="stack description (default: $TWINSERVE_STACK or config/stack.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    for command in ("run", "start"):
        sp = sub.add_parser(command)
        sp.add_argument("--model-dir", type=Path, required=True, help="e.g. models/regressor")
        sp.add_argument("--version", help="the version to build (default: the next minor version)")
        sp.add_argument("--run-id", help="default: time, model and version")
    run = sub.choices["run"]
    stage = sub.add_parser("stage")
    stage.add_argument("name", choices=stages.STAGES)
    stage.add_argument("--run-id", required=True)
    skippable = "/".join(stages.SKIPPABLE)
    stage.add_argument("--skip", action="store_true", help=f"record the stage as skipped ({skippable} only)")
    for sp in (run, stage):
        sp.add_argument("--approve", action="store_true", help="approve promotion without the prompt")
        sp.add_argument("--seed", type=int, help="training seed (default: the training script's)")
    run.add_argument("--skip", nargs="+", default=[], choices=stages.SKIPPABLE, metavar="STAGE")
    sub.add_parser("abort").add_argument("--run-id", required=True)
    show = sub.add_parser("show")
    show.add_argument("--run-id")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack = load_stack(args.stack)
        if args.command == "show":
            if args.run_id:
                print(stages.summary(records.load(stack, args.run_id)))
            else:
                for r in records.history(stack)[-20:]:
                    print(f"{r['started']}  {r['run_id']:<40} {r.get('outcome', 'running')}")
            return 0
        if args.command == "abort":
            ctx = Context(stack, records.load(stack, args.run_id))
            abort(ctx)
            print(f"outcome: {ctx.record.get('outcome')}")
            return _exit_code(ctx.record)
        if args.command == "start":
            print(start(stack, args.model_dir, args.version, args.run_id)["run_id"])
            return 0
        if args.command == "stage":
            ctx = Context(stack, records.load(stack, args.run_id), args.approve, args.seed, sys.stdin.isatty())
            run_stage(ctx, args.name, args.skip)
            if ctx.record.get("outcome"):
                print(f"outcome: {ctx.record['outcome']}")
            return _exit_code(ctx.record)
        record = start(stack, args.model_dir, args.version, args.run_id)
        ctx = Context(stack, record, args.approve, args.seed, sys.stdin.isatty())
        print(f"pipeline run {record['run_id']}: {record['model']} {record['version']}", flush=True)
        for name in stages.STAGES:
            if not run_stage(ctx, name, skip=name in args.skip):
                break
        print(stages.summary(ctx.record))
        return _exit_code(ctx.record)
    except (ConfigError, ValueError) as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TwinserveError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
