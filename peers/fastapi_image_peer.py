"""The FastAPI + uvicorn peer for image classifiers, as FastAPI's tutorials write one.

`workshop`: an `async def` endpoint that reads the raw body, decodes the image with
Pillow, scores it right there (in the event loop, one image per request, as the
tutorials do) and returns a dict. So that it answers the same requests as twinserve
does (and an integration test can check it), decoding is twinserve's image_codec
(PNG, JPEG or a JSON grid, with the same 400s) and scoring is a float64 softmax
answered to 6 decimals. Started by the benchmark with uvicorn --workers 2;
TWINSERVE_PEER_MODEL_DIR names the unpacked archive, TWINSERVE_PEER_MODEL_NAME the model.
"""

import os
from pathlib import Path

import torch
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from image_codec import DEFAULT_MAX_PIXELS, BadRequest, parse_request

from twinserve.tools.bench.peer_model import load_model

MODEL_DIR = Path(os.environ["TWINSERVE_PEER_MODEL_DIR"])
ROUTE = f"/predictions/{os.environ.get('TWINSERVE_PEER_MODEL_NAME', 'digits')}"
HANDLER = yaml.safe_load((MODEL_DIR / "model-config.yaml").read_text())["handler"]
SIZE, SCALE = int(HANDLER.get("size", 8)), float(HANDLER.get("scale", 16))
MAX_PIXELS = int(HANDLER.get("max_pixels", DEFAULT_MAX_PIXELS))

torch.set_num_threads(1)
model = load_model(MODEL_DIR)

workshop = FastAPI()


@workshop.post(ROUTE)
async def predict(request: Request):
    try:
        grid = parse_request({"body": await request.body()}, SIZE, SCALE, MAX_PIXELS)
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    x = torch.tensor(grid.values, dtype=torch.float64).reshape(1, 1, SIZE, SIZE)
    with torch.inference_mode():
        probabilities = torch.softmax(model(x), dim=1)[0].tolist()
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {"label": label, "probabilities": {str(k): round(p, 6) for k, p in enumerate(probabilities)}}
