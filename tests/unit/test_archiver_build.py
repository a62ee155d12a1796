"""archiver/build.py: versioned, immutable archives with their metadata, built into a temporary store."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from archiver import ArchiveError, ArchiveExists, build_archive, modelconfig, read_metadata
from archiver.build import HANDLER_BASE, handler_dir, handler_files
from twinserve.tools.model_train import load_train

REPO_ROOT = Path(__file__).resolve().parents[2]
REGRESSOR = REPO_ROOT / "models" / "regressor"
SAMPLE_0 = {"json": {"data": [0.2, 0.6]}}  # the first of models/regressor's twinserve.samples


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A copy of models/regressor with artifacts from its own train.py (small and fast), trained once."""
    model_dir = tmp_path_factory.mktemp("models") / "regressor"  # the directory name is the model name
    model_dir.mkdir()
    for name in ("model.py", "train.py", "model-config.yaml"):
        shutil.copy(REGRESSOR / name, model_dir / name)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        train = load_train(model_dir, "regressor_train_copy")
        assert train.main(["--epochs", "2", "--samples", "512"]) == 0  # default --out: artifacts/ beside the copy
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return model_dir


@pytest.fixture
def model_dir(trained, tmp_path):
    """A private copy per test, so tests may break it."""
    return Path(shutil.copytree(trained, tmp_path / "src" / "regressor"))


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def test_builds_the_archive_and_its_metadata(model_dir, store):
    built = build_archive(model_dir, "1.2", store)
    assert built.name == "regressor"
    assert built.version == "1.2"
    assert built.path == store / "regressor-1.2.mar"
    assert built.metadata_path == store / "regressor-1.2.json"
    assert sorted(p.name for p in store.iterdir()) == ["regressor-1.2.json", "regressor-1.2.mar"]


def test_metadata_records_the_sha256_of_the_archive(model_dir, store):
    built = build_archive(model_dir, "1.0", store)
    digest = hashlib.sha256(built.path.read_bytes()).hexdigest()
    assert built.sha256 == digest
    meta = read_metadata(built.path)
    assert meta["sha256"] == digest
    assert (meta["model_name"], meta["version"], meta["archive"]) == ("regressor", "1.0", "regressor-1.0.mar")


def test_metadata_carries_the_artifacts_and_the_model_config(model_dir, store):
    meta = read_metadata(build_archive(model_dir, "1.0", store).path)
    artifacts = model_dir / "artifacts"
    stats = json.loads((artifacts / "reference_stats.json").read_text())
    assert {
        f: {k: v for k, v in e.items() if k != "kll"} for f, e in meta["reference_stats"].items() if f in stats
    } == {f: {**e, "std": pytest.approx(e["std"]), "mean": pytest.approx(e["mean"])} for f, e in stats.items()}
    assert meta["golden_set"] == json.loads((artifacts / "golden_set.json").read_text())
    config = yaml.safe_load((model_dir / "model-config.yaml").read_text())
    assert meta["handler"] == config["handler"]
    assert meta["twinserve"] == modelconfig.load(model_dir).to_metadata()
    assert meta["twinserve"]["samples"][0] == {"name": "json-0", "content_type": "application/json", **SAMPLE_0}
    assert meta["torchserve"] == {k: v for k, v in config.items() if k not in ("handler", "twinserve")}
    assert "handler" not in meta["torchserve"] and "twinserve" not in meta["torchserve"]
    assert meta["built_at"].endswith("+00:00")
    assert meta["git_commit"]


def test_archive_holds_the_model_the_handler_and_its_modules(model_dir, store):
    built = build_archive(model_dir, "2.0.1", store)
    with zipfile.ZipFile(built.path) as mar:
        names = set(mar.namelist())
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        weights = mar.read("weights.pt")
    assert manifest["model"]["modelName"] == "regressor"
    assert manifest["model"]["modelVersion"] == "2.0.1"
    assert manifest["model"]["handler"] == "tabular_handler.py"
    assert manifest["model"]["serializedFile"] == "weights.pt"
    assert manifest["model"]["modelFile"] == "model.py"
    expected = {"model.py", "tabular_handler.py", "model-config.yaml", "reference_stats.json", "golden_set.json"}
    assert expected | set(HANDLER_BASE) | {"tabular_codec.py"} <= names
    assert weights == (model_dir / "artifacts" / "weights.pt").read_bytes()


