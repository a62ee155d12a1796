"""`make k8s-validate` passes on the checkout, and fails, naming the problem, on each way to break it:
a stale base, a kustomization kustomize cannot build, a field the schema does not know (strict), a
value of the wrong type, and a kind with no schema (which kubernetes-validate alone lets pass)."""

import subprocess
import sys
import time

import pytest

from tests.checkout import REPO_ROOT
from tests.unit.kube_project import project_copy
from twinserve.errors import CheckFailed
from twinserve.kube.render import BASE_DIR
from twinserve.kube.validate import KUBERNETES_VERSION, OVERLAYS_DIR, schema_check, tool, validate_all


def test_the_checkout_validates_offline_and_fast():
    start = time.monotonic()
    lines = validate_all(REPO_ROOT)
    assert time.monotonic() - start < 60, "CI runs this on every push: it must stay well under a minute"
    assert lines[0] == f"{BASE_DIR}: current with config/stack.kube.yaml"
    checked = [line for line in lines[1:] if f"valid for Kubernetes {KUBERNETES_VERSION} (strict)" in line]
    overlays = sorted(p.name for p in (REPO_ROOT / OVERLAYS_DIR).iterdir())
    assert len(checked) == 1 + len(overlays) and all(int(line.split(": ")[1].split()[0]) > 30 for line in checked)


def test_the_validator_bundles_the_version_it_checks_against():
    out = subprocess.run([tool("kubernetes-validate"), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(KUBERNETES_VERSION.rsplit(".", 1)[0])


@pytest.fixture
def project(tmp_path):
    return project_copy(tmp_path)


def overlay(project, name: str, text: str):
    d = project / OVERLAYS_DIR / name
    d.mkdir()
    (d / "kustomization.yaml").write_text(text)


def test_a_stale_base_fails_naming_the_file_and_the_fix(project):
    edge = project / BASE_DIR / "edge.yaml"
    edge.write_text(edge.read_text().replace("keepalive_time 10s", "keepalive_time 99s"))
    with pytest.raises(CheckFailed, match=r"base is stale \(edge.yaml\): run `twinserve render-kube`"):
        validate_all(project)


def test_an_overlay_kustomize_cannot_build_fails(project):
    overlay(project, "broken", "resources: [../../base, ../missing]\n")
    with pytest.raises(CheckFailed, match="kubectl kustomize .*broken"):
        validate_all(project)


PATCH = """resources: [../../base]
patches:
  - target: {{kind: Deployment, name: edge}}
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/{field}
        value: {value}
"""


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("readinesProbe", "{tcpSocket: {port: http}}", "'readinesProbe' was unexpected"),  # a typo: strict
        ("ports", "http", "'http' is not of type 'array'"),
        ("lifecycle", "{preStop: {sleep: {seconds: soon}}}", "'soon' is not of type 'integer'"),
    ],
)
def test_an_object_the_schema_refuses_fails_naming_object_and_field(project, field, value, says):
    overlay(project, "bad", PATCH.format(field=field, value=value))
    with pytest.raises(CheckFailed, match=rf"overlays/bad: 1 problem\(s\): ERROR .*deployment/edge.*{says}"):
        validate_all(project)


def test_a_kind_without_a_schema_fails_where_kubernetes_validate_only_warns(project, tmp_path):
    scaled = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: torchserve-blue}\nspec: {}\n"
    alone = tmp_path / "scaled.yaml"
    alone.write_text(scaled)
    cli = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", str(alone)], capture_output=True, text=True
    )
    assert cli.returncode == 0 and cli.stdout.startswith("WARN"), "the tool alone lets it through"
    with pytest.raises(CheckFailed, match="Couldn't find schema for kind ScaledObject"):
        schema_check(scaled, "scaled")


def test_an_empty_build_fails():
    with pytest.raises(CheckFailed, match="empty: no objects"):
        schema_check("---\n", "empty")


def test_make_k8s_validate_runs_this_module():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "\nk8s-validate: install" in makefile and "\t@$(PY) -m twinserve k8s-validate\n" in makefile
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index("make k8s-validate") == ci.index("make lint") + 1


def test_a_missing_tool_says_how_to_install_it(monkeypatch, tmp_path):
    from twinserve.errors import ConfigError

    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ConfigError, match="kubectl not found: `make install` installs it"):
        tool("kubectl")
