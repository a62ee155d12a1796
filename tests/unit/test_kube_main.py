"""python -m twinserve.kube: one line per step; a failure is one line on stderr and a non-zero exit."""

import subprocess
import sys

from tests.checkout import REPO_ROOT
from tests.unit.kube_project import project_copy
from twinserve.kube.__main__ import main
from twinserve.kube.render import BASE_DIR


def test_anything_but_render_or_validate_is_a_usage_error(capsys):
    assert main(["apply"]) == 2 and main([]) == 2
    assert capsys.readouterr().err.count("usage: python -m twinserve.kube render | validate") == 2


def test_render_in_a_project_rewrites_what_is_stale_then_nothing(tmp_path, monkeypatch, capsys):
    project = project_copy(tmp_path)
    (project / BASE_DIR / "storage.yaml").unlink()
    monkeypatch.setenv("TWINSERVE_HOME", str(project))
    assert main(["render"]) == 0
    assert capsys.readouterr().out == f"{project / BASE_DIR}: rewrote storage.yaml\n"
    assert (project / BASE_DIR / "storage.yaml").read_text() == (REPO_ROOT / BASE_DIR / "storage.yaml").read_text()
    assert main(["render"]) == 0 and capsys.readouterr().out.endswith("up to date\n")


def test_a_failed_validation_is_one_line_and_exit_1(tmp_path):
    project = project_copy(tmp_path)
    (project / BASE_DIR / "edge.yaml").write_text("stale\n")
    env = {"TWINSERVE_HOME": str(project), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "twinserve.kube", "validate"], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=env)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"twinserve.kube validate: error: {BASE_DIR} is stale (edge.yaml): run `python -m twinserve.kube render`"
    ]
