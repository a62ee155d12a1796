"""Swap production back and forth (and deploy once) under wrk's keep-alive load; any failed request exits 1.

Needs the stack running (`twinserve up`) and wrk. Each deploy and swap takes the
stack's lock, as `twinserve deploy` and `twinserve swap` do.
"""

from pathlib import Path


def arguments(parser) -> None:
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--deploy", type=Path, help="a model dir or archive to deploy to staging half-way")


def run(args) -> None:
    from twinserve.errors import CheckFailed
    from twinserve.release import promote
    from twinserve.settings import load_stack
    from twinserve.tools.swapcheck import swaps_under_load

    stack = load_stack(args.stack)
    result = swaps_under_load(stack, args.swaps, args.deploy, args.connections)
    r = result.report
    print(f"swaps: {result.swaps}   deploy: {result.deployed or 'none'}")
    print(f"wrk -t2 -c{args.connections} keep-alive on /predict: {r.requests} requests in {r.seconds:.1f}s")
    print(f"socket errors: {r.socket_errors}   non-2xx: {r.non_2xx}   p50 {r.p50_ms:.1f} ms   p99 {r.p99_ms:.1f} ms")
    print(promote.which(stack))
    if r.socket_errors or r.non_2xx:
        raise CheckFailed(f"{r.socket_errors} socket errors and {r.non_2xx} non-2xx answers during the swaps")
