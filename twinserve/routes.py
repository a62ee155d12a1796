"""Where a model is served through Nginx, in one place: every caller (the Nginx template's
renderer, smoke, promotion, load tests, bench, swapcheck, pipeline) asks here, and nothing
else builds a prediction path. Nginx's side is nginx/nginx.conf.j2 (`/predict/<model>`,
`/test/predict/<model>`) and the Lua edge, which reads each route's label.

The staging side is called staging everywhere in Python; only what Nginx says on the wire
keeps its old word: the HTTP path `/test/predict`, and the route label `test` (the
X-Twinserve-Route header, the `route` label of twinserve_http_* metrics, access_test.log),
which dashboards, alerts and logs already name (renaming it would change what they see).
"""

from collections.abc import Iterable
from dataclasses import dataclass

PRODUCTION = "production"  # the route label of a model's production route
STAGING = "test"  # the route label of a model's staging route (on the wire: see the module's docstring)


def route_for(model: str | None = None, staging: bool = False) -> str:
    """The path of `model`'s production route (staging: its staging route), e.g. /predict/digits.

    Args:
        model: a model of the stack description; None: the default model's unnamed route (/predict).
        staging: the staging colour's route instead of production's.
    """
    base = "/test/predict" if staging else "/predict"
    return base if model is None else f"{base}/{model}"


def predictions_path(model: str) -> str:
    """TorchServe's own inference path of `model` on a colour (behind Nginx, which proxies a route to it;
    bench and its peers call it straight), e.g. /predictions/digits."""
    return f"/predictions/{model}"


@dataclass(frozen=True)
class Route:
    """One public prediction route: its path, its label (PRODUCTION or STAGING) and the model it serves."""

    path: str
    route: str
    model: str


def routes(models: Iterable[str], default: str) -> list[Route]:
    """/predict/<model> and /test/predict/<model> for every model; /predict and /test/predict for the default.

    Args:
        models: the stack's models, in its order.
        default: the model the unnamed routes serve.
    """
    found = []
    for model, served in [(None, default), *((m, m) for m in models)]:
        found += [Route(route_for(model), PRODUCTION, served), Route(route_for(model, staging=True), STAGING, served)]
    return found
