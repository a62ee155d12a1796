"""TorchServe handler for image classifiers: a PNG, a JPEG or a JSON grid in, a label and probabilities out.

A kind of twinserve_handler.TwinserveHandler: it only decodes images
(image_codec.py, Pillow: torchvision does not import beside torch 2.13 here),
scores them and writes the answer. Like the tabular kind it scores in float64
and rounds what it answers, so an image gets the same bytes whatever shares its
batch. Drift features (image_drift_features): each image's summary features
(image_codec.summary_features), its penultimate layer on the training set's top
principal components (pc1..pck, with handler.drift_pca: drift_projection.py) and
the model's confidence (its top class's probability: prediction drift).
"""

import torch
from image_codec import (
    DEFAULT_MAX_PIXELS,
    Grid,
    format_prediction,
    image_drift_features,
    image_drift_row,
    parse_request,
)
from twinserve_handler import TwinserveHandler


class ImageHandler(TwinserveHandler):
    def configure(self, cfg):
        """Args: cfg: size (grid side), scale (full ink), max_pixels (per image). The body's limit is
        twinserve.max_body, checked by the base."""
        self.size = int(cfg.get("size", 8))
        self.scale = float(cfg.get("scale", 16.0))
        self.max_pixels = int(cfg.get("max_pixels", DEFAULT_MAX_PIXELS))
        self.drift_features = image_drift_features(self.projection.names if self.projection else [])

    def prepare(self, model):
        self.model = model.double().eval()

    def decode(self, request) -> Grid:
        return parse_request(request, self.size, self.scale, self.max_pixels)

    def predict(self, items: list[Grid]) -> list[tuple[list[float], list[float]]]:
        """(class probabilities, principal components) of every image of the batch, in one float64 forward pass."""
        batch = torch.tensor([item.values for item in items], dtype=torch.float64).reshape(-1, 1, self.size, self.size)
        with torch.inference_mode():
            probs = torch.softmax(self.model(batch), dim=1).tolist()
        pcs = self.projected()
        return list(zip(probs, pcs.tolist() if pcs is not None else [[]] * len(items), strict=True))

    def scores(self, output) -> list[float]:
        probs, _ = output
        return probs

    def encode(self, item: Grid, output) -> str:
        probs, _ = output
        return format_prediction(probs)

    def drift_rows(self, item: Grid, output) -> list[list[float]]:
        probs, pcs = output
        return [image_drift_row(item, pcs, probs)]
