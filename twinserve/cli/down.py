"""Stop everything `twinserve up` started, the supervisor first, and what a crashed process left."""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.runtime import stack
    from twinserve.settings import load_stack

    stopped = stack.down(load_stack(args.stack))
    print(f"stopped: {', '.join(stopped) or 'nothing (was not running)'}")
