"""Print which colour is a model's production: `production is BLUE` (--all: one line per model).

Exits 2 with --all when a model has no valid production colour (its line says why).
"""


def arguments(parser) -> None:
    parser.add_argument("model", nargs="?", help="a model of the stack (default: the stack's default model)")
    parser.add_argument("--all", action="store_true", help="one line per model")


def run(args) -> None:
    from twinserve.errors import ConfigError
    from twinserve.release import promote
    from twinserve.settings import load_stack

    stack = load_stack(args.stack)
    if not args.all:
        print(promote.which(stack, args.model))
        return
    lines, ok = promote.which_all(stack)
    print("\n".join(lines))
    if not ok:
        raise ConfigError("a model has no valid production colour (its line says why)")
