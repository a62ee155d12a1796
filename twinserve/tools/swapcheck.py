"""Zero failed requests during promotion, measured.

Keeps wrk's keep-alive load on /predict while it swaps production back and
forth and deploys a new version to staging, then reports wrk's figures. The
integration tests run a short version on every CI run; `make swapcheck`
prints the full one (20 swaps).
"""

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from twinserve.release import deploy, promote
from twinserve.settings import Stack, load_stack
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
                deployed = deploy.deploy(stack, deploy_source)
            promote.swap(stack)
            time.sleep(pause_s)
    finally:
        report = load.stop()
    return SwapCheck(swaps, deployed, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--deploy", type=Path, help="a model dir or archive to deploy to staging half-way")
    args = parser.parse_args(argv)
    stack = load_stack()
    result = swaps_under_load(stack, args.swaps, args.deploy, args.connections)
    r = result.report
    print(f"swaps: {result.swaps}   deploy: {result.deployed or 'none'}")
    print(f"wrk -t2 -c{args.connections} keep-alive on /predict: {r.requests} requests in {r.seconds:.1f}s")
    print(f"socket errors: {r.socket_errors}   non-2xx: {r.non_2xx}   p50 {r.p50_ms:.1f} ms   p99 {r.p99_ms:.1f} ms")
    print(promote.which(stack))
    return 0 if r.socket_errors == 0 and r.non_2xx == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
