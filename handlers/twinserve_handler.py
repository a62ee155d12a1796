"""The base of every twinserve model handler: what all model kinds share.

TorchServe packs this file into each archive beside the kind's own handler and
imports it there; it must not import the twinserve control plane.

A TorchServe batch mixes requests from different clients. The base answers each
on its own: a request its kind cannot decode gets its own 4xx JSON, the good
ones are scored together in one call to the kind's predict(), a non-finite
output is that request's 500 JSON, and every answer carries X-Model-Version.
Rows of production requests (Nginx marks /predict) go to the drift publisher.

A model kind subclasses TwinserveHandler and writes only what differs:
    decode(request) -> item          one request's input, or raise BadRequest
    predict(items) -> outputs        one output per item, in one forward pass
    scores(output) -> floats         the numbers of an output that must be finite
    encode(item, output) -> str      the JSON answer, or raise ModelFault
    drift_rows(item, output) -> rows the watched features of this request
Settings come from the archive's model-config.yaml `handler:` section
(context.model_yaml_config["handler"]), with defaults, never from the
environment; only the broker's address is the deployment's (TorchServe's
environment), not the model's. Two keys of its `twinserve:` section apply to
every kind, so the base reads them: max_body (a larger body is that request's
413) and drift_features (which of the kind's drift features are published).
One key of `handler:` too: drift_pca, the file of principal components the
model's penultimate layer is projected on (drift_projection.py; pc1, pc2, ...).
"""

import logging
import math
import os
from collections.abc import Iterable

import torch
import ts_fastpath
from drift_projection import Penultimate, Projection
from input_publisher import InputPublisher
from request_errors import BadRequest, ModelFault, PayloadTooLarge, format_error
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


def check_size(request, max_bytes: int) -> None:
    """Refuse a raw body over the model's twinserve.max_body (Nginx bounds bodies first; this is
    the model's own limit, for TorchServe reached without Nginx).

    Raises:
        PayloadTooLarge: that request's 413.
    """
    body = request.get("body", request.get("data")) if isinstance(request, dict) else None
    if isinstance(body, (bytes, bytearray, str)) and len(body) > max_bytes:
        raise PayloadTooLarge(f"body is {len(body)} bytes; at most {max_bytes} are allowed for this model")


def load_projection(context, name: str | None) -> Projection | None:
    """The archive's principal components (handler.drift_pca, a file train.py wrote beside the weights), or None."""
    if not name:
        return None
    return Projection.load(os.path.join(context.system_properties.get("model_dir"), str(name)))


