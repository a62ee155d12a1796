"""`twinserve bench cache`: what Nginx's response cache buys a text model under a repeating workload.

The workload of the DistilBERT-with-Redis services this field compares with: 95% of
the requests repeat 20 sentences, the other 5% are drawn from the model's whole
training corpus (3,000 sentences: few repeat within a run). The same wrk workload
runs against the model's production route with the cache on, and with every request
saying `Cache-Control: no-cache` (answered by TorchServe, nothing stored: the cache
off for that request), in turn for `runs` rounds. The hit ratio comes from Nginx's
own counters (twinserve_cache_requests_total) over the cached runs. Targets: hit
ratio at least 90%, at least 5x the requests/s of the uncached workload, 0 errors.
"""

import json
import time
from datetime import UTC, datetime

from twinserve.errors import ConfigError
from twinserve.routes import route_for
from twinserve.settings import load_stack
from twinserve.tools.bench import cores, write_report
from twinserve.tools.wrk import WrkRun, repeating_script

REPEATED, SHARE = 20, 0.95
TARGET_HIT_RATIO, TARGET_SPEEDUP = 0.90, 5.0


def corpus(stack, model: str) -> list[str]:
    """The model's training sentences (models/<model>/data/*.json: [{"text": ...}, ...]), in file order."""
    files = sorted((stack.models[model].dir / "data").glob("*.json"))
    texts = [row["text"].strip() for f in files for row in json.loads(f.read_text()) if str(row.get("text")).strip()]
    if len(texts) < 100:
        raise ConfigError(f"bench cache needs a text model with data/*.json sentences; {model} has {len(texts)}")
    return texts


def cache_counts(stack, model: str) -> tuple[float, float]:
    """(hits, misses) Nginx has counted for the model."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{stack.nginx.admin_url}/metrics", timeout=10).text
    found = {"hit": 0.0, "miss": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "twinserve_cache_requests_total" and labels.get("model") == model:
                found[labels["result"]] = found.get(labels["result"], 0.0) + sample.value
    return found["hit"], found["miss"]


def report(args) -> int:
    stack = load_stack(args.stack)
    model = stack.model(args.model)
    texts = corpus(stack, model)
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    script = repeating_script(bodies[:REPEATED], bodies[REPEATED:], SHARE, "application/json")
    url = f"{stack.nginx.url}{route_for(model)}"
    setups = {"cache on": {}, "cache off (Cache-Control: no-cache)": {"Cache-Control": "no-cache"}}
    started = time.monotonic()
    for name, headers in setups.items():
        print(f"warming up {name} ({args.warmup}s) ...", flush=True)
        warm = WrkRun(url, args.connections, duration_s=args.warmup, headers=headers, script=script)
        warm.wait(timeout=args.warmup + 60)
    results: dict[str, list] = {name: [] for name in setups}
    hits = misses = 0.0
    for _ in range(args.runs):
        for name, headers in setups.items():
            before = cache_counts(stack, model)
            run = WrkRun(url, args.connections, duration_s=args.seconds, headers=headers, script=script)
            results[name].append(run.wait(timeout=args.seconds + 60))
            after = cache_counts(stack, model)
            if name == "cache on":
                hits, misses = hits + after[0] - before[0], misses + after[1] - before[1]
    lines = [
        f"twinserve bench cache, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cores()} cores, model {model}",
        f"wrk -t2 -c{args.connections} keep-alive; {SHARE:.0%} of requests repeat {REPEATED} sentences, the rest "
        f"from the other {len(texts) - REPEATED} of the corpus; warmed up {args.warmup}s, then {args.runs} rounds "
        f"of {args.seconds}s per setup in turn; median run by 2xx req/s (a 429, 5xx or socket error counts against)",
        "",
        "| setup | 2xx req/s | p50 ms | p99 ms | non-2xx | socket errors |",
        "|---|---|---|---|---|---|",
    ]
    medians = {}
    for name, reports in results.items():
        best = sorted(reports, key=lambda r: r.ok_rps)[len(reports) // 2]
        medians[name] = best.ok_rps
        non_2xx, sockets = sum(r.non_2xx for r in reports), sum(r.socket_errors for r in reports)
        lines.append(f"| {name} | {best.ok_rps:,.0f} | {best.p50_ms:.1f} | {best.p99_ms:.1f} | {non_2xx} | {sockets} |")
    on, off = medians.values()
    ratio = hits / (hits + misses) if hits + misses else 0.0
    speedup = on / off if off else float("inf")
    errors = sum(r.non_2xx + r.socket_errors for reports in results.values() for r in reports)
    by_round = [f"{a.ok_rps / b.ok_rps:.1f}" for a, b in zip(*results.values(), strict=True) if b.ok_rps]
    lines += [
        "",
        f"hit ratio with the cache on: {ratio:.1%} ({hits:,.0f} hits, {misses:,.0f} misses, Nginx's counters)",
        f"cache on ÷ off, by round: {', '.join(by_round)}; of the medians: {speedup:.1f}×",
        "",
        f"target {'met' if ratio >= TARGET_HIT_RATIO else 'MISSED'}: hit ratio ≥ {TARGET_HIT_RATIO:.0%}: {ratio:.1%}",
        f"target {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}: req/s ≥ {TARGET_SPEEDUP:g}× the uncached: "
        f"{speedup:.1f}×",
        f"target {'met' if errors == 0 else 'MISSED'}: 0 non-2xx and socket errors: {errors}",
        f"took {time.monotonic() - started:.0f}s",
    ]
    write_report(lines, args.out / "cache.md")
    return 0
