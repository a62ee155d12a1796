"""scripts/*.sh: thin doorways through the shell, natively and in compose mode (no server)."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve.compose.configs import COMPOSE_FILE
from twinserve.settings import parse_stack
from twinserve.store.state import write_production

SCRIPTS = {"swap_deploy.sh": "swap", "rollback.sh": "rollback", "which_is_production.sh": "which",
           "deploy_model.sh": "deploy"}  # fmt: skip


@pytest.mark.parametrize("script,verb", sorted(SCRIPTS.items()))
def test_each_script_only_hands_its_verb_to_the_doorway(script, verb):
    text = (REPO_ROOT / "scripts" / script).read_text()
    code = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert code[0] == "set -euo pipefail"
    assert code[-1] == f'exec python3 -I "$root/twinserve/doorway.py" {verb} "$@"'
    assert len(code) == 3 and os.access(REPO_ROOT / "scripts" / script, os.X_OK)


@pytest.fixture
def offline_stack(tmp_path):
    """A native stack on ports nothing listens on, with green as production."""
    raw = yaml.safe_load(DEFAULT_STACK.read_text())
    for colour in raw["colours"].values():
        for key in colour:
            colour[key] += 31000
    raw["nginx"]["port"], raw["nginx"]["admin_port"] = 39080, 39079
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw))
    write_production(parse_stack(raw, path), "green")
    return path


def run_script(script, env, *args):
    return subprocess.run([str(REPO_ROOT / "scripts" / script), *args], env=env, capture_output=True, text=True)


def test_native_which_through_the_shell_reads_the_state(offline_stack):
    env = {**os.environ, "TWINSERVE_STACK": str(offline_stack)}
    env.pop("TWINSERVE_MODE", None)
    result = run_script("which_is_production.sh", env)
    assert (result.returncode, result.stdout) == (0, "production is GREEN\n"), result.stderr


def test_native_scripts_name_their_checkout_as_the_project(offline_stack, tmp_path):
    """From another directory, without TWINSERVE_HOME: the doorway names its checkout (settings.project_dir)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TWINSERVE_HOME", "TWINSERVE_MODE")}
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "which_is_production.sh")],
        cwd=tmp_path, env={**env, "TWINSERVE_STACK": str(offline_stack)}, capture_output=True, text=True,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "production is GREEN\n"), result.stderr


def test_compose_mode_through_the_shell_runs_docker_compose(tmp_path):
    """A stand-in docker-compose on PATH records what the script runs (no engine here)."""
    fake = tmp_path / "bin" / "docker-compose"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\nexit 3\n')
    fake.chmod(0o755)
    record = tmp_path / "argv"
    env = {
        **os.environ,
        "TWINSERVE_MODE": "compose",
        "RECORD": str(record),
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
    }
    result = run_script("deploy_model.sh", env, str(REPO_ROOT / "models" / "regressor"), "1.4")
    assert result.returncode == 3, "the script exits with docker-compose's status"
    assert record.read_text().splitlines() == [
        "-f", str(REPO_ROOT / COMPOSE_FILE), "run", "--rm", "-T", "control", "python", "-m", "twinserve", "deploy",
        "models/regressor", "1.4",
    ]  # fmt: skip


def test_compose_mode_without_docker_compose_says_so(tmp_path):
    """A PATH with only what the script needs besides docker-compose."""
    for tool in ("python3", "dirname"):
        (tmp_path / tool).symlink_to(os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool))
    env = {**os.environ, "TWINSERVE_MODE": "compose", "PATH": str(tmp_path)}
    script = str(REPO_ROOT / "scripts" / "swap_deploy.sh")
    result = subprocess.run([shutil.which("bash"), script], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "twinserve swap: error: cannot run docker-compose: No such file or directory"
