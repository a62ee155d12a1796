"""`twinserve render-kube` and `twinserve k8s-validate`: one line per step; a failure is one line on stderr, exit 1."""

import subprocess
import sys

from tests.checkout import REPO_ROOT
from tests.unit.kube_project import project_copy
from twinserve.cli import main
from twinserve.kube.render import BASE_DIR


def test_the_kube_verbs_take_no_arguments(capsys):
    assert main(["render-kube", "apply"]) == 2 and main(["k8s-validate", "--apply"]) == 2
    assert capsys.readouterr().err.count("error: unrecognized arguments") == 2


def test_render_in_a_project_rewrites_what_is_stale_then_nothing(tmp_path, monkeypatch, capsys):
    project = project_copy(tmp_path)
    (project / BASE_DIR / "storage.yaml").unlink()
    monkeypatch.setenv("TWINSERVE_HOME", str(project))
    assert main(["render-kube"]) == 0
    assert capsys.readouterr().out == f"{project / BASE_DIR}: rewrote storage.yaml\n"
    assert (project / BASE_DIR / "storage.yaml").read_text() == (REPO_ROOT / BASE_DIR / "storage.yaml").read_text()
    assert main(["render-kube"]) == 0 and capsys.readouterr().out.endswith("up to date\n")


def test_a_failed_validation_is_one_line_and_exit_1(tmp_path):
    project = project_copy(tmp_path)
    (project / BASE_DIR / "edge.yaml").write_text("stale\n")
    env = {"TWINSERVE_HOME": str(project), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "twinserve", "k8s-validate"], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=env)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"twinserve k8s-validate: error: {BASE_DIR} is stale (edge.yaml): run `twinserve render-kube`"
    ]
