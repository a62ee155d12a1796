"""TorchServe handler for image classifiers: a PNG, a JPEG or a JSON grid in, a label and probabilities out.

A kind of twinserve_handler.TwinserveHandler: it only decodes images
(image_codec.py, Pillow: torchvision does not import beside torch 2.13 here),
scores them and writes the answer. Like the tabular kind it scores in float64
and rounds what it answers, so an image gets the same bytes whatever shares its
batch. Drift watches each image's summary features (image_codec.summary_features).
"""

import math

import torch
from image_codec import DEFAULT_MAX_PIXELS, SUMMARY_FEATURES, Grid, format_prediction, parse_request, summary_features
from request_errors import ModelFault
from twinserve_handler import TwinserveHandler


class ImageHandler(TwinserveHandler):
    def configure(self, cfg):
        """Args: cfg: size (grid side), scale (full ink), max_pixels (per image). The body's limit is
        twinserve.max_body, checked by the base."""
        self.size = int(cfg.get("size", 8))
        self.scale = float(cfg.get("scale", 16.0))
        self.max_pixels = int(cfg.get("max_pixels", DEFAULT_MAX_PIXELS))
        self.drift_features = list(SUMMARY_FEATURES)

    def prepare(self, model):
        self.model = model.double().eval()

    def decode(self, request) -> Grid:
        return parse_request(request, self.size, self.scale, self.max_pixels)

    def predict(self, items: list[Grid]) -> list[list[float]]:
        """Class probabilities of every image of the batch, in one float64 forward pass."""
        batch = torch.tensor([item.values for item in items], dtype=torch.float64).reshape(-1, 1, self.size, self.size)
        with torch.inference_mode():
            return torch.softmax(self.model(batch), dim=1).tolist()

    def encode(self, item: Grid, output: list[float]) -> str:
        if not all(map(math.isfinite, output)):
            raise ModelFault("gave a non-finite output")
        return format_prediction(output)

    def drift_rows(self, item: Grid, output) -> list[list[float]]:
        return [summary_features(item)]
