"""twinserve/store/state.py: which colour is production, kept in a file that is replaced atomically."""

import copy
import json
import os

import pytest
import yaml

from tests.checkout import DEFAULT_STACK
from twinserve.errors import ConfigError, PreflightError
from twinserve.settings import load_stack, parse_stack
from twinserve.store import state

RAW = yaml.safe_load(DEFAULT_STACK.read_text())


def test_a_new_install_gets_the_first_colour_once(stack):
    assert not state.production_file(stack).exists()
    with pytest.raises(ConfigError, match="never set up; run `make up`"):
        state.read_production(stack)
    every_model = [str(state.production_file(stack, m)) for m in stack.models]
    assert state.initialise(stack) == [*every_model, str(state.admin_token_file(stack))]
    assert state.read_production(stack) == "blue"
    assert state.read_production(stack, "digits") == "blue"
    state.write_production(stack, "green")
    assert state.initialise(stack) == []  # set up already: nothing is rewritten
    assert state.read_production(stack) == "green"


def test_the_first_colour_is_whichever_the_stack_lists_first(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["colours"] = dict(reversed(raw["colours"].items()))
    raw["state_dir"] = str(tmp_path / "state")
    stack = parse_stack(raw, tmp_path / "s.yaml")
    state.initialise(stack)
    assert state.read_production(stack) == "green"


def test_a_missing_file_in_a_stack_already_set_up_is_an_error_not_blue(stack):
    """Deployments exist, the production file is gone: guessing could flip production."""
    state.initialise(stack)
    state.record_deployment(stack, "green", "regressor", "1.1")
    state.production_file(stack).unlink()
    with pytest.raises(
        ConfigError, match=r"production.regressor is missing; write the colour .*/predict/regressor \(blue or green\)"
    ):
        state.read_production(stack)
    assert state.initialise(stack) == []  # not new: no colour is made up
    assert not state.production_file(stack).exists()


def test_a_stray_lock_does_not_make_a_new_stack_old(stack):
    with state.exclusive(stack, "twinserve swap"):
        pass
    assert state.is_new(stack)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"grn\n", "says 'grn', not a colour of this stack"),
        (b"\xff\xfe\x00", "is not UTF-8 text"),
        (b"", "says '', not a colour"),
        (b"blue\ngreen\n", "not a colour"),
        (b"x" * 100, "says 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"),
    ],
)
def test_a_corrupt_file_is_one_line_naming_the_file_and_the_fix(stack, content, message):
    state.initialise(stack)
    state.production_file(stack).write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        state.read_production(stack)
    text = str(caught.value)
    assert "\n" not in text and message in text
    assert text.startswith(str(state.production_file(stack)))
    assert text.endswith("into it, then `make up`")


def test_an_unreadable_file_is_a_config_error(stack, monkeypatch):
    state.initialise(stack)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(state.production_file(stack)), "read_bytes", denied)
    with pytest.raises(ConfigError, match="cannot be read \\(Permission denied\\)"):
        state.read_production(stack)


def test_the_admin_token_is_private_and_written_once(stack):
    state.initialise(stack)
    path = state.admin_token_file(stack)
    assert path.stat().st_mode & 0o777 == 0o600
    token = state.read_admin_token(stack)
    assert len(token) >= 40 and token.replace("-", "").replace("_", "").isalnum()
    state.initialise(stack)
    assert state.read_admin_token(stack) == token
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".admin")] == []  # no temporary left


@pytest.mark.parametrize("content", ["", "has space\n", 'quote"d'])
def test_a_bad_admin_token_is_refused(stack, content):
    state.initialise(stack)
    state.admin_token_file(stack).write_text(content)
    with pytest.raises(ConfigError, match="holds no valid token"):
        state.read_admin_token(stack)


def test_a_missing_admin_token_says_how_to_get_one(stack):
    with pytest.raises(ConfigError, match="admin-token is missing; run `make up`"):
        state.read_admin_token(stack)


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
    with pytest.raises(ConfigError, match="says 'purple', not a colour of this stack"):
        state.read_production(stack)


def test_surrounding_whitespace_in_the_file_is_ignored(stack):
    state.production_file(stack).parent.mkdir(parents=True)
    state.production_file(stack).write_text("  green \n\n")
    assert state.read_production(stack) == "green"


def test_the_write_leaves_no_temporary_file(stack):
    for colour in ("green", "blue", "green"):
        state.write_production(stack, colour)
    assert [p.name for p in state.production_file(stack).parent.iterdir()] == ["production.regressor"]
    assert state.production_file(stack).stat().st_mode & 0o777 == 0o644  # Nginx's master and the exporter read it


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
    assert [p.name for p in state.production_file(stack).parent.iterdir()] == ["production.regressor"]


