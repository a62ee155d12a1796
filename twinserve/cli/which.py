"""Print which colour is production: `production is BLUE` or `production is GREEN`."""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.release import promote
    from twinserve.settings import load_stack

    print(promote.which(load_stack(args.stack)))
