"""Put a model version on its staging colour and smoke-test it (production is untouched).

SOURCE is an archive in the model store, a model directory (archived first at
VERSION, default: the next minor version), or a model's name (its directory;
nothing: the default model). Takes the stack's lock: one change at a time, with
swap, rollback and the pipeline.
"""

from pathlib import Path


def arguments(parser) -> None:
    what = "an archive in model_store/, a model directory or a model's name (default: the default model)"
    parser.add_argument("source", type=Path, nargs="?", help=what)
    parser.add_argument("version", nargs="?", help="version to build from a model directory (default: next minor)")


def source_of(stack, source: Path | None) -> Path:
    """A model directory or archive; a model's name (or nothing: the default model) is its directory."""
    if source is None:
        return stack.models[stack.default].dir
    if not source.exists() and str(source) in stack.models:
        return stack.models[str(source)].dir
    return source


def run(args) -> None:
    from twinserve.release import deploy
    from twinserve.settings import load_stack
    from twinserve.store.state import exclusive

    stack = load_stack(args.stack)
    with exclusive(stack, "twinserve deploy"):
        print(deploy.deploy(stack, source_of(stack, args.source), args.version))
