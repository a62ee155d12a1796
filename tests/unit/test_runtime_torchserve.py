"""twinserve/runtime/torchserve.py without a server: the command line of a colour, the reading of TorchServe 0.12's
key_file.json, and the management client's retry of an interrupted DELETE."""

import json

import pytest

from tests.checkout import REPO_ROOT
from twinserve.errors import ServiceError
from twinserve.runtime import torchserve


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


def test_the_colour_runs_as_the_jvm_with_the_stack_settings(stack):
    argv, env = torchserve.command(stack, "blue", {"regressor": "regressor-1.0.mar"})
    assert argv[0].endswith("java") and torchserve.FRONTEND_CLASS in argv
    assert f"-Xmx{stack.torchserve.java_heap}" in argv
    assert argv[argv.index("-s") + 1] == str(stack.colour_store("blue"))
    assert env["TWINSERVE_LOG_MAX_SIZE"] == f"{stack.supervisor.log_max_mb} MB"
    assert env["TWINSERVE_LOG_KEEP"] == str(stack.supervisor.log_keep)
    assert "${env:TWINSERVE_LOG_MAX_SIZE" in (REPO_ROOT / torchserve.LOG4J_CONFIG).read_text()


class Reply:
    def __init__(self, status: int, message: str = ""):
        self.status_code, self.text = status, message

    def json(self):
        return {"message": self.text}


INTERRUPTED = "Interrupted while cleaning resources: regressor"


@pytest.mark.parametrize(
    "answers,raises,deletes",
    [
        ([Reply(500, INTERRUPTED), Reply(200)], None, 2),
        ([Reply(500, INTERRUPTED), Reply(500, INTERRUPTED)], "HTTP 500", 2),
        ([Reply(500, "something else"), Reply(200)], "something else", 1),
    ],
)
def test_unregister_repeats_a_delete_that_torchserve_interrupted_once(monkeypatch, stack, answers, raises, deletes):
    """In the compose stack's containers TorchServe answers the first DELETE with a 500 every time."""
    write_keys(stack, "green", {"management": {"key": "mgmt"}, "inference": {"key": "inf"}})
    calls = []

    def request(method, url, **kwargs):
        calls.append((method, url))
        return answers.pop(0)

    monkeypatch.setattr(torchserve.requests, "request", request)
    client = torchserve.Management(stack, "green")
    if raises:
        with pytest.raises(ServiceError, match=raises):
            client.unregister("regressor", "1.0")
    else:
        client.unregister("regressor", "1.0")
    assert calls == [("DELETE", f"{client.url}/models/regressor/1.0")] * deletes
