"""The digits CNN in a real TorchServe 0.12, through its worker protocol (the fast codec included):
sample PNGs answer their label, every bad image its own 4xx JSON while good requests sent at the
same time are answered. TorchServe runs on its own here: the stack serves the regressor only."""

import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

from archiver import build_archive
from tests.checkout import REPO_ROOT
from tests.integration.helpers import standalone_torchserve

pytestmark = pytest.mark.integration
DIGITS = REPO_ROOT / "models" / "digits"
ARCHIVES: dict[str, Path] = {}  # TorchServe's URL -> the archive it serves
SAMPLES = {k: (DIGITS / "samples" / f"digit-{k}.png").read_bytes() for k in range(10)}


def png_header(width: int, height: int, bit_depth: int = 8) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def png16() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (8, 8)).save(out, format="PNG")
    return out.getvalue()


BAD_IMAGES = {
    "not an image": (b"hello", 400, "unknown signature"),
    "truncated PNG": (SAMPLES[4][:60], 400, "could not be decoded"),
    "zero width": (png_header(0, 8), 400, "at least 1"),
    "decompression bomb": (png_header(50_000, 50_000), 400, "not decoded"),
    "unsupported mode": (png16(), 400, "mode I;16 is not supported"),
    "over the model's body limit": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 262_144, 413, "at most 262144"),
}


@pytest.fixture(scope="module")
def digits_url(tmp_path_factory):
    """TorchServe with digits 1.0, trained here from models/digits, on free loopback ports."""
    root = tmp_path_factory.mktemp("digits")
    model_dir = root / "digits"
    shutil.copytree(DIGITS, model_dir, ignore=shutil.ignore_patterns("artifacts"))  # samples/: twinserve.samples
    train = [sys.executable, str(DIGITS / "train.py"), "--out", str(model_dir / "artifacts")]
    subprocess.run(train, check=True, capture_output=True)
    built = build_archive(model_dir, "1.0", root / "store")
    with standalone_torchserve(root, "digits", built.path, _ready, timeout=120) as url:
        ARCHIVES[url] = built.path
        yield url


def _ready(url: str) -> bool:
    try:
        answer = requests.post(f"{url}/predictions/digits", data=SAMPLES[0], timeout=5,
                               headers={"Content-Type": "image/png"})  # fmt: skip
        return answer.status_code == 200
    except requests.RequestException:
        return False


def predict(url, body, content_type="image/png"):
    return requests.post(f"{url}/predictions/digits", data=body, headers={"Content-Type": content_type}, timeout=30)


def test_every_sample_png_answers_its_label(digits_url):
    for label, body in SAMPLES.items():
        answer = predict(digits_url, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["label"] == label
        assert answer.headers["X-Model-Version"] == "1.0"


def test_a_json_grid_answers_too(digits_url):
    grid = [
        [0, 0, 5, 13, 9, 1, 0, 0],
        [0, 0, 13, 15, 10, 15, 5, 0],
        [0, 3, 15, 2, 0, 11, 8, 0],
        [0, 4, 12, 0, 0, 8, 8, 0],
        [0, 5, 8, 0, 0, 9, 8, 0],
        [0, 4, 11, 0, 1, 12, 7, 0],
        [0, 2, 14, 5, 10, 12, 0, 0],
        [0, 0, 6, 13, 10, 0, 0, 0],
    ]  # fmt: skip  (the data set's first zero)
    answer = predict(digits_url, json.dumps({"data": grid}).encode(), "application/json")
    assert answer.status_code == 200 and answer.json()["label"] == 0


def test_bad_images_get_their_4xx_json_while_good_ones_sent_with_them_succeed(digits_url):
    good = [(SAMPLES[k % 10], 200, k % 10) for k in range(60)]
    bad = [(body, status, message) for body, status, message in BAD_IMAGES.values()] * 5
    mixed = [item for pair in zip(good, bad, strict=False) for item in pair] + good[len(bad) :]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda item: (item, predict(digits_url, item[0])), mixed))
    for (_, status, expected), answer in results:
        assert answer.status_code == status, answer.text
        body = answer.json()
        if status == 200:
            assert body["label"] == expected
        else:
            assert expected in body["error"]


def test_the_same_image_gets_the_same_bytes_alone_and_under_load(digits_url):
    alone = {k: predict(digits_url, SAMPLES[k]).text for k in range(10)}
    with ThreadPoolExecutor(max_workers=32) as pool:
        crowded = list(pool.map(lambda k: (k % 10, predict(digits_url, SAMPLES[k % 10]).text), range(200)))
    assert all(text == alone[k] for k, text in crowded)


def test_the_archive_records_its_held_out_accuracy(digits_url):
    meta = json.loads(ARCHIVES[digits_url].with_suffix(".json").read_text())
    assert meta["metrics"]["held_out_accuracy"] >= 0.95
    assert meta["twinserve"]["handler"] == "image"
