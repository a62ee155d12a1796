"""twinserve/state.py: which colour is production, kept in a file that is replaced atomically."""

import copy
import os

import pytest
import yaml

from twinserve import state
from twinserve.errors import ConfigError, PreflightError
from twinserve.settings import DEFAULT_STACK, load_stack, parse_stack

RAW = yaml.safe_load(DEFAULT_STACK.read_text())


@pytest.fixture
def stack_file(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def stack(stack_file):
    return load_stack(stack_file)


def test_a_new_install_serves_the_first_colour(stack):
    assert not state.production_file(stack).exists()
    assert state.read_production(stack) == "blue"


def test_the_first_colour_is_whichever_the_stack_lists_first(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["colours"] = dict(reversed(raw["colours"].items()))
    raw["state_dir"] = str(tmp_path)
    assert state.read_production(parse_stack(raw, tmp_path / "s.yaml")) == "green"


def test_write_then_read(stack):
    state.write_production(stack, "green")
    assert state.production_file(stack).read_text() == "green\n"
    assert state.read_production(stack) == "green"
    state.write_production(stack, "blue")
    assert state.read_production(stack) == "blue"


def test_production_survives_a_reload_of_the_stack(stack_file):
    """As after make down && make up: a new process, a new Stack, the same file."""
    state.write_production(load_stack(stack_file), "green")
    assert state.read_production(load_stack(stack_file)) == "green"


@pytest.mark.parametrize("colour", ["red", "", "Green", "green\n", "blue green"])
def test_an_unknown_colour_is_refused_and_nothing_changes(stack, colour):
    state.write_production(stack, "green")
    with pytest.raises(ConfigError, match="unknown colour"):
        state.write_production(stack, colour)
    assert state.production_file(stack).read_text() == "green\n"


def test_an_unknown_colour_in_the_file_is_an_error_not_a_default(stack):
    """Silently serving the first colour could flip production back after someone edits the file."""
    state.production_file(stack).parent.mkdir(parents=True)
    state.production_file(stack).write_text("purple\n")
    with pytest.raises(ConfigError, match="says 'purple'; expected one of"):
        state.read_production(stack)


def test_surrounding_whitespace_in_the_file_is_ignored(stack):
    state.production_file(stack).parent.mkdir(parents=True)
    state.production_file(stack).write_text("  green \n\n")
    assert state.read_production(stack) == "green"


def test_the_write_leaves_no_temporary_file(stack):
    for colour in ("green", "blue", "green"):
        state.write_production(stack, colour)
    assert [p.name for p in state.production_file(stack).parent.iterdir()] == ["production"]


def test_a_failed_write_keeps_the_old_file_whole(stack, monkeypatch):
    """The rename is the commit point: if anything fails before it, readers still see the old colour."""
    state.write_production(stack, "green")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        state.write_production(stack, "blue")
    monkeypatch.undo()
    assert state.read_production(stack) == "green"
    assert [p.name for p in state.production_file(stack).parent.iterdir()] == ["production"]


def test_the_file_is_replaced_not_rewritten_in_place(stack):
    """A reader holding the old file open still reads a whole old value, never a mix."""
    state.write_production(stack, "green")
    with state.production_file(stack).open() as old:
        state.write_production(stack, "blue")
        assert old.read() == "green\n"
    assert state.read_production(stack) == "blue"


def test_deployments_start_with_the_stack_versions(stack):
    assert state.read_deployments(stack) == {"blue": {"regressor": "1.0"}, "green": {"regressor": "1.0"}}


def test_a_deployment_is_recorded_for_one_colour_only(stack_file):
    state.record_deployment(load_stack(stack_file), "green", "regressor", "1.1")
    assert state.read_deployments(load_stack(stack_file)) == {
        "blue": {"regressor": "1.0"},
        "green": {"regressor": "1.1"},
    }


def test_one_change_at_a_time_and_the_second_says_who_holds_it(stack):
    held = r"twinserve swap \(pid \d+\) is changing the stack"
    with (
        state.exclusive(stack, "twinserve swap"),
        pytest.raises(PreflightError, match=held),
        state.exclusive(stack, "twinserve deploy"),
    ):
        pass
    with state.exclusive(stack, "twinserve deploy"):  # released: the next one goes
        pass


def test_a_locked_stack_refuses_the_cli_with_one_line(stack_file, capsys):
    from twinserve.cli import main

    with state.exclusive(load_stack(stack_file), "pipeline run r1"):
        assert main(["--stack", str(stack_file), "swap"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("twinserve swap: error: pipeline run r1 (pid ") and "\n" not in err
