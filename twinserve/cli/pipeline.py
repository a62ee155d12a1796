"""Run the delivery pipeline, whole or one stage at a time (make pipeline, Jenkins).

    run   --model-dir models/regressor [--version 1.1] [--approve] [--seed N] [--skip test train]
    start --model-dir ... [--version V] [--run-id ID]        a new run record; prints its id (Jenkins)
    stage <name> --run-id ID [--approve] [--seed N] [--skip]  the run's next stage (Jenkins)
    abort --run-id ID                                         end a run; roll back if it had promoted (Jenkins)
    show  [--run-id ID]                                       a run's summary, or the recent runs

Exit codes: 0 passed (run: promoted), 1 a stage failed (and, after promotion,
production was rolled back), 2 bad arguments, 3 the rollback itself failed.
"""

import signal
import sys
from pathlib import Path


def arguments(parser) -> None:
    from twinserve.pipeline import stages

    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for command, help_text in (("run", "every stage, in one process"), ("start", "a new run record; prints its id")):
        sp = sub.add_parser(command, help=help_text)
        sp.add_argument("--model-dir", type=Path, required=True, help="e.g. models/regressor")
        sp.add_argument("--version", help="the version to build (default: the next minor version)")
        sp.add_argument("--run-id", help="default: time, model and version")
    run_parser = sub.choices["run"]
    stage = sub.add_parser("stage", help="the run's next stage")
    stage.add_argument("name", choices=stages.STAGES)
    stage.add_argument("--run-id", required=True)
    skippable = "/".join(stages.SKIPPABLE)
    stage.add_argument("--skip", action="store_true", help=f"record the stage as skipped ({skippable} only)")
    for sp in (run_parser, stage):
        sp.add_argument("--approve", action="store_true", help="approve promotion without the prompt")
        sp.add_argument("--seed", type=int, help="training seed (default: the training script's)")
    run_parser.add_argument("--skip", nargs="+", default=[], choices=stages.SKIPPABLE, metavar="STAGE")
    sub.add_parser("abort", help="end a run; roll back if it had promoted").add_argument("--run-id", required=True)
    sub.add_parser("show", help="a run's summary, or the recent runs").add_argument("--run-id")


def run(args) -> int:
    from twinserve.pipeline import record as records
    from twinserve.pipeline import runs, stages
    from twinserve.pipeline.steps import Context
    from twinserve.settings import load_stack

    stack = load_stack(args.stack)
    if args.command == "show":
        if args.run_id:
            print(stages.summary(records.load(stack, args.run_id)))
        else:
            for r in records.history(stack)[-20:]:
                print(f"{r['started']}  {r['run_id']:<40} {r.get('outcome', 'running')}")
        return 0
    if args.command == "start":
        print(runs.start(stack, args.model_dir, args.version, args.run_id)["run_id"])
        return 0
    signal.signal(signal.SIGTERM, runs.interrupt)
    if args.command == "abort":
        ctx = Context(stack, records.load(stack, args.run_id))
        runs.abort(ctx)
        print(f"outcome: {ctx.record.get('outcome')}")
        return runs.exit_code(ctx.record)
    if args.command == "stage":
        ctx = Context(stack, records.load(stack, args.run_id), args.approve, args.seed, sys.stdin.isatty())
        runs.run_stage(ctx, args.name, args.skip)
        if ctx.record.get("outcome"):
            print(f"outcome: {ctx.record['outcome']}")
        return runs.exit_code(ctx.record)
    record = runs.start(stack, args.model_dir, args.version, args.run_id)
    ctx = Context(stack, record, args.approve, args.seed, sys.stdin.isatty())
    print(f"pipeline run {record['run_id']}: {record['model']} {record['version']}", flush=True)
    for name in stages.STAGES:
        if not runs.run_stage(ctx, name, skip=name in args.skip):
            break
    print(stages.summary(ctx.record))
    return runs.exit_code(ctx.record)
