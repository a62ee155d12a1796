"""The FastAPI + uvicorn peers: the same model weights and the same input bounds.

Two apps, started by the benchmark with uvicorn --workers 2:
  - `workshop`: FastAPI as its tutorials write it (and, by its figures, the
    kind of server the issue measured as its FastAPI): a pydantic request
    model, a plain `def` endpoint (FastAPI runs it in its thread pool, as it
    advises for blocking work), a dict answer. Bad input is FastAPI's 422,
    without its echo of the input (a NaN in it would turn the 422 into a 500).
  - `tuned`: what a performance engineer makes of it: an async endpoint on the
    raw body, parsed and answered by twinserve's own tabular_codec (400s as
    twinserve's). The strongest FastAPI peer we know how to write.
TWINSERVE_PEER_MODEL_DIR names a directory holding the archive's model.py,
weights.pt and model-config.yaml; TWINSERVE_PEER_MODEL_NAME the model (its route,
/predictions/<name>, as TorchServe's).
"""

import os
from pathlib import Path
from typing import Annotated

import torch
import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from tabular_codec import BadRequest, format_error, format_output, parse_request

from twinserve.tools.bench.peer_model import load_model

MODEL_DIR = Path(os.environ["TWINSERVE_PEER_MODEL_DIR"])
ROUTE = f"/predictions/{os.environ.get('TWINSERVE_PEER_MODEL_NAME', 'regressor')}"
HANDLER = yaml.safe_load((MODEL_DIR / "model-config.yaml").read_text())["handler"]
N_FEATURES, MAX_ROWS = len(HANDLER["features"]), HANDLER["max_rows"]


def score(rows: list[list[float]]) -> list[float]:
    with torch.inference_mode():
        return model(torch.tensor(rows, dtype=torch.float64)).float().reshape(-1).tolist()


torch.set_num_threads(1)
model = load_model(MODEL_DIR)  # scored as the TorchServe handler scores: float64, answered in float32

Value = Annotated[float, Field(allow_inf_nan=False)]
Row = Annotated[list[Value], Field(min_length=N_FEATURES, max_length=N_FEATURES)]


class PredictRequest(BaseModel):
    data: Row | Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)]


workshop = FastAPI()


@workshop.exception_handler(RequestValidationError)
async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"error": errors}, status_code=422)


@workshop.post(ROUTE)
def predict_workshop(request: PredictRequest) -> dict:
    single = not isinstance(request.data[0], list)
    out = score([request.data] if single else request.data)
    return {"output": out[0] if single else out}


tuned = FastAPI()


@tuned.post(ROUTE)
async def predict_tuned(request: Request) -> Response:
    try:
        rows = parse_request({"body": await request.body()}, n_features=N_FEATURES, max_rows=MAX_ROWS)
    except BadRequest as exc:
        return Response(format_error(str(exc)), status_code=400, media_type="application/json")
    return Response(format_output(score(rows.values), rows.single), media_type="application/json")
