"""Publish synthetic model inputs to the drift topic, shifted after a while: watch the drift z-score climb.

The simulator (simulator/kafka_producer) samples rows from the reference
statistics of the model version's archive; with --feature it shifts that
feature by --shift reference standard deviations (and multiplies its spread by
--scale around the mean) after --drift-after messages.
Needs the broker (`twinserve up`); see the Drift dashboard or
twinserve_drift_zscore in Prometheus.
"""


def arguments(parser) -> None:
    parser.add_argument("--model", default="regressor")
    parser.add_argument("--version", help="default: the version the stack description builds first")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1, help="rows per message")
    parser.add_argument("--feature", help="the feature to shift; none: no drift")
    parser.add_argument("--shift", type=float, default=1.0, help="in reference standard deviations")
    parser.add_argument("--scale", type=float, default=1.0, help="the feature's spread times this, same mean")
    parser.add_argument("--drift-after", type=int, default=0, help="messages before the shift")
    parser.add_argument("--rate", type=float, default=0, help="messages per second; 0: as fast as possible")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", help="default: the stack's broker")
    parser.add_argument("--topic", help="default: the stack's inputs topic")


def run(args) -> None:
    import sys

    from simulator.kafka_producer.publish import Stream, publish
    from simulator.kafka_producer.stream import Drift
    from twinserve.settings import load_stack

    drift = Drift(feature=args.feature, shift=args.shift, scale=args.scale, after=args.drift_after)
    stream = Stream(args.model, args.version, args.messages, args.rows, drift, args.seed, args.rate)
    print(publish(load_stack(args.stack), stream, args.bootstrap, args.topic), file=sys.stderr)
