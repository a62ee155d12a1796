"""twinserve/runtime/monitoring.py: how the monitoring services are started (the parts that need no server)."""

import os


def test_node_exporter_skips_the_systemd_collector_without_systemd(monkeypatch):
    from twinserve.runtime import monitoring

    flags = monitoring.node_exporter_collectors()
    if os.path.isdir("/run/systemd/system"):
        assert flags == []
    else:
        assert flags == ["--no-collector.systemd"]
