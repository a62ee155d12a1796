"""models/digits/train.py: deterministic per seed, at least 95% held-out accuracy, samples and golden set true."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from image_codec import parse_request

from archiver.golden import request_of
from twinserve.store.archives import training
from twinserve.tools.model_train import load_train

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


train = load_train(DIGITS, "digits_train")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The defaults, trained once: artifacts and samples."""
    out = tmp_path_factory.mktemp("digits")
    threads = torch.get_num_threads()
    try:
        assert train.main(["--out", str(out / "artifacts"), "--samples-dir", str(out / "samples")]) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return out


def test_held_out_accuracy_is_at_least_95_percent(trained):
    metrics = json.loads((trained / "artifacts" / "metrics.json").read_text())
    assert metrics["held_out_accuracy"] >= 0.95
    assert (metrics["held_out"], metrics["trained_on"]) == (360, 1437)


def test_same_seed_gives_identical_weights(tmp_path):
    x, y, _, _ = train.split()
    threads = torch.get_num_threads()
    try:
        first = train.train(3, 2, x, y).state_dict()
        second = train.train(3, 2, x, y).state_dict()
        other = train.train(4, 2, x, y).state_dict()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    # exact: the same seeded training, run twice in one process with the same threads
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_the_split_is_the_same_for_every_seed():
    a, b = train.split(), train.split()
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert len(a[3]) == 360 and set(a[3].tolist()) == set(range(10))


def test_the_golden_set_is_what_the_model_answers(trained):
    """JSON grids and PNG bytes, each decoded as the handler decodes its request (image_codec)."""
    golden = json.loads((trained / "artifacts" / "golden_set.json").read_text())
    model = train.DigitsCNN()
    model.load_state_dict(torch.load(trained / "artifacts" / "weights.pt"))
    requests = [request_of(g, i) for i, g in enumerate(golden)]
    grids = [parse_request({"body": r.body}).values for r in requests]
    x = torch.tensor(grids, dtype=torch.float64).reshape(-1, 1, 8, 8)
    probabilities = train.probabilities(model.eval(), x)
    assert [g["label"] for g in golden] == probabilities.argmax(dim=1).tolist()
    for g, p in zip(golden, probabilities.tolist(), strict=True):  # summation order varies with threads
        assert g["probabilities"] == pytest.approx(p, abs=1e-12)


def test_the_golden_set_replays_held_out_grids_as_json_and_the_sample_pngs_as_images(trained):
    golden = json.loads((trained / "artifacts" / "golden_set.json").read_text())
    requests = [request_of(g, i) for i, g in enumerate(golden)]
    assert [r.content_type for r in requests] == ["application/json"] * 16 + ["image/png"] * 10
    assert [r.body for r in requests[16:]] == [(DIGITS / "samples" / f"digit-{k}.png").read_bytes() for k in range(10)]
    assert [g["label"] for g in golden[16:]] == list(range(10))


def test_one_sample_png_per_class_as_the_repository_ships_them(trained):
    written = sorted(p.name for p in (trained / "samples").iterdir())
    assert written == [f"digit-{k}.png" for k in range(10)]
    for name in written:
        assert (trained / "samples" / name).read_bytes() == (DIGITS / "samples" / name).read_bytes()


def test_reference_stats_cover_the_drift_features(trained):
    stats = json.loads((trained / "artifacts" / "reference_stats.json").read_text())
    assert list(stats) == ["mean_intensity", "contrast", "ink_share"]
    assert all(s["count"] == 1437 and 0 < s["mean"] < 1 and s["std"] > 0 for s in stats.values())


def test_a_copy_of_the_folder_trains_anywhere_with_the_pipelines_environment(tmp_path):
    """The pipeline trains the folder it ships (often a copy): the handlers' codec and the archiver come from
    the environment twinserve gives train.py (store.archives.training), not from where the folder lies."""
    copy = Path(shutil.copytree(DIGITS, tmp_path / "digits", ignore=shutil.ignore_patterns("artifacts")))
    argv, env = training(copy / "train.py", seed=5)
    result = subprocess.run([*argv, "--epochs", "1"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((copy / "artifacts" / "metrics.json").read_text())["seed"] == 5


def test_every_watched_drift_feature_gets_a_sketch_from_the_held_out_images(trained):
    """reference_data.npz holds every feature the handler offers, one value per held-out image; the
    archiver sketches each feature model-config.yaml watches; the components ship beside the weights."""
    import numpy
    import yaml
    from drift_projection import Projection
    from image_codec import image_drift_features

    from archiver.reference import reference_stats

    artifacts = trained / "artifacts"
    projection = Projection.load(artifacts / "files" / "drift_pca.json")
    assert projection.components.shape == (5, 64) and sum(projection.explained) < 1
    with numpy.load(artifacts / "reference_data.npz") as data:
        assert list(data.files) == image_drift_features(projection.names)
        assert all(data[f].shape == (360,) and numpy.all(numpy.isfinite(data[f])) for f in data.files)
        confidence = data["confidence"]
    assert confidence.min() >= 0.1 and confidence.max() <= 1
    watched = yaml.safe_load((DIGITS / "model-config.yaml").read_text())["twinserve"]["drift_features"]
    reference = reference_stats(artifacts, json.loads((artifacts / "reference_stats.json").read_text()), watched)
    assert all(isinstance(reference[f]["kll"], str) and reference[f]["count"] == 360 for f in watched)


def test_the_reference_rows_are_the_same_for_the_same_model():
    x, y, x_test, _ = train.split()
    threads = torch.get_num_threads()
    try:
        model = train.train(3, 1, x, y)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    projection = train.principal_components(train.penultimate(model, x)[1])
    first = train.reference_data(model, x_test[:50], projection)
    second = train.reference_data(model, x_test[:50], projection)
    assert all((first[f] == second[f]).all() for f in first)
    inverted = train.reference_data(model, 16 - x_test[:50], projection)
    assert (inverted["mean_intensity"] > first["mean_intensity"]).all()
