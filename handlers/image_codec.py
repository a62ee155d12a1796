"""Pure request parsing for image classifiers: a PNG or JPEG, or a JSON grid of pixels, in.

No torch, no TorchServe: every rule about what a client may send lives here and
is unit-tested on its own. An image of any size and mode becomes the model's
grid (size × size grey levels on the training data's scale, ink high and paper
low, as in scikit-learn's digits: 0 to 16).

Bombs are stopped before decoding: a PNG of a few hundred bytes can declare
100,000 × 100,000 pixels (40 GB once decoded), so the size in the header is
checked against max_pixels before any pixel is read.

A picture is read as a person sees it: a phone stores its sensor's rows and
says in EXIF tag 0x0112 (orientation) how to turn them for display; every
viewer obeys it, so the tag is applied before anything else (Pillow's
ImageOps.exif_transpose). Without it a sideways-tagged 7 was read from its
raw pixels: label 4 at 0.99996 (issue 23.9).
"""

import io
import json
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError
from request_errors import BadRequest

FORMATS = ("PNG", "JPEG")
MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
# 8-bit modes, with or without colour, palette or alpha; 16-bit and float images are refused
# (their grey levels have no agreed mapping to the 8-bit scale the model was trained on).
MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr"}
DEFAULT_MAX_PIXELS = 4_000_000  # 2000 × 2000
INK_THRESHOLD = 0.5  # share of the scale above which a pixel counts as ink (drift's ink_share)


@dataclass(frozen=True)
class Grid:
    """One image as the model sees it: size × size values from 0 (paper) to scale (ink), row by row."""

    values: tuple[float, ...]
    size: int
    scale: float


def _number(value, where: str, scale: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where} is {json.dumps(value)[:40]}; expected a number from 0 to {scale:g}")
    if not (isinstance(value, int) or math.isfinite(value)) or not 0 <= value <= scale:
        raise BadRequest(f"{where} is {value!r}; expected a number from 0 to {scale:g}")
    return float(value)


def grid_from_json(body, size: int, scale: float) -> Grid:
    """{"data": [[...size values], ...size rows]} on the model's scale."""
    if not isinstance(body, dict) or "data" not in body:
        raise BadRequest(f'expected a PNG or JPEG image, or JSON {{"data": [{size} rows of {size} pixels]}}')
    rows = body["data"]
    if not isinstance(rows, list) or len(rows) != size:
        shown = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise BadRequest(f'"data" has {shown} rows; expected {size} rows of {size} pixels from 0 to {scale:g}')
    values = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != size:
            raise BadRequest(f'"data"[{i}] is not a list of {size} pixels')
        values.extend(_number(v, f'"data"[{i}][{j}]', scale) for j, v in enumerate(row))
    return Grid(tuple(values), size, scale)


def _open(body: bytes, max_pixels: int) -> Image.Image:
    """Open an image and check its header; nothing is decoded yet."""
    if not any(body.startswith(magic) for magic in MAGIC):
        raise BadRequest("body is not a PNG or JPEG image (unknown signature); send image/png or image/jpeg")
    if body.startswith(b"\x89PNG") and body[12:16] == b"IHDR":  # Pillow refuses these with a vaguer message
        width, height = struct.unpack(">II", body[16:24].ljust(8, b"\xff"))
        if width == 0 or height == 0:
            raise BadRequest(f"image is {width}×{height}; expected a width and height of at least 1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(body), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadRequest(f"image declares more pixels than the limit of {max_pixels}; not decoded") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            raise BadRequest("body is not a valid PNG or JPEG image (its header cannot be read)") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadRequest(f"image is {width}×{height}; expected a width and height of at least 1")
    if width * height > max_pixels:
        raise BadRequest(f"image is {width}×{height} = {width * height} pixels; at most {max_pixels} (not decoded)")
    if image.mode not in MODES:
        raise BadRequest(f"image mode {image.mode} is not supported; send an 8-bit grey, palette or RGB(A) image")
    return image


def upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says (a permutation of pixels: none lost or blended).

    EXIF that cannot be read is ignored, as a viewer ignores it: the picture is then taken as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        return image


def grid_from_image(body: bytes, size: int, scale: float, max_pixels: int) -> Grid:
    """Turn upright (EXIF), flatten onto white paper, average down to size × size, map dark ink to high values."""
    image = _open(bytes(body), max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"image data could not be decoded ({exc})") from None
    image = upright(image)
    if image.mode in ("P", "PA", "LA", "La", "RGBA", "RGBa") or "transparency" in image.info:
        image = image.convert("RGBA")
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image)
    grey = image.convert("L").resize((size, size), Image.Resampling.BOX)
    return Grid(tuple((255 - v) * scale / 255 for v in grey.tobytes()), size, scale)


