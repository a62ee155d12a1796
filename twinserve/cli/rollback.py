"""Return production to the previous colour, with no failed request.

Takes the stack's lock: one change at a time, with deploy, swap and the pipeline.
"""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.release import promote
    from twinserve.settings import load_stack
    from twinserve.store.state import exclusive

    stack = load_stack(args.stack)
    with exclusive(stack, "twinserve rollback"):
        print(promote.rollback(stack))
