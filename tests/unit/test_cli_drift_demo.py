"""twinserve/cli/drift_demo.py: the command line's numbers reach the stream as the options say."""

from simulator.kafka_producer import publish as publishing
from twinserve import cli


def test_shift_scale_and_drift_after_each_reach_their_own_field(monkeypatch):
    seen = []
    monkeypatch.setattr(publishing, "publish", lambda stack, stream, bootstrap, topic: seen.append(stream) or "sent")
    argv = ["drift-demo", "--feature", "x1", "--shift", "0.5", "--scale", "2", "--drift-after", "400"]
    assert cli.main(argv) == 0
    drift = seen[0].drift
    assert (drift.feature, drift.shift, drift.scale, drift.after) == ("x1", 0.5, 2.0, 400)
