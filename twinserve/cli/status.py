"""Show the stack's processes (running, crashed, restarts), the production colour and the deployed versions."""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.runtime import stack
    from twinserve.settings import load_stack

    print("\n".join(stack.status(load_stack(args.stack))))
