"""settings.project_dir: where twinserve finds its templates, rules, Lua, handlers and models.

The rule: $TWINSERVE_HOME if set, else the current directory; either must hold config/stack.yaml.
Never the installed package's own folder (tests/unit/test_wheel.py checks an installed wheel).
"""

import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.checkout import REPO_ROOT
from twinserve.errors import ConfigError
from twinserve.runtime import processes
from twinserve.runtime.render import render_nginx
from twinserve.settings import STACK_FILE, load_stack, parse_stack, project_dir
from twinserve.store.state import write_production


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


def test_the_checkouts_scripts_work_from_any_directory(tmp_path):
    """scripts/*.sh (twinserve/doorway.py) name their checkout as the project: no TWINSERVE_HOME, another cwd."""
    raw = yaml.safe_load((REPO_ROOT / STACK_FILE).read_text())
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw))
    write_production(parse_stack(raw, path, root=REPO_ROOT), "green")
    env = {k: v for k, v in os.environ.items() if k not in ("TWINSERVE_HOME", "TWINSERVE_MODE")}
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "which_is_production.sh")],
        cwd=tmp_path, env={**env, "TWINSERVE_STACK": str(path)}, capture_output=True, text=True,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "production is GREEN\n"), result.stderr


def test_a_process_the_stack_starts_elsewhere_knows_the_project(tmp_path, monkeypatch):
    """The supervisor, exporters and consumer start in var/: TWINSERVE_HOME in their environment names the project."""
    monkeypatch.delenv("TWINSERVE_HOME", raising=False)
    raw = yaml.safe_load((REPO_ROOT / STACK_FILE).read_text())
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    stack = parse_stack(raw, tmp_path / "stack.yaml", root=REPO_ROOT)
    log = tmp_path / "child.log"
    argv = [sys.executable, "-c", "from twinserve.settings import project_dir; print(project_dir())"]
    processes.start(stack, "child", argv, tmp_path, {"PYTHONPATH": str(REPO_ROOT)}, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.is_file() and log.read_text().strip()):
        time.sleep(0.1)
    processes.stop(stack, "child")
    assert log.read_text().strip() == str(REPO_ROOT)
