"""What the handler tests share: a batch driven as TorchServe drives it, and a worker's Context
built as from an unpacked archive. (A model's train.py is imported by twinserve/tools/model_train.py.)"""

import json
import sys
from pathlib import Path

from ts.context import RequestProcessor


def run_batch(handler, context, bodies, headers=None):
    """One batch through handler.handle(): [(status, response headers, decoded answer)] per request."""
    headers = headers or [{} for _ in bodies]
    context.request_processor = [RequestProcessor(dict(h)) for h in headers]
    answers = handler.handle([{"body": b} for b in bodies], context)
    assert len(answers) == len(bodies)
    return [
        (context.get_response_status(i)[0], context.get_response_headers(i), json.loads(answer))
        for i, answer in enumerate(answers)
    ]


def handler_context(monkeypatch, model_dir: Path, name: str, version: str, handler: str, config: dict):
    """A TorchServe Context for `name` as a worker would build it from an unpacked archive in `model_dir`:
    no broker, the fast codec's install stubbed, model.py importable as `model`. A generator: the
    fixture yields it, and torch's threads, the log level and the imported `model` are put back after."""
    import logging

    import torch
    import ts_fastpath
    from ts.context import Context

    monkeypatch.delenv("TWINSERVE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setattr(ts_fastpath, "install", lambda: True)
    monkeypatch.syspath_prepend(str(model_dir))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    threads, level = torch.get_num_threads(), logging.getLogger().level
    manifest = {"model": {"modelName": name, "modelVersion": version, "serializedFile": "weights.pt",
                          "modelFile": "model.py", "handler": handler}}  # fmt: skip
    yield Context(name, str(model_dir), manifest, 32, None, "0.12.0", model_yaml_config=config)
    sys.modules.pop("model", None)  # TorchServe imported model.py as `model`: not for the tests after this one
    torch.set_num_threads(threads)
    logging.getLogger().setLevel(level)
