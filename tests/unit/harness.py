"""What the handler and training tests share: a batch driven as TorchServe drives it, and a model's
train.py imported without leaving its sys.path or its `model` module behind."""

import importlib.util
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


def load_train(model_dir: Path, name: str):
    """Import model_dir/train.py as `name`; sys.path and sys.modules["model"] are as they were after."""
    saved_path, saved_model = list(sys.path), sys.modules.pop("model", None)
    try:
        spec = importlib.util.spec_from_file_location(name, model_dir / "train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        sys.modules.pop("model", None)
        if saved_model is not None:
            sys.modules["model"] = saved_model
    return module
