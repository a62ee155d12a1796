"""Drift of images and texts in the running stack: the real handlers compute the features, their
publisher sends them to the broker, the stack's consumer judges them, Prometheus and Alertmanager
carry the verdict into the alert receiver.

Each case serves two versions of its own beside the stack's (7.7 drifted, 7.8 undrifted; the same
trained model archived twice, registered on a colour as extra versions, never the default): other
tests send constant samples to the served versions, which is drift. Requests go straight to the
colour's inference API with the route header Nginx sets on /predict (Nginx routes only the default
version); everything after the handler is the stack's.
"""

import json
import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import torch

from archiver import build_archive
from tests.checkout import REPO_ROOT
from twinserve.runtime.torchserve import Management, authorization, stage_archive
from twinserve.tools.model_train import load_train

from .helpers import poll, scrape, total

pytestmark = pytest.mark.integration
DRIFTED, UNDRIFTED = "7.7", "7.8"


@contextmanager
def extra_version(stack, workdir: Path, model: str, version: str):
    """`model` `version` archived from the session's model directory and registered on the first colour
    (not as its default); unregistered after. Yields the URL of its predictions."""
    colour = stack.colour_names[0]
    built = build_archive(workdir / "models" / model, version, stack.model_store)
    staged = stage_archive(stack, colour, built.path, built.sha256)
    management = Management(stack, colour)
    management.register(model, staged.name, workers=1)
    try:
        yield colour, f"{stack.inference_url(colour)}/predictions/{model}/{version}"
    finally:
        management.unregister(model, version)
        staged.unlink(missing_ok=True)


def post_all(stack, colour, url, bodies: list[bytes], content_type: str) -> list[int]:
    headers = {**authorization(stack, colour, "inference"), "Content-Type": content_type,
               "X-Twinserve-Route": "production"}  # fmt: skip

    def one(body):
        return requests.post(url, data=body, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, bodies))


def alerts_for(stack, model: str, version: str) -> list[dict]:
    receiver = f"http://127.0.0.1:{stack.monitoring.alert_receiver_port}/alerts"
    alerts = requests.get(receiver, params={"alertname": "TwinserveDriftDetected", "status": "firing"}, timeout=5)
    return [a for a in alerts.json() if a["labels"].get("model") == model and a["labels"].get("version") == version]


def judged(stack, model: str, version: str, rows: int) -> bool:
    """The consumer has judged the version on a window of at least `rows` rows."""
    metrics = scrape(f"http://127.0.0.1:{stack.drift.consumer_metrics_port}/metrics")
    return total(metrics, "twinserve_drift_verdict_window_rows", model=model, version=version) >= rows


def check_alert(stack, model: str, watched: list[str]) -> None:
    """The drifted version's alert reaches the receiver; the undrifted one was judged, calmly."""
    alerts = poll(lambda: alerts_for(stack, model, DRIFTED), timeout=300, every=5)
    assert alerts, f"no TwinserveDriftDetected for {model} {DRIFTED}"
    assert alerts[0]["severity"] == "warning"
    metrics = scrape(f"http://127.0.0.1:{stack.drift.consumer_metrics_port}/metrics")
    drifting = [
        f for f in watched
        if total(metrics, "twinserve_drift_feature_drifting", model=model, version=DRIFTED, feature=f, test="verdict")
    ]  # fmt: skip
    assert drifting, f"{model} {DRIFTED} alerted but no watched feature drifts"
    assert total(metrics, "twinserve_drift_verdicts_total", model=model, version=UNDRIFTED) >= 3
    assert total(metrics, "twinserve_drift_detected", model=model, version=UNDRIFTED) == 0
    assert alerts_for(stack, model, UNDRIFTED) == []


def grid_body(image: torch.Tensor) -> bytes:
    return json.dumps({"data": [[float(v) for v in row] for row in image[0].tolist()]}).encode()


def test_inverted_or_rotated_digits_fire_the_drift_alert_and_held_out_digits_do_not(stack, workdir):
    """1,200 images per version: held-out digits for 7.8, the same digits inverted or rotated by 90° for 7.7
    (the summary features see the inversion, only the model's features the rotation)."""
    train = load_train(REPO_ROOT / "models" / "digits", "digits_train_for_drift")
    _, _, held_out, _ = train.split()
    rng = random.Random(5)
    picks = [held_out[rng.randrange(len(held_out))] for _ in range(1200)]
    undrifted = [grid_body(img) for img in picks]
    drifted = [grid_body(16 - img if i % 2 else torch.rot90(img, 1, (1, 2))) for i, img in enumerate(picks)]
    with (
        extra_version(stack, workdir, "digits", DRIFTED) as (colour, drifted_url),
        extra_version(stack, workdir, "digits", UNDRIFTED) as (_, undrifted_url),
    ):
        assert post_all(stack, colour, undrifted_url, undrifted, "application/json") == [200] * 1200
        assert post_all(stack, colour, drifted_url, drifted, "application/json") == [200] * 1200
        assert poll(lambda: judged(stack, "digits", UNDRIFTED, 1000), timeout=60), "7.8 was not judged"
        check_alert(stack, "digits", ["mean_intensity", "contrast", "pc1", "pc2", "pc3", "pc4", "pc5", "confidence"])


def test_german_reviews_fire_the_drift_alert_and_held_out_english_sentences_do_not(stack, workdir):
    """150 requests of 8 texts per version (distinct bodies): held-out English sentences for 7.8, German
    reviews (tests/data/german_reviews.json) for 7.7."""
    train = load_train(REPO_ROOT / "models" / "sentiment", "sentiment_train_for_drift")
    _, _, held_out, _ = train.split(*train.load())
    german = json.loads((REPO_ROOT / "tests" / "data" / "german_reviews.json").read_text(encoding="utf-8"))
    rng = random.Random(6)

    def bodies(texts):
        return [json.dumps({"texts": rng.sample(texts, 8)}).encode() for _ in range(150)]

    with (
        extra_version(stack, workdir, "sentiment", DRIFTED) as (colour, drifted_url),
        extra_version(stack, workdir, "sentiment", UNDRIFTED) as (_, undrifted_url),
    ):
        assert post_all(stack, colour, undrifted_url, bodies(held_out), "application/json") == [200] * 150
        assert post_all(stack, colour, drifted_url, bodies(german), "application/json") == [200] * 150
        assert poll(lambda: judged(stack, "sentiment", UNDRIFTED, 1000), timeout=60), "7.8 was not judged"
        check_alert(stack, "sentiment", ["tokens", "pc1", "pc2", "pc3", "pc4", "pc5", "positive"])
