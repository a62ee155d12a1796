"""Load-test Nginx with headless Locust and judge it: error ratio, p99 and requests/s (the pipeline's load gate).

Reports go to --out (Locust's CSV and HTML). A missed threshold exits 1 with the
thresholds it missed; ROUTE /test/predict tests staging.
"""

from pathlib import Path


def arguments(parser) -> None:
    from twinserve.pipeline.loadtest import Thresholds

    defaults = Thresholds()
    parser.add_argument("--host", help="default: the stack's Nginx URL")
    parser.add_argument("--route", default="/predict", choices=["/predict", "/test/predict"])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=25)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, help="default: var/loadtest in the project directory")
    parser.add_argument("--max-error-ratio", type=float, default=defaults.max_error_ratio)
    parser.add_argument("--max-p99-ms", type=float, default=defaults.max_p99_ms)
    parser.add_argument("--min-rps", type=float, default=defaults.min_rps)


def run(args) -> None:
    from twinserve.errors import CheckFailed
    from twinserve.pipeline.loadtest import Thresholds, judge, run_locust
    from twinserve.settings import load_stack, project_dir

    args.out = args.out or project_dir() / "var" / "loadtest"
    host = args.host or load_stack(args.stack).nginx.url
    agg = run_locust(host, args.route, args.users, args.spawn_rate, args.seconds, args.out)
    print(
        f"locust {args.users} users {args.seconds}s on {host}{args.route}: {agg.requests} requests, "
        f"{agg.failures} failures (ratio {agg.error_ratio:.4f}), p99 {agg.p99_ms:.0f} ms, {agg.rps:.1f} req/s"
    )
    print(f"reports: {args.out}/locust_stats.csv, {args.out}/locust.html")
    missed = judge(agg, Thresholds(args.max_error_ratio, args.max_p99_ms, args.min_rps))
    if missed:
        raise CheckFailed(f"missed: {'; '.join(missed)}")
    print("loadtest: passed")
