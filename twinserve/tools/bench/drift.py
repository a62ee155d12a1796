"""`twinserve bench drift`: what drift detection costs a prediction, and how fast the consumer keeps up.

1. Publishing cost, A/B on one TorchServe colour: the same wrk load straight to
   the production colour's inference port, with and without the header Nginx
   puts on /predict (X-Twinserve-Route: production, which makes the handler
   publish the batch's inputs). Same process, same model, the only difference
   is publishing. Runs interleaved (A, B, A, B, ...), medians reported.
2. The same through Nginx, as a user sees it: /predict (published) against
   /test/predict (not published), when both colours serve the same version.
3. The publish call itself, in-process: what the handler adds to each batch.
4. Consumer throughput: N messages written to a fresh single-partition topic on
   the stack's broker, then read by an in-process DriftConsumer (the service's
   code, its own group and registry, one thread: one core) — messages/s from
   its first message to its last, and the same messages through process()
   alone (no broker). The messages carry every column of the version's
   reference, the prediction too, as the handler publishes them; with its
   sketches the consumer makes the verdict as in the stack. Target (issue 18):
   at least 100,000 rows/s from the broker in batched (48-row) messages,
   printed met or MISSED. At most MAX_ROWS rows per run (the broker's memory bound).

The wrk payload is constant ({"data": [0.2, 0.6]}), so the live drift
consumer sees this traffic as drift on both features: it is.
"""

import dataclasses
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.drift.messages import encode
from twinserve.drift.topic import ensure_topic
from twinserve.routes import predictions_path, route_for
from twinserve.runtime.torchserve import authorization
from twinserve.settings import Stack, load_stack
from twinserve.store.archives import archive_for
from twinserve.store.state import read_deployments, read_production
from twinserve.tools.bench import cores, write_report
from twinserve.tools.wrk import WrkReport, run

PRODUCTION_ROUTE = {"X-Twinserve-Route": "production"}
ROWS_TARGET = 100_000  # rows/s in batched messages, from the broker, one core (issue 18)
# Rows written per consumer run: ~25 MB in the native broker, under drift.topic_max_mb (64) with the
# rest of the bench. Past it the supervisor recycles the broker (the stack's consumer has caught up:
# it does not read the bench's topics), and the bench's topic with it.
MAX_ROWS = 400_000


def ab_runs(a: tuple[str, dict], b: tuple[str, dict], connections: int, pairs: int, seconds: int):
    """Interleaved wrk runs of two (url, headers) setups, after a warm-up of each."""
    for url, headers in (a, b):
        run(url, connections, 3, headers=headers)
    results: tuple[list[WrkReport], list[WrkReport]] = ([], [])
    for _ in range(pairs):
        for (url, headers), reports in zip((a, b), results, strict=True):
            reports.append(run(url, connections, seconds, headers=headers))
    return results


def ab_row(label: str, connections: int, with_publish: list[WrkReport], without: list[WrkReport]) -> str:
    def med(reports, attr):
        return statistics.median(getattr(r, attr) for r in reports)

    errors = sum(r.non_2xx + r.socket_errors for r in with_publish + without)
    p50_on, p50_off = med(with_publish, "p50_ms"), med(without, "p50_ms")
    return (
        f"| {label} | {connections} | {med(with_publish, 'rps'):,.0f} | {med(without, 'rps'):,.0f} | "
        f"{p50_on:.2f} | {p50_off:.2f} | {p50_on - p50_off:+.2f} | "
        f"{med(with_publish, 'p99_ms'):.1f} | {med(without, 'p99_ms'):.1f} | {errors} |"
    )


def publish_call_cost(stack: Stack, model: str, version: str, calls: int) -> str:
    """Per-call time of what the handler adds to a batch: queue its rows.

    Not the whole cost: encoding and sending happen on the worker's background
    thread, in the same process; the A/B rows above measure that.
    """
    import sys
    import tempfile

    sys.path.insert(0, str(stack.project / "handlers"))
    from input_publisher import InputPublisher

    topic = f"bench-publish-{uuid.uuid4().hex[:8]}"
    ensure_topic(stack.drift.bootstrap, topic)
    rows = [[0.2, 0.6]] * 48  # a full batch (batch_size 48)
    with tempfile.TemporaryDirectory() as stats_dir:
        publisher = InputPublisher(stack.drift.bootstrap, topic, Path(stats_dir), stack.drift.queue_batches)
        took = []
        for _ in range(calls):
            start = time.perf_counter()
            publisher.publish(model, version, ["x1", "x2"], rows)
            took.append(time.perf_counter() - start)
            time.sleep(0.0005)  # ~2,000 batches/s: a busy worker, not a queue-filling loop
        time.sleep(2)
        stats = dict(publisher.stats)
        publisher.close()
    took.sort()
    return (
        f"publish call (48-row batch), {calls:,} calls: "
        f"p50 {took[len(took) // 2] * 1e6:.1f} µs, p99 {took[int(len(took) * 0.99)] * 1e6:.1f} µs; "
        f"batches sent {stats['batches_sent']:,} in {stats['messages_sent']:,} messages, "
        f"dropped {stats['batches_dropped']:,}"
    )


def watch_counter(read, target: float, timeout: float) -> tuple[float, float, float, float]:
    """(time, value) when `read()` first moves from 0 and when it reaches `target` (or the timeout):
    a consumer's pace from its first message to its last, without its start-up.

    Read every 5 ms, not more often: the watching thread takes the GIL from the consumer
    it measures each time (±5 ms on runs of seconds)."""
    deadline = time.monotonic() + timeout
    while read() == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    first_at, first = time.perf_counter(), read()
    while read() < target and time.monotonic() < deadline:
        time.sleep(0.005)
    return first_at, first, time.perf_counter(), read()


