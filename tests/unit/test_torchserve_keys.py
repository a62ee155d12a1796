"""twinserve/runtime/torchserve.py's reading of TorchServe 0.12's key_file.json (no server)."""

import copy
import json

import pytest
import yaml

from tests.checkout import DEFAULT_STACK
from twinserve.errors import ServiceError
from twinserve.runtime import torchserve
from twinserve.settings import parse_stack

RAW = yaml.safe_load(DEFAULT_STACK.read_text())


@pytest.fixture
def stack(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "state")
    return parse_stack(raw, tmp_path / "stack.yaml")


def write_keys(stack, colour, data):
    stack.key_file(colour).parent.mkdir(parents=True, exist_ok=True)
    stack.key_file(colour).write_text(data if isinstance(data, str) else json.dumps(data, indent=2))


def test_each_kind_of_key_is_read_from_the_colour_key_file(stack):
    write_keys(stack, "green", {"management": {"key": "m-KEY_1"}, "inference": {"key": "i-KEY_2"}, "API": {"key": "a"}})
    assert torchserve.read_key(stack, "green", "management") == "m-KEY_1"
    assert torchserve.authorization(stack, "green", "inference") == {"Authorization": "Bearer i-KEY_2"}
    assert stack.key_file("green") == stack.var_dir / "green" / "key_file.json"


def test_a_colour_that_never_started_has_no_key(stack):
    with pytest.raises(ServiceError, match="blue TorchServe is not running"):
        torchserve.read_key(stack, "blue", "management")


@pytest.mark.parametrize(
    "data",
    ["{not json", {"inference": {"key": "x"}}, {"management": {"key": ""}}, {"management": {"key": "a b\nc"}}],
)
def test_a_broken_key_file_is_a_service_error_not_a_traceback(stack, data):
    write_keys(stack, "blue", data)
    with pytest.raises(ServiceError, match="key"):
        torchserve.read_key(stack, "blue", "management")


def test_the_management_client_sends_the_management_key(stack, monkeypatch):
    write_keys(stack, "blue", {"management": {"key": "mgmt"}, "inference": {"key": "inf"}})
    seen = {}

    class Answer:
        status_code = 200

        def json(self):
            return [{"modelVersion": "1.0"}]

    def request(method, url, params=None, headers=None, timeout=None):
        seen.update(method=method, url=url, headers=headers)
        return Answer()

    monkeypatch.setattr(torchserve.requests, "request", request)
    assert torchserve.Management(stack, "blue").default_version("regressor") == "1.0"
    assert seen["headers"] == {"Authorization": "Bearer mgmt"}
    assert seen["url"].endswith(f":{stack.colours['blue'].management_port}/models/regressor")
