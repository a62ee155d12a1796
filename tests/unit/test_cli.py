"""twinserve/cli.py: a failed command is one line and an exit code, never a traceback."""

import pytest
import yaml
from kafka.errors import KafkaTimeoutError

from tests.checkout import DEFAULT_STACK
from twinserve import cli
from twinserve.runtime import stack as stack_mod
from twinserve.settings import parse_stack


@pytest.fixture
def stack(tmp_path):
    raw = yaml.safe_load(DEFAULT_STACK.read_text())
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "state")
    return parse_stack(raw, tmp_path / "stack.yaml")


@pytest.mark.parametrize(
    "error", [KafkaTimeoutError("Failed to update metadata after 60.0 secs."), OSError(98, "Address in use")]
)
def test_up_down_status_print_one_line_not_a_traceback(monkeypatch, capsys, error):
    def fail(stack):
        raise error

    for verb in ("up", "down", "status"):
        monkeypatch.setattr(stack_mod, verb, fail)
        assert cli.main([verb]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"twinserve {verb}: error: {type(error).__name__}")
        assert err.count("\n") == 1 and "Traceback" not in err
