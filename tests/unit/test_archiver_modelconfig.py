"""archiver/modelconfig.py: the twinserve: section of model-config.yaml, pure."""

import json
from pathlib import Path

import pytest

from archiver import modelconfig
from archiver.modelconfig import GoldenRule, ModelConfigError

MODELS = Path(__file__).resolve().parents[2] / "models"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def section(**override) -> dict:
    raw = {
        "handler": "tabular",
        "max_body": 1000,
        "golden": {"compare": "numbers", "tolerance": 1e-5},
        "samples": [{"json": {"data": [0.2, 0.6]}}],
        "drift_features": ["x1"],
    }
    return raw | override


def test_both_models_configs_parse():
    regressor, digits = modelconfig.load(MODELS / "regressor"), modelconfig.load(MODELS / "digits")
    assert (regressor.handler, regressor.golden) == ("tabular", GoldenRule("numbers", 1e-5, batch=True))
    assert (digits.handler, digits.golden) == ("image", GoldenRule("label", 1e-4))
    assert {s.content_type for s in digits.samples} == {"image/png", "application/json"}
    assert len(regressor.samples) > 1 and len({s.body for s in regressor.samples}) == len(regressor.samples)


def test_sample_files_are_read_with_their_content_type(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "b.png").write_bytes(PNG)
    (tmp_path / "samples" / "a.png").write_bytes(PNG[:20])
    (tmp_path / "one.txt").write_bytes(b"hello")
    samples = [
        {"files": "samples/*.png", "content_type": "image/png"},
        {"file": "one.txt", "content_type": "text/plain"},
    ]
    parsed = modelconfig.parse(section(samples=samples), tmp_path).samples
    assert [(s.name, s.content_type, s.body) for s in parsed] == [
        ("a.png", "image/png", PNG[:20]), ("b.png", "image/png", PNG), ("one.txt", "text/plain", b"hello"),
    ]  # fmt: skip


def test_the_metadata_round_trip_keeps_every_byte(tmp_path):
    (tmp_path / "x.png").write_bytes(PNG)
    samples = [{"file": "x.png", "content_type": "image/png"}, {"json": {"data": [1, 2]}}]
    settings = modelconfig.parse(section(samples=samples), tmp_path)
    meta = json.loads(json.dumps({"twinserve": settings.to_metadata()}))
    assert modelconfig.from_metadata(meta) == settings
    assert meta["twinserve"]["samples"][1] == {"name": "json-1", "content_type": "application/json",
                                               "json": {"data": [1, 2]}}  # fmt: skip


def test_metadata_without_the_section_says_to_archive_again():
    with pytest.raises(ModelConfigError, match="regressor 1.0 has no twinserve: samples and golden rule; archive it"):
        modelconfig.from_metadata({"model_name": "regressor", "version": "1.0", "twinserve": {"handler": "tabular"}})


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (None, "twinserve: is NoneType"),
        (section(handler=3), "twinserve.handler is 3"),
        (section(max_body=0), "twinserve.max_body is 0"),
        (section(max_body=True), "twinserve.max_body is True"),
        (section(golden={"compare": "label", "tolerance": 0.1}), "twinserve.golden.tolerance is not a key of compare"),
        (section(golden={"compare": "numbers", "tolerance": -1}), "twinserve.golden.tolerance is -1"),
        (section(golden={"compare": "numbers", "tolerance": 1, "batch": "yes"}), "twinserve.golden.batch is 'yes'"),
        (section(samples=[{"json": 1, "file": "x"}]), "samples[0] must have exactly one of"),
        (section(samples=[{"file": "x.png"}]), "samples[0].content_type is None"),
        (section(samples=[{"file": "/etc/passwd", "content_type": "text/plain"}]), "samples[0].file is '/etc/passwd'"),
        (section(drift_features="x1"), "twinserve.drift_features is 'x1'"),
        (section(drift_features=["x1", "x1"]), "names a feature twice"),
        (section(deterministic="yes"), "twinserve.deterministic is 'yes'; expected true or false"),
        (section(cache=1), "twinserve.cache is 1; expected true or false"),
    ],
)
def test_each_bad_key_is_named(tmp_path, raw, named):
    with pytest.raises(ModelConfigError, match=named.replace("[", r"\[").replace("(", r"\(")):
        modelconfig.parse(raw, tmp_path)