def parse_request(request: dict, size: int = 8, scale: float = 16.0, max_pixels: int = DEFAULT_MAX_PIXELS) -> Grid:
    """One request of a batch: image bytes, or a JSON grid (decoded by TorchServe or not).

    Args:
        request: TorchServe's dict for one request.
        size: the model's grid is size × size.
        scale: the value of full ink in the training data.
        max_pixels: the largest width × height an image may declare.
    Raises:
        BadRequest: with a message saying what was wrong and what was expected.
    """
    body = request.get("body", request.get("data")) if isinstance(request, dict) else None
    if body is None:
        raise BadRequest("expected a body: a PNG or JPEG image, or a JSON grid of pixels")
    if isinstance(body, (bytes, bytearray)):
        if not body:
            raise BadRequest("body is empty; expected a PNG or JPEG image")
        if any(bytes(body[:8]).startswith(magic) for magic in MAGIC):
            return grid_from_image(body, size, scale, max_pixels)
        try:
            body = json.loads(bytes(body))
        except (ValueError, RecursionError):
            raise BadRequest("body is neither a PNG or JPEG image (unknown signature) nor JSON") from None
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("body is neither a PNG or JPEG image nor valid JSON") from None
    return grid_from_json(body, size, scale)


def summary_features(grid: Grid) -> list[float]:
    """What drift detection watches of an image: mean intensity, contrast, share of ink (all 0..1).

    An inverted, blank or washed-out image moves these long before a model's
    accuracy can be measured.

    Plain float arithmetic: statistics.pstdev is exact (Fractions) and took a
    quarter of the worker's time under load; these values only feed sketches.
    """
    n, scale = len(grid.values), grid.scale
    mean = math.fsum(grid.values) / (n * scale)
    spread = math.fsum((v / scale - mean) ** 2 for v in grid.values) / n
    ink = sum(v > INK_THRESHOLD * scale for v in grid.values) / n
    return [mean, math.sqrt(spread), ink]


SUMMARY_FEATURES = ["mean_intensity", "contrast", "ink_share"]
CONFIDENCE = "confidence"  # the top class's probability


def image_drift_features(pcs: list[str]) -> list[str]:
    """The names of image_drift_row's values, in order (train.py's reference columns are these)."""
    return [*SUMMARY_FEATURES, *pcs, CONFIDENCE]


def image_drift_row(grid: Grid, pcs: list[float], probabilities: list[float]) -> list[float]:
    """One image's drift values. Prediction drift is watched as the confidence, a continuous value a
    quantile sketch and the KS test take as they are; the predicted class is categorical (ties: KS and
    PSI on a sketch of ten values mean nothing), and a change in the classes' mix moves the pcs."""
    return [*summary_features(grid), *pcs, max(probabilities)]


def format_prediction(probabilities: list[float]) -> str:
    """{"label": k, "probabilities": {"0": p0, ...}}, probabilities to 6 decimals.

    Rounded so that the few-ulp differences between batch sizes (the kernels sum in
    other orders) never change an answer's bytes.
    """
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    return json.dumps({"label": label, "probabilities": {str(k): round(p, 6) for k, p in enumerate(probabilities)}})