def test_artifacts_files_are_packed_beside_the_weights_for_the_handler(model_dir, store):
    files = model_dir / "artifacts" / "files"
    files.mkdir()
    (files / "tokenizer.json").write_text('{"vocab": ["[PAD]"]}')
    (files / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n")
    built = build_archive(model_dir, "1.0", store)
    with zipfile.ZipFile(built.path) as mar:
        assert mar.read("tokenizer.json") == b'{"vocab": ["[PAD]"]}'
        assert mar.read("vocab.txt") == b"[PAD]\n[UNK]\n"
    assert read_metadata(built.path)["files"] == ["tokenizer.json", "vocab.txt"]  # how a peer unpacks them


def test_the_handler_is_chosen_by_the_model_config(tmp_path):
    handler, modules = handler_files("image")
    assert handler == REPO_ROOT / "handlers" / "image_handler.py" == handler_dir() / "image_handler.py"
    assert modules == [*(REPO_ROOT / "handlers" / n for n in HANDLER_BASE), REPO_ROOT / "handlers" / "image_codec.py"]


def test_the_handlers_are_the_projects_not_the_packages(tmp_path, monkeypatch):
    """TWINSERVE_HOME names the project whose handlers/ are packed; without handlers there, one clear error."""
    monkeypatch.setenv("TWINSERVE_HOME", str(tmp_path))
    with pytest.raises(ArchiveError, match="no twinserve_handler.py in .*set TWINSERVE_HOME"):
        handler_files("tabular")
    shutil.copytree(REPO_ROOT / "handlers", tmp_path / "handlers")
    assert handler_files("tabular")[0] == tmp_path / "handlers" / "tabular_handler.py"


@pytest.mark.parametrize("kind", ["audio", "twinserve", "../tabular", "Tabular"])
def test_an_unknown_handler_kind_is_refused_naming_the_known_ones(model_dir, store, kind):
    config = yaml.safe_load((model_dir / "model-config.yaml").read_text())
    config["twinserve"]["handler"] = kind
    (model_dir / "model-config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ArchiveError, match=r"expected one of \['image', 'tabular'"):
        build_archive(model_dir, "1.0", store)
    assert not store.exists() or not any(store.iterdir())


def test_refuses_to_overwrite_an_existing_version(model_dir, store):
    built = build_archive(model_dir, "1.0", store)
    before = built.path.read_bytes(), built.metadata_path.read_text()
    with pytest.raises(ArchiveError, match="already exists"):
        build_archive(model_dir, "1.0", store)
    assert (built.path.read_bytes(), built.metadata_path.read_text()) == before
    assert sorted(p.name for p in store.iterdir()) == ["regressor-1.0.json", "regressor-1.0.mar"]


def test_metadata_alone_also_blocks_the_version(model_dir, store):
    """A half-finished earlier build (metadata written, archive not moved yet) is not overwritten either."""
    store.mkdir()
    (store / "regressor-1.0.json").write_text("{}")
    with pytest.raises(ArchiveError, match="already exists"):
        build_archive(model_dir, "1.0", store)
    assert not (store / "regressor-1.0.mar").exists()


def test_an_existing_version_is_refused_exit_1_and_a_bad_input_is_usage_exit_2(model_dir, store, capsys):
    """The archiver's errors carry twinserve's exit codes: "exists" is a refusal, not a usage error."""
    from twinserve.cli import main

    store.mkdir()
    (store / "regressor-1.0.json").write_text("{}")
    with pytest.raises(ArchiveExists) as refused:
        build_archive(model_dir, "1.0", store)
    assert refused.value.exit_code == 1
    assert main(["archive", str(model_dir), "--version", "1.0", "--store", str(store)]) == 1
    assert main(["archive", str(model_dir), "--version", "x", "--store", str(store)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("twinserve archive: error: ") and "already exists" in err[0]
    assert err[1].startswith("twinserve archive: error: version 'x'") and len(err) == 2


def test_another_version_goes_beside_the_first(model_dir, store):
    first = build_archive(model_dir, "1.0", store)
    second = build_archive(model_dir, "1.1", store)
    assert first.path.is_file() and second.path.is_file()
    assert read_metadata(second.path)["version"] == "1.1"


def test_missing_model_directory(tmp_path, store):
    with pytest.raises(ArchiveError, match="does not exist"):
        build_archive(tmp_path / "nowhere", "1.0", store)
    assert not store.exists()


@pytest.mark.parametrize("artifact", ["weights.pt", "reference_stats.json", "golden_set.json"])
def test_missing_artifact_says_to_train_first(model_dir, store, artifact):
    (model_dir / "artifacts" / artifact).unlink()
    with pytest.raises(ArchiveError, match=f"{artifact} is missing; train first"):
        build_archive(model_dir, "1.0", store)
    assert not store.exists()


@pytest.mark.parametrize("required", ["model.py", "model-config.yaml"])
def test_missing_model_file(model_dir, store, required):
    (model_dir / required).unlink()
    with pytest.raises(ArchiveError, match=f"{required} is missing"):
        build_archive(model_dir, "1.0", store)


TRAILING_NEWLINE = pytest.param("1.0\n", id="trailing newline")  # "$" once let 'regressor-1.0\n.mar' through


@pytest.mark.parametrize(
    "version", ["", "v1.0", "1.0-rc1", "1.", "1..0", "1.0.0.0", "../1.0", "latest", TRAILING_NEWLINE]
)
def test_bad_version_string(model_dir, store, version):
    with pytest.raises(ArchiveError, match="must be numbers separated by dots"):
        build_archive(model_dir, version, store)
    assert not store.exists()


@pytest.mark.parametrize("version", ["1", "1.0", "2.1.3", "10.20"])
def test_good_version_strings_are_accepted(model_dir, store, version):
    assert build_archive(model_dir, version, store).path.name == f"regressor-{version}.mar"


def test_directory_name_must_be_a_valid_model_name(model_dir, tmp_path, store):
    bad = model_dir.rename(tmp_path / "Bad-Name")
    with pytest.raises(ArchiveError, match="model name 'Bad-Name'"):
        build_archive(bad, "1.0", store)


def test_model_config_must_be_a_yaml_mapping(model_dir, store):
    (model_dir / "model-config.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ArchiveError, match="must be a mapping"):
        build_archive(model_dir, "1.0", store)
    (model_dir / "model-config.yaml").write_text("handler: [unclosed\n")
    with pytest.raises(ArchiveError, match="not valid YAML"):
        build_archive(model_dir, "1.0", store)


def test_read_metadata_of_an_archive_without_it(tmp_path):
    with pytest.raises(ArchiveError, match="no metadata beside"):
        read_metadata(tmp_path / "regressor-9.9.mar")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "twinserve", "archive", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_missing_directory_exits_non_zero_with_one_line(tmp_path):
    result = cli(str(tmp_path / "nowhere"), "--version", "1.0", "--store", str(tmp_path / "store"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("twinserve archive: error: model directory ")
    assert "does not exist" in result.stderr
    assert not (tmp_path / "store").exists()


def test_cli_bad_version_exits_non_zero_with_one_line(model_dir, tmp_path):
    result = cli(str(model_dir), "--version", "one", "--store", str(tmp_path / "store"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "version 'one' must be numbers separated by dots" in result.stderr


def test_every_published_column_gets_a_kll_sketch_of_its_training_distribution(model_dir, store):
    import base64

    import numpy as np
    from datasketches import kll_doubles_sketch

    meta = read_metadata(build_archive(model_dir, "1.0", store).path)
    data = np.load(model_dir / "artifacts" / "reference_data.npz")
    assert set(meta["reference_stats"]) == {"x1", "x2", "prediction"} == set(data.files)
    for name, entry in meta["reference_stats"].items():
        sketch = kll_doubles_sketch.deserialize(base64.b64decode(entry["kll"]))
        assert sketch.n == entry["count"] == data[name].size
        assert sketch.get_quantile(0.5) == pytest.approx(np.median(data[name]), abs=0.05 * entry["std"])
        assert entry["mean"] == pytest.approx(data[name].mean())


def test_drift_features_choose_the_sketched_columns_and_an_unknown_one_is_refused(model_dir, store):
    config = model_dir / "model-config.yaml"
    text = config.read_text()
    config.write_text(re.sub(r"(?m)^  drift_features: .*$", "  drift_features: [x1, prediction]", text))
    meta = read_metadata(build_archive(model_dir, "1.0", store).path)
    assert "kll" in meta["reference_stats"]["prediction"] and "kll" not in meta["reference_stats"]["x2"]
    config.write_text(re.sub(r"(?m)^  drift_features: .*$", "  drift_features: [x9]", text))
    with pytest.raises(ArchiveError, match="x9"):
        build_archive(model_dir, "1.1", store)
    assert not list(Path(store).glob("*-1.1.*"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t.pop("max_body"), "twinserve.max_body is missing"),
        (lambda t: t.update(max_body="64k"), "twinserve.max_body is '64k'"),
        (lambda t: t.update(golden={"compare": "exact"}), "twinserve.golden.compare is 'exact'"),
        (lambda t: t.update(golden={"compare": "numbers"}), "twinserve.golden.tolerance is None"),
        (lambda t: t.update(golden={"compare": "label", "probability_tolerance": 0.1}), 'golden_set[0]: no "prob'),
        (lambda t: t.update(samples=[]), "twinserve.samples must be a non-empty list"),
        (lambda t: t.update(samples=[{"files": "samples/*.png", "content_type": "image/png"}]), "samples[0].files: no"),
        (lambda t: t.update(samples=[{"file": "../model.py", "content_type": "text/x-python"}]), "samples[0].file is"),
        (lambda t: t.update(samples=[{"json": [0.1] * 20_000}]), "json-0 is 100000 bytes, over max_body"),
        (lambda t: t.update(drift_features=["x3"]), "twinserve.drift_features names 'x3'"),
        (lambda t: t.update(colour="blue"), "twinserve.colour is not a twinserve key"),
    ],
)
def test_a_bad_twinserve_section_is_refused_in_one_line_naming_the_key(model_dir, store, change, named):
    config = yaml.safe_load((model_dir / "model-config.yaml").read_text())
    change(config["twinserve"])
    (model_dir / "model-config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ArchiveError) as raised:
        build_archive(model_dir, "1.0", store)
    assert named in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith(str(model_dir / "model-config.yaml"))
    assert not store.exists() or not any(store.iterdir())


def test_an_image_model_carries_its_sample_files_and_golden_images(tmp_path, store):
    """models/digits: samples/*.png read into the metadata as bytes with their content type."""
    digits = REPO_ROOT / "models" / "digits"
    model_dir = Path(shutil.copytree(digits, tmp_path / "digits", ignore=shutil.ignore_patterns("artifacts")))
    train = load_train(model_dir, "digits_train_for_archiver")
    threads = torch.get_num_threads()
    try:
        assert train.main(["--epochs", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    built = build_archive(model_dir, "1.0", store)
    metadata = read_metadata(built.path)
    settings = modelconfig.from_metadata(metadata)
    pngs = [s for s in settings.samples if s.content_type == "image/png"]
    assert [s.name for s in pngs] == [f"digit-{k}.png" for k in range(10)]
    assert all(s.body == (digits / "samples" / s.name).read_bytes() for s in pngs)
    assert settings.golden == modelconfig.GoldenRule("label", 1e-4)
    watched = ("mean_intensity", "contrast", "pc1", "pc2", "pc3", "pc4", "pc5", "confidence")
    assert settings.drift_features == watched
    assert all(isinstance(metadata["reference_stats"][f]["kll"], str) for f in watched)  # a sketch for each
    with zipfile.ZipFile(built.path) as mar:
        assert {"drift_pca.json", "drift_projection.py"} <= set(mar.namelist())  # the components and their code

    config = (model_dir / "model-config.yaml").read_text()
    (model_dir / "model-config.yaml").write_text(config.replace("pc5, confidence]", "pc5, pc6, confidence]"))
    with pytest.raises(ArchiveError, match="'pc6', which neither reference_stats.json nor reference_data.npz has"):
        build_archive(model_dir, "1.1", store)  # train.py made 5 components: a sixth has no reference


def test_two_processes_building_one_model_at_once_do_not_break_each_other(model_dir, store):
    """torch-model-archiver stages a model's files in <tempdir>/<model name>, deleting it first; each
    build now stages in a folder of its own. Eighteen builds of the same model in three processes at once."""
    script = (
        "import sys; from archiver import build_archive\n"
        "for v in sys.argv[3:]: build_archive(sys.argv[1], v, sys.argv[2])\n"
    )
    argv = [sys.executable, "-c", script, str(model_dir), str(store)]
    procs = [
        subprocess.Popen([*argv, *(f"{m}.{i}" for m in range(3, 9))], cwd=REPO_ROOT, stderr=subprocess.PIPE)
        for i in range(3)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert sorted(p.name for p in store.glob("*.mar")) == sorted(
        f"regressor-{m}.{i}.mar" for m in range(3, 9) for i in range(3)
    )
