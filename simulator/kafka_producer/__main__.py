"""python -m simulator.kafka_producer: publish a synthetic input stream to the stack's broker.

    python -m simulator.kafka_producer --messages 2000 --drift-after 1000 --feature x1 --shift 1

Tags messages with a model version whose archive is in the model store (its
metadata carries the reference statistics); the broker and topic come from the
stack description unless given.
"""

import argparse
import sys
import time

from simulator.kafka_producer.stream import Drift, messages
from twinserve.errors import TwinserveError
from twinserve.settings import load_stack
from twinserve.store.archives import archive_for


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulator.kafka_producer", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="regressor")
    p.add_argument("--version", help="default: the version the stack description builds first")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--rows", type=int, default=1, help="rows per message")
    p.add_argument("--feature", help="the feature to shift; none: no drift")
    p.add_argument("--shift", type=float, default=1.0, help="in reference standard deviations")
    p.add_argument("--scale", type=float, default=1.0, help="the feature's spread times this, same mean")
    p.add_argument("--drift-after", type=int, default=0, help="messages before the shift")
    p.add_argument("--rate", type=float, default=0, help="messages per second; 0: as fast as possible")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", help="default: the stack's broker")
    p.add_argument("--topic", help="default: the stack's inputs topic")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        stack = load_stack()
        if args.model not in stack.models:
            raise TwinserveError(f"unknown model {args.model!r}; the stack serves {sorted(stack.models)}")
        version = args.version or stack.models[args.model].version
        _, meta = archive_for(stack, args.model, version)
        drift = Drift(args.feature, args.shift, args.drift_after, args.scale)
        reference = meta["reference_stats"]
        stream = list(messages(args.model, version, reference, args.messages, args.rows, drift, args.seed))
    except (TwinserveError, ValueError) as exc:
        print(f"kafka_producer: error: {exc}", file=sys.stderr)
        return 2

    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from twinserve.drift.topic import ensure_topic

    bootstrap, topic = args.bootstrap or stack.drift.bootstrap, args.topic or stack.drift.topic
    try:
        ensure_topic(bootstrap, topic, max_mb=stack.drift.topic_max_mb)  # one partition, as the stack makes it
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=5, max_block_ms=10000, allow_auto_create_topics=False
        )
        for message in stream:
            producer.send(topic, message)
            if args.rate > 0:
                time.sleep(1.0 / args.rate)
        producer.flush(timeout=30)
        producer.close()
    except KafkaError as exc:
        print(f"kafka_producer: error: broker {bootstrap}: {exc}", file=sys.stderr)
        return 1
    print(f"published {len(stream)} messages of {args.rows} row(s) for {args.model} {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