class TwinserveHandler(BaseHandler):
    """Batch isolation, versions, drift publishing and the fast worker codec for every model kind."""

    #: names of the values drift_rows() returns, in order (a kind may set them from its settings)
    drift_features: list[str] = []

    def initialize(self, context):
        """Read the handler section of model-config.yaml, then load the model.

        Args:
            context: TorchServe's context; model_yaml_config comes from the archive.
        """
        yaml_config = context.model_yaml_config or {}
        cfg = yaml_config.get("handler", {}) or {}
        own = yaml_config.get("twinserve", {}) or {}
        self.max_body = own.get("max_body")  # None: Nginx's limit only
        torch.set_num_threads(int(cfg.get("torch_threads", 1)))
        # TorchServe's worker logs two INFO metric lines per batch to stdout for
        # the frontend to parse; under load that costs ~10% of the worker's CPU.
        logging.getLogger().setLevel(cfg.get("worker_log_level", "INFO"))
        if cfg.get("buffered_protocol", False):
            ts_fastpath.install()
        self.model_name = context.manifest["model"]["modelName"]
        self.version = str(context.manifest["model"].get("modelVersion", "unknown"))
        self.projection = load_projection(context, cfg.get("drift_pca"))
        self.configure(cfg)
        self._watch(own.get("drift_features"))
        bootstrap = os.environ.get("TWINSERVE_KAFKA_BOOTSTRAP")
        self.publisher = (
            InputPublisher(bootstrap, os.environ.get("TWINSERVE_INPUTS_TOPIC", "model-inputs"),
                           os.environ.get("TWINSERVE_PUBLISHER_STATS_DIR", "publisher"),
                           int(os.environ.get("TWINSERVE_PUBLISHER_QUEUE", "1000")))
            if bootstrap and self.drift_features else None
        )  # fmt: skip
        super().initialize(context)
        self.prepare(self.model)
        self.penultimate = Penultimate(self.model) if self.projection is not None else None

    def _watch(self, watched: list[str] | None) -> None:
        """Publish only the watched features of the kind's drift_features (all of them without the key)."""
        offered = list(self.drift_features)
        watched = offered if watched is None else [f for f in watched if f in offered]
        self._drift_columns = [offered.index(f) for f in watched]
        self.drift_features = watched

    def projected(self, passes: list | None = None) -> torch.Tensor | None:
        """This predict()'s penultimate rows on the training set's principal components, (N, k) float64,
        in item order; None without handler.drift_pca. `passes`: the item indices of each forward pass,
        when predict() ran several in another order (the text kind); one pass in order by default."""
        if self.penultimate is None:
            return None
        rows = self.projection.apply(torch.cat(self.penultimate.take(len(passes) if passes else 1)))
        if passes:
            ordered = torch.empty_like(rows)
            ordered[torch.cat(list(passes))] = rows
            rows = ordered
        return rows

    # --- what a model kind writes -------------------------------------------------

    def configure(self, cfg: dict) -> None:
        """Read the kind's own keys of the handler section (before the model loads).

        Args:
            cfg: model-config.yaml's `handler:` mapping.
        """

    def prepare(self, model) -> None:
        """Adjust the loaded model (precision, eval mode); BaseHandler has loaded it into self.model."""

    def decode(self, request):
        """One request's input.

        Args:
            request: TorchServe's dict for one request of the batch.
        Returns:
            Whatever predict() and encode() take for this request.
        Raises:
            BadRequest: with a message saying what was wrong and what was expected.
        """
        raise NotImplementedError

    def predict(self, items: list) -> list:
        """Score every good request of the batch at once.

        Args:
            items: decode()'s results, in request order (at least one).
        Returns:
            One output per item, in the same order.
        """
        raise NotImplementedError

    def scores(self, output) -> Iterable[float]:
        """The numbers of one request's output that its answer reports: the base refuses the answer
        (that request's 500, ModelFault) if any is not finite, before encode() sees it."""
        raise NotImplementedError

    def encode(self, item, output) -> str:
        """The JSON answer to one request (its output's scores are finite).

        Raises:
            ModelFault: the output cannot be an answer.
        """
        raise NotImplementedError

    def drift_rows(self, item, output) -> list[list[float]]:
        """The watched feature values of one answered request, one row per input (drift_features order)."""
        return []

    # --- the same for every kind ----------------------------------------------------

    def handle(self, data, context):
        """Answer every request of the batch, each with its own status.

        Args:
            data: one dict per request.
            context: TorchServe's context, for per-request status and headers.
        Returns:
            One JSON string per request.
        """
        self.context = context
        items = []
        for request in data:
            try:
                if self.max_body is not None:
                    check_size(request, self.max_body)
                items.append(self.decode(request))
            except BadRequest as exc:
                items.append(exc)
        good = [item for item in items if not isinstance(item, BadRequest)]
        outputs = iter(self.predict(good) if good else ())
        answers, published = [], []
        for idx, item in enumerate(items):
            context.set_response_header(idx, "content-type", JSON)
            context.set_response_header(idx, "X-Model-Version", self.version)
            if isinstance(item, BadRequest):
                context.set_response_status(code=item.status, phrase=item.phrase, idx=idx)
                answers.append(format_error(str(item)))
                continue
            output = next(outputs)
            try:
                if not all(map(math.isfinite, self.scores(output))):
                    raise ModelFault("gave a non-finite output")
                answers.append(self.encode(item, output))
            except ModelFault as exc:
                context.set_response_status(code=exc.status, phrase=exc.phrase, idx=idx)
                answers.append(format_error(f"model {self.model_name} {self.version} {exc}"))
                continue
            if self.publisher is not None and _route(context, idx) == "production":
                published.extend([row[j] for j in self._drift_columns] for row in self.drift_rows(item, output))
        if published:
            self.publisher.publish(self.model_name, self.version, self.drift_features, published)
        return answers
