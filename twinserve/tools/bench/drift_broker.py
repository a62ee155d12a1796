"""`twinserve bench drift-broker`: the broker's memory per million input rows, and the consumer's
throughput, on a broker of its own (no stack needed; a free loopback port).

For each run a fresh Tansu (the stack's binary, in-memory storage) is started and one
producer writes N rows in messages of R rows (the publisher merges batches into
messages of up to 2,000 rows), uncompressed as the publisher sends them, or gzipped
(a mitigation, not what the stack does). Then an in-process DriftConsumer, the
service's code, reads them all. Reported: the broker's resident memory (VmRSS) after
the rows were written and read, per million rows (Tansu's in-memory engine keeps
every record: no retention); rows produced against rows counted; the consumer's rows/s
from its first row to its last (through the broker, one core).
"""

import socket
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from twinserve.drift.consumer import ConsumerSettings, DriftConsumer
from twinserve.drift.topic import ensure_topic
from twinserve.runtime.monitoring import broker_bin
from twinserve.runtime.processes import wait_ready
from twinserve.tools.bench import cores, write_report
from twinserve.tools.bench.drift import watch_counter

REFERENCE = {"x1": {"mean": 0.5, "std": 0.29}, "x2": {"mean": 0.5, "std": 0.29}}
TOPIC = "bench-inputs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run(rows: int, rows_per_message: int, compression: str | None) -> dict:
    """One broker, one producer, then one consumer; the figures of one line of the report."""
    from kafka import KafkaProducer

    from simulator.kafka_producer.stream import messages

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen(
        [broker_bin(), "broker", f"--listener-url={url}", f"--advertised-listener-url={url}",
         "--storage-engine=memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(url, 30)
        bootstrap = f"127.0.0.1:{port}"
        ensure_topic(bootstrap, TOPIC, max_mb=64)  # as the stack makes it (retention.bytes, ignored here)
        idle_rss = rss_bytes(broker.pid)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=5, allow_auto_create_topics=False, compression_type=compression
        )
        n_messages = rows // rows_per_message
        for raw in messages("regressor", "1.0", REFERENCE, n_messages, rows_per_message, seed=7):
            producer.send(TOPIC, raw)
        producer.flush(120)
        producer.close()
        produced = n_messages * rows_per_message

        registry = CollectorRegistry()
        settings = ConsumerSettings(bootstrap, TOPIC, group_id="bench")
        consumer = DriftConsumer(settings, registry, references={("regressor", "1.0"): REFERENCE})
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()

        def counted() -> float:
            labels = {"model": "regressor", "version": "1.0", "feature": "x1"}
            return registry.get_sample_value("twinserve_drift_count", labels) or 0.0

        first_at, first_rows, last_at, last_rows = watch_counter(counted, produced, 600)
        stop.set()
        thread.join(30)
        rate = (last_rows - first_rows) / (last_at - first_at) if last_at > first_at else float("nan")
        return {"produced": produced, "seen": last_rows, "rss": rss_bytes(broker.pid), "idle_rss": idle_rss,
                "rows_per_s": rate}  # fmt: skip
    finally:
        broker.terminate()
        broker.wait(10)


def report(args) -> int:
    """What `twinserve bench` runs, with its parsed arguments (twinserve/cli/bench.py)."""
    lines = [
        f"twinserve drift broker bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Tansu in memory, {cores()} cores",
        f"{args.rows:,} rows of 2 features per run (the simulator's rows, ~41 bytes of JSON each)",
        "",
        "| rows/message | compression | broker RSS idle MB | broker RSS after MB | MB per million rows "
        "| rows produced | rows counted | consumer rows/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for per_message in args.rows_per_message:
        for compression in (None, "gzip"):
            print(f"{per_message} rows/message, {compression or 'uncompressed'} ...", flush=True)
            r = run(args.rows, per_message, compression)
            per_million = (r["rss"] - r["idle_rss"]) / 1e6 / (r["produced"] / 1e6)
            lines.append(
                f"| {per_message} | {compression or 'none (as the publisher)'} | {r['idle_rss'] / 1e6:.0f} "
                f"| {r['rss'] / 1e6:.0f} | {per_million:.1f} | {r['produced']:,} | {r['seen']:,.0f} "
                f"| {r['rows_per_s']:,.0f} |"
            )
    write_report(lines, args.out / "drift-broker.md")
    return 0
