"""Load-test a model's route with headless Locust and its samples, and judge it: error ratio, p99 and req/s.

MODEL is a model of the stack (default: its default model); Locust sends its
`twinserve.samples` (model-config.yaml), one at random per request, to its
production route (--staging: its test route). Reports go to --out (Locust's CSV
and HTML). A missed threshold exits 1 with the thresholds it missed.
"""

from pathlib import Path


def arguments(parser) -> None:
    from twinserve.pipeline.loadtest import Thresholds

    defaults = Thresholds()
    parser.add_argument("--host", help="default: the stack's Nginx URL")
    parser.add_argument("--model", help="a model of the stack (default: its default model)")
    parser.add_argument("--staging", action="store_true", help="the model's staging route instead of production's")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=25)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, help="default: var/loadtest in the project directory")
    parser.add_argument("--max-error-ratio", type=float, default=defaults.max_error_ratio)
    parser.add_argument("--max-p99-ms", type=float, default=defaults.max_p99_ms)
    parser.add_argument("--min-rps", type=float, default=defaults.min_rps)


def run(args) -> None:
    from twinserve.errors import CheckFailed
    from twinserve.pipeline.loadtest import Thresholds, judge, model_samples, run_locust
    from twinserve.routes import route_for
    from twinserve.settings import load_stack, project_dir

    stack = load_stack(args.stack)
    args.out = args.out or project_dir() / "var" / "loadtest"
    host = args.host or stack.nginx.url
    model = stack.model(args.model)
    samples = model_samples(stack.models[model].dir)
    route = route_for(model, staging=args.staging)
    agg = run_locust(host, route, args.users, args.spawn_rate, args.seconds, args.out, samples)
    print(
        f"locust {args.users} users {args.seconds}s on {host}{route} ({model}, {len(samples)} samples): "
        f"{agg.requests} requests, "
        f"{agg.failures} failures (ratio {agg.error_ratio:.4f}), p99 {agg.p99_ms:.0f} ms, {agg.rps:.1f} req/s"
    )
    print(f"reports: {args.out}/locust_stats.csv, {args.out}/locust.html")
    missed = judge(agg, Thresholds(args.max_error_ratio, args.max_p99_ms, args.min_rps))
    if missed:
        raise CheckFailed(f"missed: {'; '.join(missed)}")
    print("loadtest: passed")
