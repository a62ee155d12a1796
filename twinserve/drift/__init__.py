"""Drift detection: production inputs from Kafka, compared with the training data.
Imports settings and errors only; runtime uses its topic helpers."""
