"""Zero failed requests during promotion, measured, model by model.

Keeps wrk's keep-alive load on every model's /predict/<model> while it swaps one
model's production back and forth (and deploys a new version of it to staging
half-way), then reports wrk's figures per model and whether any other model's
colour moved. The integration tests run a short version on every CI run;
`twinserve swapcheck [--model digits]` (make swapcheck [MODEL=digits]) prints the
full one (20 swaps).

Each deploy and each swap takes the stack's lock (store.state.exclusive), as
`twinserve deploy` and `twinserve swap` do: a pipeline or an operator changing
the stack meanwhile is refused, or refuses the check, instead of racing it.
The lock is taken per change, not for the whole run, so the load keeps going
between changes exactly as between two operators' commands.
"""

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from twinserve.release import deploy, promote
from twinserve.routes import route_for
from twinserve.runtime import nginx
from twinserve.settings import Stack
from twinserve.store.archives import archive_for
from twinserve.store.state import exclusive, read_deployments, read_production
from twinserve.tools.wrk import WrkReport, WrkRun

JSON = "application/json"


@dataclass(frozen=True)
class SwapCheck:
    model: str  # the model swapped
    swaps: int
    deployed: str | None
    reports: dict[str, WrkReport]  # per model under load
    others_moved: tuple[str, ...]  # "regressor: blue -> green after swap 3": must stay empty

    @property
    def report(self) -> WrkReport:
        """The swapped model's report."""
        return self.reports[self.model]

    @property
    def failed(self) -> bool:
        bad = any(r.socket_errors or r.non_2xx for r in self.reports.values())
        return bad or bool(self.others_moved)


def load_body(stack: Stack, model: str) -> tuple[bytes, str]:
    """A request body for `model`, from its production version's archive metadata: its first
    `twinserve.samples` entry if it has any, else its first golden input as JSON."""
    version = read_deployments(stack)[read_production(stack, model)][model]
    _, meta = archive_for(stack, model, version)
    for sample in (meta.get("twinserve") or {}).get("samples") or []:
        if isinstance(sample, dict) and "json" in sample:
            return json.dumps(sample["json"]).encode(), JSON
        if isinstance(sample, dict) and "base64" in sample and "content_type" in sample:
            return base64.b64decode(sample["base64"]), sample["content_type"]
    return json.dumps({"data": meta["golden_set"][0]["data"]}).encode(), JSON


def _colours(stack: Stack, models) -> dict[str, tuple[str, str | None]]:
    """{model: (state file's colour, Nginx's)}."""
    return {m: (read_production(stack, m), nginx.get_production(stack, m)) for m in models}


def swaps_under_load(
    stack: Stack,
    swaps: int,
    deploy_source: Path | None = None,
    connections: int = 50,
    pause_s: float = 0.5,
    model: str | None = None,
    bodies: dict[str, tuple[bytes, str]] | None = None,
) -> SwapCheck:
    """Swap `model` (default: the default model) `swaps` times, and deploy once half-way, while wrk
    loads every model's production route (`connections` shared among them); return wrk's reports.

    Args:
        bodies: {model: (body, content type)} to load each model with (default: load_body).
    """
    model = stack.model(model)
    others = [m for m in stack.models if m != model]
    bodies = {m: (bodies or {}).get(m) or load_body(stack, m) for m in stack.models}
    before = _colours(stack, others)
    moved: list[str] = []
    share = max(2, connections // len(stack.models))
    loads = {
        m: WrkRun(f"{stack.nginx.url}{route_for(m)}", share, body=bodies[m][0], content_type=bodies[m][1])
        for m in stack.models
    }
    deployed = None
    try:
        time.sleep(pause_s)
        for i in range(swaps):
            if deploy_source is not None and i == swaps // 2:
                with exclusive(stack, "twinserve swapcheck (deploy)"):
                    deployed = deploy.deploy(stack, deploy_source, model=model)
            with exclusive(stack, f"twinserve swapcheck (swap {i + 1} of {swaps})"):
                promote.swap(stack, model)
            now = _colours(stack, others)
            moved += [f"{m}: {before[m]} -> {now[m]} after swap {i + 1}" for m in others if now[m] != before[m]]
            time.sleep(pause_s)
    finally:
        reports = {m: load.stop() for m, load in loads.items()}
    return SwapCheck(model, swaps, deployed, reports, tuple(moved))
