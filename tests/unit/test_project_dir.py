"""settings.project_dir: where twinserve finds its templates, rules, Lua, handlers and models.

The rule: $TWINSERVE_HOME if set, else the current directory; either must hold config/stack.yaml.
Never the installed package's own folder (tests/unit/test_wheel.py checks an installed wheel).
"""

import subprocess
import sys

import pytest

from tests.checkout import REPO_ROOT
from twinserve.errors import ConfigError
from twinserve.runtime.render import render_nginx
from twinserve.settings import STACK_FILE, load_stack, project_dir


def a_project(root):
    (root / "config").mkdir(parents=True)
    (root / STACK_FILE).write_text((REPO_ROOT / STACK_FILE).read_text())
    return root


def test_the_current_directory_when_no_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TWINSERVE_HOME", raising=False)
    monkeypatch.chdir(a_project(tmp_path))
    assert project_dir() == tmp_path.resolve()


def test_the_variable_wins_over_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(a_project(tmp_path / "here"))
    monkeypatch.setenv("TWINSERVE_HOME", str(a_project(tmp_path / "there")))
    assert project_dir() == (tmp_path / "there").resolve()


def test_no_project_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TWINSERVE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        project_dir()
    message = str(raised.value)
    assert "\n" not in message and "TWINSERVE_HOME" in message and str(tmp_path) in message


def test_a_variable_naming_no_project_is_refused_not_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # a project here: the variable must still not fall back to it
    monkeypatch.setenv("TWINSERVE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=rf"TWINSERVE_HOME={tmp_path} holds no config/stack.yaml"):
        project_dir()


def test_relative_paths_and_templates_come_from_the_project(tmp_path, monkeypatch):
    """A stack loaded for another project directory resolves var/ there and renders that project's template."""
    project = a_project(tmp_path / "project")
    (project / "nginx").mkdir()
    (project / "nginx" / "nginx.conf.j2").write_text("# the other project's template, port {{ nginx.port }}\n")
    monkeypatch.setenv("TWINSERVE_HOME", str(project))
    monkeypatch.delenv("TWINSERVE_STACK", raising=False)
    stack = load_stack()
    assert stack.project == project.resolve() and stack.var_dir == project.resolve() / "var"
    assert render_nginx(stack) == f"# the other project's template, port {stack.nginx.port}\n"


def test_a_command_outside_any_project_says_so_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "twinserve", "which"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "TWINSERVE_HOME" in result.stderr, result.stderr
