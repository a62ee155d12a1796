"""Benchmark: serving (twinserve against default TorchServe and FastAPI), drift (its cost), drift-broker.

    serving        each model's route vs its peers, wrk at 1/10/50/200 connections, a plot per model (needs `up`)
    drift          the cost of publishing inputs on /predict, the consumer's throughput (needs `twinserve up`)
    drift-broker   the broker's memory per million input rows (a broker of its own; no stack needed)
    cache          a text model with Nginx's response cache on and off, 95% of requests repeating (needs `up`)

Each prints its report and keeps it in var/bench/ (docs/benchmarks.md quotes them).
"""

from pathlib import Path


def arguments(parser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True, metavar="<benchmark>")
    serving = sub.add_parser("serving", help="each model vs default TorchServe and its FastAPI peers, a plot per model")
    serving.add_argument("--models", nargs="+", help="models of the stack (default: all of them)")
    serving.add_argument("--connections", type=int, nargs="+", help="default: 1 10 50 200; text models 1 8 32 64")
    serving.add_argument("--runs", type=int, default=3)
    serving.add_argument("--seconds", type=int, default=5)
    serving.add_argument("--warmup", type=int, default=10)
    serving.add_argument("--only", choices=["twinserve", "default", "fastapi", "fastapi-tuned"], nargs="+")
    drift = sub.add_parser("drift", help="the cost of publishing inputs, the consumer's throughput")
    drift.add_argument("--connections", type=int, nargs="+", default=[10, 100])
    drift.add_argument("--pairs", type=int, default=3, help="interleaved A/B pairs per row")
    drift.add_argument("--seconds", type=int, default=8)
    drift.add_argument("--messages", type=int, default=20000)
    broker = sub.add_parser("drift-broker", help="the broker's memory per million rows, on a broker of its own")
    broker.add_argument("--rows", type=int, default=1_000_000)
    broker.add_argument("--rows-per-message", type=int, nargs="+", default=[500, 48])
    cache = sub.add_parser("cache", help="a text model with the response cache on and off, 95%% repeating requests")
    cache.add_argument("--model", default="sentiment", help="a text model of the stack, cached (default: sentiment)")
    cache.add_argument("--connections", type=int, default=32)
    cache.add_argument("--runs", type=int, default=3)
    cache.add_argument("--seconds", type=int, default=10)
    cache.add_argument("--warmup", type=int, default=5)
    for sp in (serving, drift, broker, cache):
        sp.add_argument("--out", type=Path, help="where the report is kept (default: var/bench in the project)")


def run(args) -> int:
    from twinserve.settings import project_dir

    args.out = args.out or project_dir() / "var" / "bench"
    if args.bench == "serving":
        from twinserve.tools.bench import serving as bench
    elif args.bench == "drift":
        from twinserve.tools.bench import drift as bench
    elif args.bench == "cache":
        from twinserve.tools.bench import cache as bench
    else:
        from twinserve.tools.bench import drift_broker as bench
    return bench.report(args)
