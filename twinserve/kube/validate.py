"""`make k8s-validate`: the manifests as a cluster would receive them, checked with no cluster.

No API server runs here, so nothing is applied. What can be checked offline is: the committed base
is what config/stack.kube.yaml renders; kustomize builds each overlay (kubectl's own kustomize, as
`kubectl apply -k` would); and every object it emits validates against the OpenAPI schema of a
current Kubernetes release, strictly (an unknown field is an error: a typo is not silently dropped).

kubernetes-validate only warns, and exits 0, for a kind it has no schema for (a CRD such as KEDA's
ScaledObject); here that is a failure, so every object shipped is one whose schema was checked.
What schemas cannot check (selectors, probe ports, the HPA's target) is in tests/unit/test_kube_render.py.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from twinserve.errors import CheckFailed, ConfigError
from twinserve.kube.render import BASE_DIR, load, rendered

KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37 bundles (pyproject.toml's pin)
OVERLAYS_DIR = Path("deploy", "kubernetes", "overlays")


def tool(name: str) -> str:
    """A dev tool of this venv (pyproject.toml's dev extra): kubectl, kubernetes-validate."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise ConfigError(f"{path} not found: `make install` installs it (pyproject.toml, dev extra)")
    return str(path)


def check_current(project: Path) -> str:
    """The committed base is what the stack description renders."""
    stack, compose, kube = load(project / "config" / "stack.kube.yaml")
    base = project / BASE_DIR
    stale = sorted(n for n, text in rendered(stack, compose, kube).items()
                   if not (base / n).is_file() or (base / n).read_text() != text)  # fmt: skip
    if stale:
        raise CheckFailed(f"{BASE_DIR} is stale ({', '.join(stale)}): run `twinserve render-kube`")
    return f"{BASE_DIR}: current with config/stack.kube.yaml"


def build(directory: Path) -> str:
    """`kubectl kustomize` of a kustomization directory: the objects as one YAML stream."""
    result = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"kubectl kustomize {directory}: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def schema_check(stream: str, where: str) -> int:
    """kubernetes-validate --strict on a YAML stream; returns the number of objects. Any output of its
    --quiet mode (an ERROR, or a WARN for a kind without a schema) fails."""
    count = sum(1 for doc in yaml.safe_load_all(stream) if doc)
    if not count:
        raise CheckFailed(f"{where}: no objects")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(stream)
        f.flush()
        argv = [tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION, f.name]
        result = subprocess.run(argv, capture_output=True, text=True)
    problems = [line.replace(f.name, where) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0 or problems:
        raise CheckFailed(f"{where}: {len(problems)} problem(s): {'; '.join(problems) or result.returncode}")
    return count


def kustomizations(project: Path) -> list[Path]:
    """The base and every overlay."""
    overlays = sorted(p.parent for p in (project / OVERLAYS_DIR).glob("*/kustomization.yaml"))
    return [project / BASE_DIR, *overlays]


def validate_all(project: Path | None = None) -> list[str]:
    """Every check, in order; raises CheckFailed at the first that fails."""
    from twinserve.settings import project_dir

    project = project or project_dir()
    lines = [check_current(project)]
    for directory in kustomizations(project):
        where = str(directory.relative_to(project))
        count = schema_check(build(directory), where)
        lines.append(f"{where}: {count} objects valid for Kubernetes {KUBERNETES_VERSION} (strict)")
    return lines
