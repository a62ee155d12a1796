"""python -m twinserve.kube render | validate

render     write deploy/kubernetes/base/ from config/stack.kube.yaml (a unit test fails while it is stale)
validate   the base current, then each overlay rendered by kubectl kustomize and every object checked by
           kubernetes-validate --strict (offline, bundled schemas): `make k8s-validate`, also in CI

One line per step; a failure is one line on stderr and exit 1 (2: bad configuration).
"""

import sys

from twinserve.errors import TwinserveError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["render"], ["validate"]):
        print("usage: python -m twinserve.kube render | validate", file=sys.stderr)
        return 2
    from twinserve.kube import render, validate

    try:
        if argv == ["render"]:
            print(render.write_rendered())
        else:
            for line in validate.validate_all():
                print(line)
    except TwinserveError as exc:
        print(f"twinserve.kube {argv[0]}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