def test_the_file_is_replaced_not_rewritten_in_place(stack):
    """A reader holding the old file open still reads a whole old value, never a mix."""
    state.write_production(stack, "green")
    with state.production_file(stack).open() as old:
        state.write_production(stack, "blue")
        assert old.read() == "green\n"
    assert state.read_production(stack) == "blue"


def test_deployments_start_with_the_stack_versions(stack):
    both = {"regressor": "1.0", "digits": "1.0", "sentiment": "1.0"}
    assert state.read_deployments(stack) == {"blue": both, "green": both}


def test_a_deployment_is_recorded_for_one_colour_and_model_only(stack_file):
    state.record_deployment(load_stack(stack_file), "green", "regressor", "1.1")
    assert state.read_deployments(load_stack(stack_file)) == {
        "blue": {"regressor": "1.0", "digits": "1.0", "sentiment": "1.0"},
        "green": {"regressor": "1.1", "digits": "1.0", "sentiment": "1.0"},
    }
    assert json.loads(state.deployments_file(load_stack(stack_file)).read_text()) == {"green": {"regressor": "1.1"}}


def test_each_model_has_its_own_colour(stack):
    state.initialise(stack)
    state.write_production(stack, "green", "digits")
    assert state.read_production(stack, "digits") == "green"
    assert state.read_production(stack, "regressor") == "blue"
    assert state.read_production(stack) == "blue"  # the default model
    assert state.read_productions(stack) == {"regressor": "blue", "digits": "green", "sentiment": "blue"}


def test_one_model_s_bad_file_is_that_model_s_error_only(stack):
    state.initialise(stack)
    state.production_file(stack, "digits").write_text("purple\n")
    found = state.read_productions(stack)
    assert found["regressor"] == "blue"
    assert isinstance(found["digits"], ConfigError) and "/predict/digits" in str(found["digits"])


def test_an_unknown_model_is_refused_listing_the_models(stack):
    with pytest.raises(ConfigError, match="unknown model 'nope'; this stack serves regressor, digits"):
        state.read_production(stack, "nope")
    with pytest.raises(ConfigError, match="unknown model"):
        state.write_production(stack, "green", "nope")


def files_of(stack) -> dict[str, bytes]:
    """The state dir's files and their bytes; a change's empty .lock is not state (state.is_new)."""
    return {p.name: p.read_bytes() for p in sorted(stack.state_dir.iterdir()) if not p.name.startswith(".")}


@pytest.mark.parametrize("own_file", [False, True])
def test_the_retired_single_model_file_is_refused_and_nothing_changes(stack, own_file):
    """A state dir from before several models (`production` holds the one colour): every read of a
    colour and `make up` refuse in one line saying what the file is and what to do, writing nothing."""
    state.initialise(stack)
    state.record_deployment(stack, "green", "regressor", "1.1")
    if not own_file:
        state.production_file(stack).unlink()
    state.retired_production_file(stack).write_text("green\n")
    before = files_of(stack)
    refused = (
        r"state/production is the single-model state file of an older twinserve, no longer read; "
        r"move it to .*production\.regressor"
    )
    for call in (state.initialise, state.read_production, lambda s: state.read_production(s, "digits")):
        with pytest.raises(ConfigError, match=refused) as caught:
            call(stack)
        assert "\n" not in str(caught.value)
    assert all(isinstance(v, ConfigError) for v in state.read_productions(stack).values())
    assert files_of(stack) == before
    state.retired_production_file(stack).rename(state.production_file(stack))  # what the message says to do
    assert state.read_production(stack) == "green"


def test_a_deployed_model_that_lost_its_file_gets_no_colour_but_the_others_keep_theirs(stack):
    state.initialise(stack)
    state.record_deployment(stack, "green", "digits", "1.1")
    state.production_file(stack, "digits").unlink()
    assert state.initialise(stack) == []
    with pytest.raises(ConfigError, match="production.digits is missing"):
        state.read_production(stack, "digits")
    assert state.read_production(stack, "regressor") == "blue"


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


@pytest.mark.parametrize("verb", [["which"], ["up"], ["swap", "digits"]])
def test_commands_on_the_retired_file_say_one_line_and_exit_non_zero(stack_file, capsys, verb):
    from twinserve.cli import main

    stack = load_stack(stack_file)
    state.initialise(stack)
    state.production_file(stack).unlink()
    state.retired_production_file(stack).write_text("blue\n")
    before = files_of(stack)
    assert main(["--stack", str(stack_file), *verb]) != 0
    err = capsys.readouterr().err.strip()
    assert "single-model state file of an older twinserve" in err and "\n" not in err
    assert files_of(stack) == before
