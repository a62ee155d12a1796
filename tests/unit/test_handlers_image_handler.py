"""The image handler, driven the way TorchServe's worker drives it (initialize, then handle per batch),
on the digits CNN trained by models/digits/train.py. No TorchServe process, no Kafka."""

import io
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from image_handler import ImageHandler
from PIL import Image

from tests.unit.harness import handler_context, run_batch
from twinserve.tools.model_train import load_train

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
CONFIG = yaml.safe_load((DIGITS / "model-config.yaml").read_text())
TRAIN = load_train(DIGITS, "digits_train_for_handler")
SAMPLES = {k: (DIGITS / "samples" / f"digit-{k}.png").read_bytes() for k in range(10)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory as TorchServe unpacks an archive: model.py and weights trained by train.py."""
    out = tmp_path_factory.mktemp("digits")
    shutil.copy(DIGITS / "model.py", out / "model.py")
    threads = torch.get_num_threads()
    try:
        assert TRAIN.main(["--out", str(out / "artifacts"), "--epochs", "30"]) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    shutil.copy(out / "artifacts" / "weights.pt", out / "weights.pt")
    for packed in (out / "artifacts" / "files").iterdir():  # the archiver packs artifacts/files/ beside the weights
        shutil.copy(packed, out / packed.name)
    return out


@pytest.fixture
def context(model_dir, monkeypatch):
    yield from handler_context(monkeypatch, model_dir, "digits", "2.1", "image_handler.py", CONFIG)


@pytest.fixture
def handler(context):
    h = ImageHandler()
    h.initialize(context)
    return h


def test_every_shipped_sample_is_recognised(handler, context):
    answers = run_batch(handler, context, [SAMPLES[k] for k in range(10)])
    assert [a[2]["label"] for a in answers] == list(range(10))
    for status, headers, body in answers:
        assert status == 200 and headers["X-Model-Version"] == "2.1"
        assert list(body["probabilities"]) == [str(k) for k in range(10)]
        assert sum(body["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_a_json_grid_answers_as_its_png_does(handler, context):
    grey = Image.open(io.BytesIO(SAMPLES[3])).convert("L").resize((8, 8), Image.Resampling.NEAREST)
    grid = [[(255 - v) * 16 / 255 for v in grey.tobytes()[r * 8 : r * 8 + 8]] for r in range(8)]
    png_answer, json_answer = run_batch(handler, context, [SAMPLES[3], {"data": grid}])
    assert png_answer[2] == json_answer[2]


def test_bad_images_get_their_own_4xx_and_the_rest_of_the_batch_its_answers(handler, context):
    too_large = b"\x89PNG\r\n\x1a\n" + b"\x00" * CONFIG["twinserve"]["max_body"]
    bodies = [SAMPLES[1], b"not an image", SAMPLES[5][:40], too_large, {"data": [[0] * 8] * 7}, SAMPLES[8]]
    answers = run_batch(handler, context, bodies)
    assert [a[0] for a in answers] == [200, 400, 400, 413, 400, 200]
    assert [answers[0][2]["label"], answers[5][2]["label"]] == [1, 8]
    assert all("error" in a[2] for a in answers[1:5])
    assert all(a[1]["X-Model-Version"] == "2.1" for a in answers)


def test_an_image_gets_the_same_bytes_whatever_shares_its_batch(handler, context):
    alone = [run_batch(handler, context, [SAMPLES[k]])[0][2] for k in range(10)]
    for crowd in (3, 31):
        crowded = run_batch(handler, context, [SAMPLES[(k * 7) % 10] for k in range(crowd)] + list(SAMPLES.values()))
        assert [a[2] for a in crowded[crowd:]] == alone


def test_only_production_images_feed_drift_with_their_watched_features(handler, context):
    published = []

    class Recorder:
        def publish(self, model, version, features, rows):
            published.append((model, version, features, rows))

    handler.publisher = Recorder()
    headers = [{"X-Twinserve-Route": "production"}, {"X-Twinserve-Route": "test"}, {"X-Twinserve-Route": "production"}]
    run_batch(handler, context, [SAMPLES[0], SAMPLES[1], b"junk"], headers)
    [(model, version, features, rows)] = published
    assert (model, version, features) == ("digits", "2.1", CONFIG["twinserve"]["drift_features"])
    assert len(rows) == 1 and len(rows[0]) == len(features)


def test_an_images_drift_row_is_what_train_py_computes_for_the_reference(handler, context, model_dir):
    """The same image gives the same summary features, principal components and confidence in the
    handler (published) and in train.py's reference_data (sketched): one definition on both sides."""
    from drift_projection import Projection
    from image_codec import image_drift_features, parse_request
    from model import DigitsCNN

    published = []
    handler.publisher = type("Recorder", (), {"publish": lambda self, *args: published.append(args)})()
    handler.drift_features = image_drift_features(handler.projection.names)
    handler._watch(None)  # every feature the kind offers, ink_share too
    [(_, _, answer)] = run_batch(handler, context, [SAMPLES[7]], [{"X-Twinserve-Route": "production"}])
    [(_, _, features, [row])] = published
    grid = parse_request({"body": SAMPLES[7]})
    model = DigitsCNN()
    model.load_state_dict(torch.load(model_dir / "weights.pt"))
    projection = Projection.load(model_dir / "drift_pca.json")
    x = torch.tensor(grid.values, dtype=torch.float64).reshape(1, 1, 8, 8)
    reference = TRAIN.reference_data(model.eval(), x, projection)
    assert features == list(reference) and len(features) == 3 + 5 + 1
    assert row == pytest.approx([float(reference[f][0]) for f in features], rel=1e-9, abs=1e-9)
    assert row[-1] == pytest.approx(max(answer["probabilities"].values()), abs=1e-6)  # the confidence


def test_a_model_that_gives_nan_answers_500_json(handler, context):
    with torch.no_grad():
        for parameter in handler.model.parameters():
            parameter.fill_(float("nan"))
    [(status, _, body), (bad, _, _)] = run_batch(handler, context, [SAMPLES[2], b"junk"])
    assert (status, bad) == (500, 400)
    assert body == {"error": "model digits 2.1 gave a non-finite output"}
