"""Render deploy/kubernetes/base/ from config/stack.kube.yaml (a unit test fails while it is stale).

One line: what was rewritten, or that the base is up to date.
"""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.kube import render

    print(render.write_rendered())
