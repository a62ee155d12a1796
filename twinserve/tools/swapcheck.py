"""Zero failed requests during promotion, measured.

Keeps wrk's keep-alive load on /predict while it swaps production back and
forth and deploys a new version to staging, then reports wrk's figures. The
integration tests run a short version on every CI run; `twinserve swapcheck`
(make swapcheck) prints the full one (20 swaps).

Each deploy and each swap takes the stack's lock (store.state.exclusive), as
`twinserve deploy` and `twinserve swap` do: a pipeline or an operator changing
the stack meanwhile is refused, or refuses the check, instead of racing it.
The lock is taken per change, not for the whole run, so the load keeps going
between changes exactly as between two operators' commands.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from twinserve.release import deploy, promote
from twinserve.settings import Stack
from twinserve.store.state import exclusive
from twinserve.tools.wrk import WrkReport, WrkRun


@dataclass(frozen=True)
class SwapCheck:
    swaps: int
    deployed: str | None
    report: WrkReport


def swaps_under_load(
    stack: Stack, swaps: int, deploy_source: Path | None = None, connections: int = 50, pause_s: float = 0.5
) -> SwapCheck:
    """Swap `swaps` times (and deploy once, half-way) under load; return wrk's report."""
    load = WrkRun(f"{stack.nginx.url}/predict", connections)
    deployed = None
    try:
        time.sleep(pause_s)
        for i in range(swaps):
            if deploy_source is not None and i == swaps // 2:
                with exclusive(stack, "twinserve swapcheck (deploy)"):
                    deployed = deploy.deploy(stack, deploy_source)
            with exclusive(stack, f"twinserve swapcheck (swap {i + 1} of {swaps})"):
                promote.swap(stack)
            time.sleep(pause_s)
    finally:
        report = load.stop()
    return SwapCheck(swaps, deployed, report)
