"""Put a model version on the staging colour and smoke-test it (production is untouched).

SOURCE is an archive in the model store, or a model directory, which is
archived first at VERSION (default: the next minor version). Takes the stack's
lock: one change at a time, with swap, rollback and the pipeline.
"""

from pathlib import Path


def arguments(parser) -> None:
    parser.add_argument("source", type=Path, help="an archive in model_store/ or a model directory")
    parser.add_argument("version", nargs="?", help="version to build from a model directory (default: next minor)")


def run(args) -> None:
    from twinserve.release import deploy
    from twinserve.settings import load_stack
    from twinserve.store.state import exclusive

    stack = load_stack(args.stack)
    with exclusive(stack, "twinserve deploy"):
        print(deploy.deploy(stack, args.source, args.version))
