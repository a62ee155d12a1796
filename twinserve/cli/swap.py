"""Promote a model's staging colour to production: Nginx's switch flips with no failed request.

MODEL is a model of the stack (default: its default model); the other models keep their colours.

Takes the stack's lock: one change at a time, with deploy, rollback and the pipeline.
"""


def arguments(parser) -> None:
    parser.add_argument("model", nargs="?", help="a model of the stack (default: the stack's default model)")


def run(args) -> None:
    from twinserve.release import promote
    from twinserve.settings import load_stack
    from twinserve.store.state import exclusive

    stack = load_stack(args.stack)
    with exclusive(stack, "twinserve swap"):
        print(promote.swap(stack, args.model))
