"""TorchServe handler for tabular models: JSON rows in, one float per row out.

TorchServe packs this file into the archive and imports it there, beside
tabular_codec.py; it must not import the twinserve control plane.

A batch mixes good and bad requests from different clients. Each request is
parsed on its own; the bad ones are answered 400 with a JSON error, the good
ones are stacked into one tensor and scored in a single forward pass.

The forward pass runs in float64 and answers are rounded to float32, the
model's own precision. In float32, the matrix kernels sum in an order that
depends on the batch's size, so the same input gave answers a few float32 ulps
apart depending on which requests shared its batch. In float64 those
differences are ~1e-17 and vanish in the rounding: the same input always gets
the same bytes back.
"""

import logging
import math
import os

import torch
import ts_fastpath
from input_publisher import InputPublisher
from tabular_codec import DEFAULT_MAX_ABS, BadRequest, Rows, format_error, format_output, parse_request
from ts.torch_handler.base_handler import BaseHandler

logger = logging.getLogger(__name__)

JSON = "application/json"
ROUTE_HEADER = "X-Twinserve-Route"  # set by Nginx: "production" on /predict, "test" on /test/predict


def _route(context, idx: int) -> str | None:
    """The route Nginx marked the request with (header names arrive as sent; match any case)."""
    value = context.get_request_header(idx, ROUTE_HEADER)
    if value is None:
        lowered = ROUTE_HEADER.lower()
        headers = context.get_all_request_header(idx)
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


class TabularHandler(BaseHandler):
    def initialize(self, context):
        """Read the handler section of model-config.yaml, then load the model.

        Args:
            context: TorchServe's context; model_yaml_config comes from the archive.
        """
        cfg = (context.model_yaml_config or {}).get("handler", {})
        self.features = list(cfg.get("features", ["x1", "x2"]))
        self.max_rows = int(cfg.get("max_rows", 64))
        self.max_abs = float(cfg.get("max_abs_input", DEFAULT_MAX_ABS))
        torch.set_num_threads(int(cfg.get("torch_threads", 1)))
        # TorchServe's worker logs two INFO metric lines per batch to stdout for
        # the frontend to parse; under load that costs ~10% of the worker's CPU.
        logging.getLogger().setLevel(cfg.get("worker_log_level", "INFO"))
        if cfg.get("buffered_protocol", False):
            ts_fastpath.install()
        self.model_name = context.manifest["model"]["modelName"]
        # Where production inputs go for drift detection: the stack's broker, given by
        # the environment TorchServe was started with (a deployment setting, not the model's).
        bootstrap = os.environ.get("TWINSERVE_KAFKA_BOOTSTRAP")
        self.publisher = (
            InputPublisher(bootstrap, os.environ.get("TWINSERVE_INPUTS_TOPIC", "model-inputs"),
                           os.environ.get("TWINSERVE_PUBLISHER_STATS_DIR", "publisher"),
                           int(os.environ.get("TWINSERVE_PUBLISHER_QUEUE", "1000")))
            if bootstrap else None
        )  # fmt: skip
        self.version = str(context.manifest["model"].get("modelVersion", "unknown"))
        super().initialize(context)
        self.model = self.model.double()

    def preprocess(self, data):
        """Parse every request of the batch.

        Args:
            data: one dict per request.
        Returns:
            One item per request: Rows, or the BadRequest it raised.
        """
        parsed = []
        for request in data:
            try:
                parsed.append(parse_request(request, len(self.features), self.max_rows, self.max_abs))
            except BadRequest as exc:
                parsed.append(exc)
        return parsed

    def inference(self, data, *args, **kwargs):
        """Score the rows of all good requests in one forward pass.

        Args:
            data: the list preprocess returned.
        Returns:
            One list of floats for all good rows, in request order.
        """
        rows = [row for item in data if isinstance(item, Rows) for row in item.values]
        if not rows:
            return []
        with torch.inference_mode():
            out = self.model(torch.tensor(rows, dtype=torch.float64))
        return out.float().reshape(-1).tolist()

    def postprocess(self, data):
        """Not used: answers need the parsed requests too, see handle()."""
        return data

    def handle(self, data, context):
        """Answer every request of the batch, each with its own status.

        Args:
            data: one dict per request.
            context: TorchServe's context, for per-request status and headers.
        Returns:
            One JSON string per request.
        """
        self.context = context
        parsed = self.preprocess(data)
        outputs = self.inference(parsed)
        answers, cursor = [], 0
        all_finite = all(map(math.isfinite, outputs))
        for idx, item in enumerate(parsed):
            context.set_response_header(idx, "content-type", JSON)
            context.set_response_header(idx, "X-Model-Version", self.version)
            if isinstance(item, BadRequest):
                context.set_response_status(code=item.status, phrase="Bad Request", idx=idx)
                answers.append(format_error(str(item)))
                continue
            n = len(item.values)
            values = outputs[cursor : cursor + n]
            cursor += n
            if not all_finite and not all(map(math.isfinite, values)):
                # The model's fault, not the request's: a 500 the smoke test and the alerts see,
                # never a body with NaN in it (not JSON) that a client might take as an answer.
                context.set_response_status(code=500, phrase="Internal Server Error", idx=idx)
                answers.append(format_error(f"model {self.model_name} {self.version} gave a non-finite output"))
                continue
            answers.append(format_output(values, item.single))
        if self.publisher is not None:
            self._publish_production_inputs(parsed, context)
        return answers

    def _publish_production_inputs(self, parsed, context) -> None:
        """Queue the rows of this batch's production requests (Nginx marks them) for Kafka."""
        rows = [
            row
            for idx, item in enumerate(parsed)
            if isinstance(item, Rows) and _route(context, idx) == "production"
            for row in item.values
        ]
        if rows:
            self.publisher.publish(self.model_name, self.version, self.features, rows)
