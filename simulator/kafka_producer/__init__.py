"""A synthetic stream of model inputs, with drift on demand, published to the drift topic.

For demos (watch the z-score climb in Prometheus) and for the drift tests.
"""
