"""twinserve/doorway.py: the pure function scripts/*.sh run, natively and in compose mode."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.checkout import REPO_ROOT
from twinserve import doorway
from twinserve.compose.configs import COMPOSE_FILE

SCRIPTS = {"swap_deploy.sh": "swap", "rollback.sh": "rollback", "which_is_production.sh": "which",
           "deploy_model.sh": "deploy"}  # fmt: skip


ROOT = Path("/repo")


def test_native_mode_runs_the_venv_cli_as_before():
    assert doorway.command("swap", [], "native", ROOT) == ["/repo/.venv/bin/python", "-m", "twinserve", "swap"]
    assert doorway.command("deploy", ["m", "1.1"], "native", ROOT)[-3:] == ["deploy", "m", "1.1"]


def test_compose_mode_runs_the_same_verb_in_a_one_off_control_container():
    assert doorway.command("rollback", [], "compose", ROOT) == [
        "docker-compose", "-f", "/repo/docker-compose.yml", "run", "--rm", "-T", "control",
        "python", "-m", "twinserve", "rollback",
    ]  # fmt: skip


def test_the_pipeline_is_a_verb_like_the_others_in_either_mode():
    assert doorway.command("pipeline", ["run", "--approve"], "native", ROOT) == [
        "/repo/.venv/bin/python", "-m", "twinserve", "pipeline", "run", "--approve",
    ]  # fmt: skip
    assert doorway.command("pipeline", ["show"], "compose", ROOT)[-6:] == [
        "control", "python", "-m", "twinserve", "pipeline", "show",
    ]  # fmt: skip
    assert "@python3 -I twinserve/doorway.py pipeline run --model-dir" in (REPO_ROOT / "Makefile").read_text()


def test_the_control_service_exists_and_the_compose_file_is_the_root_one():
    assert doorway.ROOT == REPO_ROOT
    services = yaml.safe_load((REPO_ROOT / COMPOSE_FILE).read_text())["services"]
    assert doorway.CONTROL_SERVICE in services
    assert doorway.command("which", [], "compose")[2] == str(REPO_ROOT / COMPOSE_FILE)


def test_every_cli_verb_the_doorway_passes_exists():
    from twinserve.cli import VERBS

    assert {*SCRIPTS.values(), "pipeline"} <= set(VERBS)


def test_compose_deploy_paths_become_repository_relative(tmp_path):
    root = tmp_path / "repo"
    (root / "models" / "regressor").mkdir(parents=True)
    (root / "model_store").mkdir()
    (root / "model_store" / "regressor-1.1.mar").write_bytes(b"")
    cwd = root / "models"
    assert doorway.command("deploy", ["regressor", "1.2"], "compose", root, cwd)[-2:] == ["models/regressor", "1.2"]
    archive = str(root / "model_store" / "regressor-1.1.mar")
    assert doorway.command("deploy", [archive], "compose", root, cwd)[-1] == "model_store/regressor-1.1.mar"
    # Outside the repository or missing: passed as given, and the control plane says what is wrong.
    assert doorway.command("deploy", ["/elsewhere/x.mar"], "compose", root, cwd)[-1] == "/elsewhere/x.mar"
    assert doorway.command("deploy", ["nothing-here"], "compose", root, cwd)[-1] == "nothing-here"
    # Only the verbs that take a path are rewritten.
    assert doorway.command("which", ["regressor"], "compose", root, cwd)[-1] == "regressor"


def test_an_unknown_mode_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("TWINSERVE_MODE", "kubernetes")
    assert doorway.main(["swap"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TWINSERVE_MODE='kubernetes'" in err and "native, compose" in err
    with pytest.raises(ValueError):
        doorway.command("swap", [], "", ROOT)


def test_no_verb_is_one_line_in_the_cli_s_format_and_exit_2(capsys):
    assert doorway.main([]) == 2
    assert capsys.readouterr().err == "twinserve: error: expected a verb (see `twinserve --help`)\n"


def test_the_doorway_needs_only_the_standard_library():
    source = (REPO_ROOT / "twinserve" / "doorway.py").read_text()
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    assert imported <= set(sys.stdlib_module_names), imported
