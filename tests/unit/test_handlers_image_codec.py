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


# What each EXIF orientation tag says of the stored pixels (EXIF 2.3, tag 0x0112: which side of the
# picture as a person sees it is the stored row 0 and column 0), written from the standard, not from
# Pillow's table: stored pixel (x, y) of a picture seen as `upright` (w × h) is upright's pixel at ...
STORED_FROM_UPRIGHT = {
    1: lambda x, y, w, h: (x, y),  # row 0 top, column 0 left
    2: lambda x, y, w, h: (w - 1 - x, y),  # row 0 top, column 0 right: mirrored
    3: lambda x, y, w, h: (w - 1 - x, h - 1 - y),  # row 0 bottom, column 0 right: upside down
    4: lambda x, y, w, h: (x, h - 1 - y),  # row 0 bottom, column 0 left
    5: lambda x, y, w, h: (y, x),  # row 0 left, column 0 top
    6: lambda x, y, w, h: (w - 1 - y, x),  # row 0 right, column 0 top: a phone held upright, "rotate 90° CW"
    7: lambda x, y, w, h: (w - 1 - y, h - 1 - x),  # row 0 right, column 0 bottom
    8: lambda x, y, w, h: (y, h - 1 - x),  # row 0 left, column 0 bottom: "rotate 90° CCW"
}


def stored_as(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera would store for `upright` with this orientation tag (5-8 swap width and height)."""
    w, h = upright.size
    size = (h, w) if orientation >= 5 else (w, h)
    stored = Image.new(upright.mode, size)
    where = STORED_FROM_UPRIGHT[orientation]
    for y in range(size[1]):
        for x in range(size[0]):
            stored.putpixel((x, y), upright.getpixel(where(x, y, w, h)))
    return stored


def tagged(image: Image.Image, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def upright_seven() -> Image.Image:
    """The shipped 7 on a canvas taller than wide, so that a missed or wrong rotation cannot hide."""
    seven = Image.open(SAMPLES / "digit-7.png").convert("L")
    canvas = Image.new("L", (seven.width, seven.height + seven.height // 2), 255)
    canvas.paste(seven, (0, 0))
    return canvas


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_read_as_a_person_sees_the_picture(orientation):
    """Exact: PNG is lossless and every orientation is a permutation of pixels, so the upright pixels are the same
    pixels, and the same box filter averages them; a rotation missed or the wrong way moves the ink elsewhere."""
    upright = upright_seven()
    stored = stored_as(upright, orientation)
    assert orientation == 1 or stored.tobytes() != upright.tobytes()  # the stored pixels are not the upright ones
    assert parse(tagged(stored, orientation, "PNG")).values == parse(png(upright)).values


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_jpeg_from_a_phone_is_turned_upright_too(orientation):
    """Within JPEG's loss: its 8 × 8 blocks fall elsewhere on rotated pixels (1 of 16 grey levels is ample; the
    sideways picture is off by far more)."""
    upright = upright_seven().convert("RGB")
    want = parse(tagged(upright, 1, "JPEG")).values
    stored = stored_as(upright, orientation)
    got = parse(tagged(stored, orientation, "JPEG")).values
    assert got == pytest.approx(want, abs=1.0)
    untagged = parse(tagged(stored, 1, "JPEG")).values  # the same pixels read as stored: far off
    assert max(abs(a - b) for a, b in zip(untagged, want, strict=True)) > 4


def test_an_image_without_exif_is_taken_as_stored():
    upright = upright_seven()
    assert parse(png(upright)).values == parse(tagged(upright, 1, "PNG")).values


@pytest.mark.parametrize(
    "exif",
    [b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage",  # an IFD offset past the end
     b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00"],  # orientation 9
)  # fmt: skip
def test_unreadable_exif_is_ignored_as_a_viewer_ignores_it(exif):
    upright = upright_seven()
    out = io.BytesIO()
    upright.save(out, format="PNG", exif=exif)
    assert parse(out.getvalue()).values == parse(png(upright)).values


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
