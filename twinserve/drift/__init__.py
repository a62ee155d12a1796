"""Drift detection: production inputs from Kafka, compared with the training data."""
