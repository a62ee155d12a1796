"""models/regressor/train.py: same seed, same bytes; the golden set is what the model answers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from twinserve.tools.model_train import load_train

REGRESSOR = Path(__file__).resolve().parents[2] / "models" / "regressor"
ARTIFACTS = ("weights.pt", "reference_stats.json", "reference_data.npz", "golden_set.json")
SMALL = ["--epochs", "3", "--samples", "1024"]  # the same code path as the defaults, in a fraction of the time


train = load_train(REGRESSOR, "regressor_train")


@pytest.fixture(autouse=True)
def torch_state():
    """train() switches torch to one thread and deterministic algorithms for the whole process."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def run_train(out: Path, *args: str) -> Path:
    assert train.main([*SMALL, "--out", str(out), *args]) == 0
    return out


def read_all(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ARTIFACTS}


def test_writes_every_artifact_into_out(tmp_path):
    out = run_train(tmp_path / "a" / "b")
    assert sorted(p.name for p in out.iterdir()) == sorted(ARTIFACTS)


def test_the_reference_data_holds_the_training_inputs_and_the_models_answers_to_them(tmp_path):
    import numpy as np

    out = run_train(tmp_path / "r")
    data = np.load(out / "reference_data.npz")
    assert sorted(data.files) == ["prediction", "x1", "x2"]
    assert {data[f].size for f in data.files} == {1024}
    stats = json.loads((out / "reference_stats.json").read_text())
    assert data["x1"].mean() == pytest.approx(stats["x1"]["mean"])
    model = train.RegressorMLP(n_features=2)
    model.load_state_dict(torch.load(out / "weights.pt"))
    with torch.no_grad():
        answers = model.double()(torch.from_numpy(np.column_stack([data["x1"], data["x2"]]))).float().reshape(-1)
    assert data["prediction"].tolist() == answers.double().tolist(), "what the handler would answer"


def test_same_seed_gives_byte_identical_artifacts_across_processes(tmp_path):
    """One run in this process, one in a fresh interpreter: nothing may depend on process state."""
    here = read_all(run_train(tmp_path / "here", "--seed", "5"))
    fresh = tmp_path / "fresh"
    subprocess.run(
        [sys.executable, str(REGRESSOR / "train.py"), *SMALL, "--seed", "5", "--out", str(fresh)],
        check=True,
        capture_output=True,
    )
    assert read_all(fresh) == here


def test_same_seed_twice_in_one_process(tmp_path):
    assert read_all(run_train(tmp_path / "1")) == read_all(run_train(tmp_path / "2"))


def test_another_seed_gives_other_weights_and_golden_set(tmp_path):
    a = read_all(run_train(tmp_path / "a", "--seed", "1"))
    b = read_all(run_train(tmp_path / "b", "--seed", "2"))
    assert a["weights.pt"] != b["weights.pt"]
    assert a["golden_set.json"] != b["golden_set.json"]


def test_reference_stats_describe_the_training_features(tmp_path):
    stats = json.loads((run_train(tmp_path) / "reference_stats.json").read_text())
    assert list(stats) == ["x1", "x2"]
    for feature in stats.values():
        assert set(feature) == {"count", "mean", "std"}
        assert feature["count"] == 1024
        # Features are uniform on [0, 1): mean 1/2, std 1/sqrt(12) ~ 0.2887.
        assert feature["mean"] == pytest.approx(0.5, abs=0.05)
        assert feature["std"] == pytest.approx(12**-0.5, abs=0.02)


def test_reference_stats_are_computed_from_the_data():
    x = torch.tensor([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [6.0, 10.0]])
    assert train.reference_stats(x) == {
        "x1": {"count": 4, "mean": 3.0, "std": pytest.approx(2.160246899)},
        "x2": {"count": 4, "mean": 10.0, "std": 0.0},
    }


def test_golden_outputs_are_what_the_model_answers(tmp_path):
    """Scored from the values as written to JSON, the way the smoke test replays them through the handler."""
    out = run_train(tmp_path)
    golden = json.loads((out / "golden_set.json").read_text())
    model = train.RegressorMLP()
    model.load_state_dict(torch.load(out / "weights.pt"))
    model.eval().double()
    inputs = torch.tensor([g["data"] for g in golden], dtype=torch.float64)
    with torch.no_grad():
        outputs = model(inputs).float().tolist()
    assert [g["output"] for g in golden] == outputs
    assert golden[0]["data"] == pytest.approx([0.2, 0.6], abs=1e-7)  # the README's example comes first
    assert len(golden) == 17
    assert len({tuple(g["data"]) for g in golden}) == 17


def test_training_learns_the_target(tmp_path):
    """Not just deterministic noise: with the default settings the model fits the target function."""
    model, x, mse = train.train(seed=42, epochs=30, n_samples=8192)
    assert mse < 0.1
    with torch.no_grad():
        assert float(torch.nn.functional.mse_loss(model(x), train.target(x))) < 0.1