def inputs(model: str, version: str, reference: dict, n: int, rows: int, seed: int) -> list[bytes]:
    """n messages of `rows` rows with every column of the reference (the prediction too, as the
    handler publishes it), drawn as the simulator draws undrifted inputs."""
    import random

    from simulator.kafka_producer.stream import sample_row

    features, rng = sorted(reference), random.Random(seed)
    return [
        encode(model, version, features, [sample_row(reference, features, rng, None, 0.0) for _ in range(rows)])
        for _ in range(n)
    ]


def consumer_throughput(stack: Stack, model: str, version: str, reference: dict, n: int, rows: int) -> str:
    from kafka import KafkaProducer

    topic = f"bench-drift-{uuid.uuid4().hex[:8]}"
    ensure_topic(stack.drift.bootstrap, topic)
    stream = inputs(model, version, reference, n, rows, seed=7)
    started = time.perf_counter()
    producer = KafkaProducer(bootstrap_servers=stack.drift.bootstrap, linger_ms=5, max_block_ms=10000)
    for message in stream:
        producer.send(topic, message)
    producer.flush(timeout=60)
    producer.close()
    produce_s = time.perf_counter() - started

    def consumer(registry):
        # the stack's consumer (its windows and verdict settings) on the bench's own topic, no snapshot
        settings = dataclasses.replace(
            ConsumerSettings.from_stack(stack), topic=topic, group_id=f"bench-{topic}", snapshot=None
        )
        return DriftConsumer(settings, registry, references={(model, version): reference})

    registry = CollectorRegistry()
    live = consumer(registry)
    stop = threading.Event()
    thread = threading.Thread(target=live.run, args=(stop,), daemon=True)
    thread.start()

    def consumed() -> float:
        # the counter alone (~5 us): registry.get_sample_value collects every gauge of the
        # verdict (~85 us), which took a tenth of the measured consumer's core every millisecond
        return live.metrics.consumed.collect()[0].samples[0].value

    first_at, first, last_at, last = watch_counter(consumed, n, 120)
    stop.set()
    thread.join(10)
    if last < n:
        return f"consumer: only {last:.0f} of {n} messages within 120 s"
    via_broker = (last - first) / (last_at - first_at)
    verdicts = registry.get_sample_value("twinserve_drift_verdicts_total", {"model": model, "version": version})

    offline = consumer(CollectorRegistry())
    started = time.perf_counter()
    for message in stream:
        offline.process(message)
    pure = n / (time.perf_counter() - started)
    line = (
        f"consumer, {n:,} messages of {rows} row(s) x {len(reference)} columns, {verdicts or 0:,.0f} verdicts: "
        f"{via_broker:,.0f} messages/s ({via_broker * rows:,.0f} rows/s) from the broker, "
        f"{pure:,.0f} messages/s ({pure * rows:,.0f} rows/s) through process() alone; producing them took "
        f"{produce_s:.1f} s"
    )
    if rows > 1:
        met = "met" if via_broker * rows >= ROWS_TARGET else "MISSED"
        line += f"\n  target >= {ROWS_TARGET:,} rows/s from the broker in batched messages, one core: {met}"
    return line


def report(args) -> int:
    """What `twinserve bench` runs, with its parsed arguments (twinserve/cli/bench.py)."""

    stack = load_stack(args.stack)
    production = read_production(stack)
    staging = stack.other(production)
    model = next(iter(stack.models))
    deployed = read_deployments(stack)
    version = deployed[production][model]
    _, meta = archive_for(stack, model, version)
    started = time.monotonic()

    direct = f"{stack.inference_url(production)}{predictions_path(model)}"
    rows = []
    for conns in args.connections:
        print(f"A/B on {production}, {conns} connections ...", flush=True)
        key = authorization(stack, production, "inference")  # straight on the colour: its token
        on, off = ab_runs((direct, PRODUCTION_ROUTE | key), (direct, key), conns, args.pairs, args.seconds)
        rows.append(ab_row(f"{production} direct: route header on / off", conns, on, off))
        if deployed[staging].get(model) == version:
            print(f"{route_for()} vs {route_for(staging=True)}, {conns} connections ...", flush=True)
            url = stack.nginx.url
            on, off = ab_runs(
                (f"{url}{route_for()}", {}), (f"{url}{route_for(staging=True)}", {}), conns, args.pairs, args.seconds
            )
            rows.append(ab_row(f"Nginx: {route_for()} / {route_for(staging=True)}", conns, on, off))
    if deployed[staging].get(model) != version:
        rows.append(f"| Nginx comparison skipped: staging serves {deployed[staging].get(model)}, not {version} |")
    print("publish call and consumer ...", flush=True)
    call_line = publish_call_cost(stack, model, version, 5000)
    consumer_lines = [
        consumer_throughput(stack, model, version, meta["reference_stats"], min(args.messages, MAX_ROWS // n), n)
        for n in (1, 48)
    ]

    write_report([
        f"twinserve drift bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, model {model} {version}, "
        f"production {production}, {cores()} cores",
        f"wrk -t2 keep-alive; {args.pairs} interleaved pairs × {args.seconds}s per row; medians",
        "",
        "| setup (published / not) | conns | req/s pub | req/s not | p50 ms pub | p50 ms not | p50 Δ ms "
        "| p99 ms pub | p99 ms not | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        call_line,
        *consumer_lines,
        f"took {time.monotonic() - started:.0f}s",
    ], args.out / "drift.md")  # fmt: skip
    return 0
