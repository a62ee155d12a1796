"""Swap one model back and forth (and deploy it once) under wrk's load on every model; a failure exits 1.

Needs the stack running (`twinserve up`) and wrk. A failed request on any model's
route, or another model's colour moving, fails the check. Each deploy and swap
takes the stack's lock, as `twinserve deploy` and `twinserve swap` do.
"""

from pathlib import Path


def arguments(parser) -> None:
    parser.add_argument("--model", help="the model to swap (default: the stack's default model)")
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50, help="shared among the models' routes")
    what = "a model dir or archive of the model (alone: the model's dir), deployed to staging half-way"
    parser.add_argument("--deploy", type=Path, nargs="?", const=Path(), help=what)


def run(args) -> None:
    from twinserve.errors import CheckFailed
    from twinserve.release import promote
    from twinserve.routes import route_for
    from twinserve.settings import load_stack
    from twinserve.tools.swapcheck import swaps_under_load

    stack = load_stack(args.stack)
    model = stack.model(args.model)
    if args.deploy == Path():
        args.deploy = stack.models[model].dir
    result = swaps_under_load(stack, args.swaps, args.deploy, args.connections, model=model)
    print(f"{model}: swaps: {result.swaps}   deploy: {result.deployed or 'none'}")
    for name, r in result.reports.items():
        print(f"wrk keep-alive on {route_for(name)}: {r.requests} requests in {r.seconds:.1f}s; "
              f"socket errors: {r.socket_errors}   non-2xx: {r.non_2xx}   "
              f"p50 {r.p50_ms:.1f} ms   p99 {r.p99_ms:.1f} ms")  # fmt: skip
    print("other models' colours: " + ("; ".join(result.others_moved) or "unchanged"))
    print("\n".join(promote.which_all(stack)[0]))
    if result.failed:
        raise CheckFailed("failed requests during the swaps, or another model's colour moved (above)")
