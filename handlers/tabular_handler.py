"""TorchServe handler for tabular models: JSON rows in, one float per row out.

A kind of twinserve_handler.TwinserveHandler: it only decodes rows
(tabular_codec.py), scores them and writes the answer; batch isolation,
versions and drift publishing are the base's. What it publishes for drift is
each row's inputs and its answer, named "prediction" (prediction drift).

The forward pass runs in float64 and answers are rounded to float32, the
model's own precision. In float32, the matrix kernels sum in an order that
depends on the batch's size, so the same input gave answers a few float32 ulps
apart depending on which requests shared its batch. In float64 those
differences are ~1e-17 and vanish in the rounding: the same input always gets
the same bytes back. Inputs are bounded (handler.max_abs_input) for the same
reason: near the float limits, whether a sum overflows depends on the kernel.
"""

import torch
from tabular_codec import DEFAULT_MAX_ABS, Rows, format_output, parse_request
from twinserve_handler import TwinserveHandler

PREDICTION = "prediction"  # the name of the output among the published columns


class TabularHandler(TwinserveHandler):
    def configure(self, cfg):
        """Args: cfg: features (names, in row order), max_rows, max_abs_input."""
        self.features = list(cfg.get("features", ["x1", "x2"]))
        self.drift_features = [*self.features, PREDICTION]  # the output too: prediction drift
        self.max_rows = int(cfg.get("max_rows", 64))
        self.max_abs = float(cfg.get("max_abs_input", DEFAULT_MAX_ABS))

    def prepare(self, model):
        self.model = model.double()

    def decode(self, request) -> Rows:
        return parse_request(request, len(self.features), self.max_rows, self.max_abs)

    def predict(self, items: list[Rows]) -> list[list[float]]:
        """All rows of all good requests in one float64 forward pass; one list of floats per request."""
        rows = [row for item in items for row in item.values]
        with torch.inference_mode():
            flat = self.model(torch.tensor(rows, dtype=torch.float64)).float().reshape(-1).tolist()
        outputs, cursor = [], 0
        for item in items:
            outputs.append(flat[cursor : cursor + len(item.values)])
            cursor += len(item.values)
        return outputs

    def scores(self, output: list[float]) -> list[float]:
        return output

    def encode(self, item: Rows, output: list[float]) -> str:
        return format_output(output, item.single)

    def drift_rows(self, item: Rows, output) -> list[list[float]]:
        """Each row's inputs, then its answer (a column named "prediction", like train.py's reference_data)."""
        return [[*row, value] for row, value in zip(item.values, output, strict=True)]
