"""What Prometheus scrapes from the control plane (exporter) and where Alertmanager sends (alert_receiver).
Reads runtime and store; changes nothing."""
