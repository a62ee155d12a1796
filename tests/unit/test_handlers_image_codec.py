"""Every rule about the images a client may send: any size and 8-bit mode parses, bad images get a BadRequest."""

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from image_codec import (
    SUMMARY_FEATURES,
    Grid,
    format_prediction,
    grid_from_image,
    parse_request,
    summary_features,
)
from PIL import Image
from request_errors import BadRequest

SAMPLES = Path(__file__).resolve().parents[2] / "models" / "digits" / "samples"
MAX_PIXELS = 4_000_000


def png(image: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **params)
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG whose IHDR declares width × height, with an empty IDAT: decoding it would fail."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def parse(body):
    return parse_request({"body": body}, size=8, scale=16.0, max_pixels=MAX_PIXELS)


def rejection(body) -> str:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert caught.value.status == 400
    return str(caught.value)


# --- good images ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (8, 8), (300, 200)])
def test_any_size_and_8_bit_mode_becomes_an_8_by_8_grid(mode, size):
    grid = parse(png(Image.new(mode, size)))
    assert grid.size == 8 and len(grid.values) == 64
    assert all(0 <= v <= 16 for v in grid.values)


def test_a_jpeg_is_taken_too():
    out = io.BytesIO()
    Image.new("RGB", (40, 40), "white").save(out, format="JPEG")
    assert max(parse(out.getvalue()).values) < 0.5  # white paper, no ink (JPEG noise aside)


def test_dark_ink_on_white_paper_is_high_on_the_training_scale():
    image = Image.new("L", (8, 8), 255)
    image.putpixel((3, 4), 0)
    grid = parse(png(image))
    assert grid.values[4 * 8 + 3] == 16.0
    assert sum(grid.values) == 16.0


def test_transparent_pixels_are_paper():
    assert parse(png(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))).values == (0.0,) * 64


def test_a_shipped_sample_decodes_to_its_digit_within_a_quantisation_step():
    grid = parse((SAMPLES / "digit-7.png").read_bytes())
    golden = Image.open(SAMPLES / "digit-7.png").convert("L").resize((8, 8), Image.Resampling.NEAREST)
    expected = [(255 - v) * 16 / 255 for v in golden.tobytes()]
    assert grid.values == pytest.approx(expected, abs=1e-9)


def test_a_json_grid_on_the_training_scale():
    rows = [[(i + j) % 17 for j in range(8)] for i in range(8)]
    assert parse({"data": rows}).values == tuple(float(v) for row in rows for v in row)
    assert parse(json.dumps({"data": rows}).encode()).values == parse({"data": rows}).values  # undecoded JSON


# --- bad images ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"hello, this is text", "neither a PNG or JPEG image (unknown signature) nor JSON"),
        (b"GIF89a\x01\x00\x01\x00", "unknown signature"),
        (b"", "body is empty"),
    ],
)
def test_not_an_image(body, message):
    assert message in rejection(body)


def test_a_truncated_png():
    whole = png(Image.effect_noise((64, 64), 60))
    assert rejection(whole[: len(whole) // 2]) == "image data could not be decoded (image file is truncated)"


@pytest.mark.parametrize(("width", "height"), [(0, 8), (8, 0), (0, 0)])
def test_zero_width_or_height(width, height):
    assert (
        rejection(png_header_only(width, height))
        == f"image is {width}×{height}; expected a width and height of at least 1"
    )


def test_a_damaged_header():
    assert (
        rejection(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
        == "body is not a valid PNG or JPEG image (its header cannot be read)"
    )


@pytest.mark.parametrize("side", [2001, 100_000])
def test_a_decompression_bomb_is_refused_before_decoding(side):
    """The header alone (no pixel data) is enough to refuse: had it been decoded, the error would differ."""
    message = rejection(png_header_only(side, side))
    assert "not decoded" in message


def test_the_pixel_limit_is_the_callers():
    body = png(Image.new("L", (100, 100)))
    with pytest.raises(BadRequest, match="at most 9999"):
        grid_from_image(body, 8, 16.0, max_pixels=9999)
    assert len(grid_from_image(body, 8, 16.0, max_pixels=10_000).values) == 64


@pytest.mark.parametrize("body", [png(Image.new("I;16", (8, 8))), png_header_only(8, 8, bit_depth=16)])
def test_an_unsupported_mode(body):
    assert rejection(body) == "image mode I;16 is not supported; send an 8-bit grey, palette or RGB(A) image"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[0] * 8] * 7, '"data" has 7 rows; expected 8 rows of 8 pixels'),
        ("pixels", '"data" has str rows'),
        ([[0] * 8] * 7 + [[0] * 9], '"data"[7] is not a list of 8 pixels'),
        ([[0] * 8] * 7 + [[0] * 7 + [17]], '"data"[7][7] is 17; expected a number from 0 to 16'),
        ([[0] * 8] * 7 + [[0] * 7 + [True]], '"data"[7][7] is true; expected a number'),
        ([[0] * 8] * 7 + [[0] * 7 + [float("nan")]], '"data"[7][7] is nan'),
        ([[0] * 8] * 7 + [[0] * 7 + [-0.5]], '"data"[7][7] is -0.5'),
    ],
)
def test_bad_json_grids(data, message):
    assert message in rejection({"data": data})


def test_json_without_data():
    assert 'JSON {"data": [8 rows of 8 pixels]}' in rejection({"pixels": []})


# --- answers and drift features ----------------------------------------------------


def test_the_answer_names_the_most_probable_label_with_rounded_probabilities():
    probabilities = [0.01, 0.02, 0.9, 0.07] + [0.0] * 6
    answer = json.loads(format_prediction([p + 1e-12 for p in probabilities]))
    assert answer["label"] == 2
    assert answer["probabilities"] == {str(k): round(p, 6) for k, p in enumerate(probabilities)}


def test_summary_features_of_paper_ink_and_half_ink():
    assert SUMMARY_FEATURES == ["mean_intensity", "contrast", "ink_share"]
    assert summary_features(Grid((0.0,) * 64, 8, 16.0)) == [0.0, 0.0, 0.0]
    assert summary_features(Grid((16.0,) * 64, 8, 16.0)) == [1.0, 0.0, 1.0]
    half = summary_features(Grid((0.0, 16.0) * 32, 8, 16.0))
    assert half == pytest.approx([0.5, 0.5, 0.5])


def test_an_images_drift_row_is_its_summary_its_components_and_its_confidence():
    from image_codec import image_drift_features, image_drift_row

    grid = Grid(tuple(float(v % 17) for v in range(64)), 8, 16.0)
    row = image_drift_row(grid, [0.5, -1.0], [0.1, 0.7, 0.2])
    assert row == image_drift_row(grid, [0.5, -1.0], [0.1, 0.7, 0.2])
    assert row == [*summary_features(grid), 0.5, -1.0, 0.7]
    assert image_drift_features(["pc1", "pc2"]) == [
        "mean_intensity",
        "contrast",
        "ink_share",
        "pc1",
        "pc2",
        "confidence",
    ]
