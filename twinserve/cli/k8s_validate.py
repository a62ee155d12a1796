"""Validate the Kubernetes manifests offline: the base current, each overlay built by kubectl kustomize.

Every object of each overlay is checked by kubernetes-validate --strict against the bundled schemas
of one Kubernetes version (no API server runs here): `make k8s-validate`, also in CI. One line per step.
"""


def arguments(parser) -> None:
    pass


def run(args) -> None:
    from twinserve.kube import validate

    for line in validate.validate_all():
        print(line)
