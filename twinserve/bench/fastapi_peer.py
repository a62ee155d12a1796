"""The FastAPI + uvicorn peer: the same model weights and the same input rules.

Started by the benchmark with uvicorn --workers 2; TWINSERVE_PEER_MODEL_DIR
names a directory holding the archive's model.py and weights.pt.
"""

import importlib.util
import os
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.responses import Response
from tabular_codec import BadRequest, format_error, format_output, parse_request
from torch import nn

MODEL_DIR = Path(os.environ["TWINSERVE_PEER_MODEL_DIR"])


def load_model() -> nn.Module:
    spec = importlib.util.spec_from_file_location("peer_model", MODEL_DIR / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (cls,) = [
        v for v in vars(module).values() if isinstance(v, type) and issubclass(v, nn.Module) and v is not nn.Module
    ]
    model = cls()
    model.load_state_dict(torch.load(MODEL_DIR / "weights.pt", map_location="cpu"))
    return model.double().eval()  # scored as the TorchServe handler scores: float64, answered in float32


torch.set_num_threads(1)
model = load_model()
app = FastAPI()


@app.post("/predictions/regressor")
async def predict(request: Request) -> Response:
    try:
        rows = parse_request({"body": await request.body()}, n_features=2, max_rows=64)
    except BadRequest as exc:
        return Response(format_error(str(exc)), status_code=400, media_type="application/json")
    with torch.inference_mode():
        out = model(torch.tensor(rows.values, dtype=torch.float64)).float().reshape(-1).tolist()
    return Response(format_output(out, rows.single), media_type="application/json")
