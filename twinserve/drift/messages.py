"""The message production inputs travel in, from the handler to the consumer.

One Kafka message per TorchServe batch (handlers/tabular_handler.py writes it):

    {"model": "regressor", "version": "1.0", "features": ["x1", "x2"], "rows": [[0.2, 0.6], ...]}

decode() validates it; anything else raises InvalidMessage, which the consumer
counts and skips.
"""

import json
import math
from dataclasses import dataclass


class InvalidMessage(ValueError):
    pass


@dataclass(frozen=True)
class Inputs:
    model: str
    version: str
    features: list[str]
    rows: list[list[float]]


def decode(raw: bytes) -> Inputs:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidMessage("not a JSON object")
    for key, kind in (("model", str), ("version", str), ("features", list), ("rows", list)):
        if not isinstance(body.get(key), kind):
            raise InvalidMessage(f'"{key}" missing or not a {kind.__name__}')
    features = body["features"]
    if not features or not all(isinstance(f, str) for f in features):
        raise InvalidMessage('"features" must be a non-empty list of names')
    for row in body["rows"]:
        if not isinstance(row, list) or len(row) != len(features):
            raise InvalidMessage(f"a row does not have {len(features)} values")
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidMessage(f"a value is not a finite number: {v!r}")
    return Inputs(body["model"], body["version"], features, [[float(v) for v in r] for r in body["rows"]])


def encode(model: str, version: str, features: list[str], rows: list[list[float]]) -> bytes:
    return json.dumps({"model": model, "version": version, "features": features, "rows": rows}).encode()
