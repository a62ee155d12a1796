"""Render the compose stack's Nginx, Prometheus and Alertmanager files into compose/rendered/.

From config/stack.compose.yaml; a unit test fails when the committed files are stale.
"""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.compose import configs

    print(configs.write_rendered())
