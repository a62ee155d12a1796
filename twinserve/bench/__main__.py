"""make bench: twinserve's /predict against the peers, side by side.

Same machine, same load generator (wrk -t2, keep-alive, POST {"data": [0.2, 0.6]}),
same model weights (the archive production serves). For each setup: a warm-up,
then `runs` runs per connection count; the table shows the median run by
requests/s, with p50/p99 of that run and non-2xx / socket errors summed over
all runs. Then ApacheBench, the workshop's own check, against /predict.
"""

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from twinserve.bench import cores, peers, write_report
from twinserve.models import archive_for
from twinserve.settings import REPO_ROOT, load_stack
from twinserve.state import read_deployments, read_production
from twinserve.wrk import WrkReport, run

TWINSERVE = "twinserve /predict (Nginx)"
DEFAULT_TS = "TorchServe 0.12 default config, direct"
FASTAPI = "FastAPI + uvicorn, 2 workers"


def measure(url: str, connections: list[int], runs: int, seconds: int, warmup: int) -> dict[int, list[WrkReport]]:
    run(url, max(connections), warmup)
    return {c: [run(url, c, seconds) for _ in range(runs)] for c in connections}


def summarise(reports: list[WrkReport]) -> dict:
    median = sorted(reports, key=lambda r: r.rps)[len(reports) // 2]
    return {
        "rps": median.rps,
        "ok_rps": median.ok_rps,
        "p50": median.p50_ms,
        "p99": median.p99_ms,
        "non_2xx": sum(r.non_2xx for r in reports),
        "socket_errors": sum(r.socket_errors for r in reports),
        "requests": sum(r.requests for r in reports),
        "generator_cores": statistics.mean(r.generator_cpu_s / r.seconds for r in reports),
    }


def table(results: dict[str, dict[int, dict]]) -> str:
    lines = [
        "| setup | conns | req/s | 2xx req/s | p50 ms | p99 ms | non-2xx | socket errors | 2xx req/s vs twinserve |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_conn in results.items():
        for conns, s in by_conn.items():
            base = results[TWINSERVE][conns]["ok_rps"]
            ratio = "1.00" if name == TWINSERVE else f"{s['ok_rps'] / base:.2f} (twinserve {base / s['ok_rps']:.1f}×)"
            lines.append(
                f"| {name} | {conns} | {s['rps']:,.0f} | {s['ok_rps']:,.0f} | {s['p50']:.1f} | {s['p99']:.1f} | "
                f"{s['non_2xx']:,} of {s['requests']:,} | {s['socket_errors']:,} | {ratio} |"
            )
    return "\n".join(lines)


def apache_bench(url: str, requests_n: int = 10000, concurrency: int = 200) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as body:
        body.write('{"data": [0.2, 0.6]}')
        body.flush()
        out = subprocess.run(
            ["ab", "-q", "-n", str(requests_n), "-c", str(concurrency), "-p", body.name, "-T", "application/json", url],
            capture_output=True, text=True, timeout=300,
        ).stdout  # fmt: skip
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    rps = re.search(r"Requests per second:\s+([\d.]+)", out)
    if not (failed and rps):
        return f"ab -n {requests_n} -c {concurrency}: no report ({out.strip()[-200:]})"
    return (
        f"ab -n {requests_n} -c {concurrency} {url}: failed requests {failed.group(1)}, "
        f"non-2xx {non2xx.group(1) if non2xx else 0}, {float(rps.group(1)):,.0f} req/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twinserve.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", choices=["twinserve", "default", "fastapi"], nargs="+")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "var" / "bench")
    args = parser.parse_args(argv)

    stack = load_stack()
    production = read_production(stack)
    model = next(iter(stack.models))
    version = read_deployments(stack)[production][model]
    archive, _ = archive_for(stack, model, version)
    setups = {
        TWINSERVE: ("twinserve", lambda work: nullcontext(f"{stack.nginx.url}/predict")),
        DEFAULT_TS: ("default", lambda work: peers.default_torchserve(archive, work)),
        FASTAPI: ("fastapi", lambda work: peers.fastapi_uvicorn(archive, work)),
    }
    results = {}
    started = time.monotonic()
    for name, (key, serve) in setups.items():
        if args.only and key not in args.only and name != TWINSERVE:
            continue
        with tempfile.TemporaryDirectory() as work, serve(Path(work)) as url:
            print(f"measuring {name} at {url} ...", flush=True)
            reports = measure(url, args.connections, args.runs, args.seconds, args.warmup)
        results[name] = {c: summarise(r) for c, r in reports.items()}
    ab_line = apache_bench(f"{stack.nginx.url}/predict")
    generator = statistics.mean(s["generator_cores"] for by in results.values() for s in by.values())

    write_report([
        f"twinserve bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, model {model} {version} "
        f"(production: {production}), {cores()} cores",
        f"wrk -t2 keep-alive, {args.runs} runs × {args.seconds}s per row after a {args.warmup}s warm-up; "
        f"median run by req/s; errors summed over the runs",
        "",
        table(results),
        "",
        f"load generator cost: wrk used {generator:.2f} cores on average (same machine, same cores)",
        ab_line,
        f"took {time.monotonic() - started:.0f}s",
    ], args.out / "latest.md")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
