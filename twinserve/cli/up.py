"""Start the native stack: whatever part is not running, then its supervisor (builds missing archives).

Prints what it started, the stack's URLs and the production colour.
"""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.release import promote
    from twinserve.runtime import stack
    from twinserve.settings import load_stack

    s = load_stack(args.stack)
    started = stack.up(s)
    print(f"started: {', '.join(started) or 'nothing (already running)'}")
    print("\n".join(stack.urls(s)))
    print(promote.which(s))
