"""twinserve/release/promote.py: preflight, the flip, and the restore of production when the flip fails.

The restore runs only when Nginx refuses the flip or /predict answers wrongly
after it: moments the real servers cannot be made to reach on demand, so the
fakes of tests/unit/fakes.py stand in for them here.
"""

import dataclasses

import pytest
import requests

from tests.unit.fakes import FakeSmoke, FakeSwitch, FakeTorchServe, fake_clients, make_stack, write_archive
from twinserve.errors import PreflightError, ServiceError
from twinserve.release import promote
from twinserve.store.state import production_file, read_production, write_production


@pytest.fixture
def stack(tmp_path):
    return make_stack(tmp_path, "blue", versions=("1.0", "1.1"))


@pytest.fixture
def server():
    return FakeTorchServe({"blue": {"regressor": "1.0"}, "green": {"regressor": "1.1"}})


@pytest.fixture
def switch():
    return FakeSwitch("blue")


@pytest.fixture
def smoke():
    return FakeSmoke()


@pytest.fixture
def clients(server, switch, smoke):
    return fake_clients(server, switch, smoke)


def state_file(stack) -> str:
    return production_file(stack).read_text()


def test_a_switch_checks_the_target_flips_then_checks_production(stack, clients, switch, smoke):
    assert promote.switch_to(stack, "green", clients=clients) == "blue"
    assert state_file(stack) == "green\n"
    assert switch.calls == ["green"] and switch.production == "green"
    assert [c[0] for c in smoke.calls] == ["/test/predict/regressor"] + ["/predict/regressor"] * 20
    assert {c[1:] for c in smoke.calls} == {("green", "1.1")}


def test_swap_and_rollback_say_where_production_is(stack, clients):
    assert promote.swap(stack, clients=clients) == "regressor: production is GREEN (was BLUE)"
    assert promote.rollback(stack, clients=clients) == "regressor: production is BLUE (was GREEN)"
    assert state_file(stack) == "blue\n"


def test_a_refused_flip_restores_the_previous_colour_and_says_so(stack, clients, switch, server):
    switch.refuses = {"green"}
    with pytest.raises(ServiceError) as refused:
        promote.switch_to(stack, "green", clients=clients)
    assert (
        str(refused.value)
        == "nginx refused the switch of regressor to green: HTTP 500 lua error; regressor's production is blue again"
    )
    assert state_file(stack) == "blue\n"
    assert switch.calls == ["green", "blue"] and switch.production == "blue"
    assert server.changes("blue") == server.changes("green") == []


def test_a_wrong_answer_after_the_flip_restores_the_previous_colour(stack, clients, switch, smoke):
    smoke.fails_on = {"/predict/regressor"}
    with pytest.raises(PreflightError) as failed:
        promote.switch_to(stack, "green", clients=clients)
    assert "smoke test of green 1.1" in str(failed.value)
    assert str(failed.value).endswith("; regressor's production is blue again")
    assert state_file(stack) == "blue\n"
    assert switch.calls == ["green", "blue"] and switch.production == "blue"


def test_a_verify_that_cannot_reach_the_target_restores_too(stack, clients, switch, server):
    """The target's management API goes away between the preflight and the check after the flip."""
    original = server.check

    def down_after_the_flip(colour, method, *args):
        if switch.calls:
            server.down.add("green")
        original(colour, method, *args)

    server.check = down_after_the_flip
    with pytest.raises(ServiceError, match="green management API unreachable.*; regressor's production is blue again$"):
        promote.switch_to(stack, "green", clients=clients)
    assert state_file(stack) == "blue\n" and switch.production == "blue"


def test_when_nginx_cannot_be_switched_back_the_error_says_what_to_do(stack, clients, switch, smoke):
    smoke.fails_on = {"/predict/regressor"}
    switch.refuses = {"blue"}
    with pytest.raises(PreflightError) as failed:
        promote.switch_to(stack, "green", clients=clients)
    message = str(failed.value)
    assert "smoke test of green 1.1" in message
    assert "the state file says blue again for regressor, but nginx was not switched back" in message
    assert "nginx refused the switch of regressor to blue" in message and message.endswith("run `make up`")
    assert state_file(stack) == "blue\n"
    assert switch.production == "green"  # what Nginx really does now: the message tells the operator


def test_an_interrupt_after_the_flip_restores_and_is_not_swallowed(stack, clients, switch, smoke):
    smoke.interrupt_on = {"/predict/regressor"}
    with pytest.raises(KeyboardInterrupt):
        promote.switch_to(stack, "green", clients=clients)
    assert state_file(stack) == "blue\n"
    assert switch.calls == ["green", "blue"] and switch.production == "blue"


@pytest.mark.parametrize(
    ("breakage", "says"),
    [
        (lambda server, smoke: server.down.add("green"), "green management API unreachable"),
        (lambda server, smoke: server.workers.update({("green", "regressor", "1.1"): ["UNLOADING"]}), "no ready"),
        (lambda server, smoke: server.versions["green"].update(regressor=[]), "green serves no version"),
        (lambda server, smoke: smoke.fails_on.add("/test/predict/regressor"), "smoke test of green 1.1"),
    ],
)
def test_a_failed_preflight_changes_nothing(stack, clients, server, switch, smoke, breakage, says):
    breakage(server, smoke)
    with pytest.raises((PreflightError, ServiceError), match=says):
        promote.switch_to(stack, "green", clients=clients)
    assert state_file(stack) == "blue\n"
    assert switch.calls == []
    assert not any(path == "/predict/regressor" for path, *_ in smoke.calls)


@pytest.mark.parametrize(
    ("ping", "says"),
    [
        (503, "green is unhealthy: /ping HTTP 503"),
        (requests.ConnectionError(), "green is down: /ping ConnectionError"),
        (ServiceError("no key"), "green is down: /ping ServiceError"),
    ],
)
def test_a_colour_that_does_not_answer_ping_is_not_promoted(stack, clients, server, switch, ping, says):
    def answer(stack, colour):
        if isinstance(ping, Exception):
            raise ping
        return ping

    clients = dataclasses.replace(clients, ping=answer)
    with pytest.raises(PreflightError, match=says):
        promote.switch_to(stack, "green", clients=clients)
    assert state_file(stack) == "blue\n" and switch.calls == [] and server.calls == []


def test_production_is_not_switched_to_itself(stack, clients, switch):
    with pytest.raises(PreflightError, match="blue is already production"):
        promote.switch_to(stack, "blue", clients=clients)
    assert switch.calls == []


@pytest.mark.parametrize(
    ("nginx_says", "line"),
    [
        ("blue", "production is BLUE"),
        ("green", "production is BLUE (but nginx routes /predict/regressor to GREEN)"),
        (
            None,
            "production is BLUE (but nginx has no production colour and answers /predict/regressor with 503: "
            "run `make up`)",
        ),
    ],
)
def test_which_says_when_nginx_disagrees(stack, clients, switch, nginx_says, line):
    switch.production = nginx_says
    assert promote.which(stack, clients=clients) == line


def test_which_falls_back_to_the_state_file_when_nginx_is_down(stack, clients, switch):
    def unreachable(stack, model=None):
        raise ServiceError("nginx admin endpoint unreachable: ConnectionError")

    switch.get_production = unreachable
    assert promote.which(stack, clients=clients) == "production is BLUE"


def test_swapping_one_model_never_moves_another(tmp_path, smoke):
    stack = make_stack(tmp_path, "blue", versions=("1.0",))
    write_archive(stack, "digits", "1.0", golden=[{"data": [[0] * 8] * 8, "label": 0, "probabilities": [1.0]}])
    write_archive(stack, "digits", "1.1", golden=[{"data": [[0] * 8] * 8, "label": 0, "probabilities": [1.0]}])
    write_production(stack, "blue", "digits")
    write_production(stack, "blue", "sentiment")
    server = FakeTorchServe({c: {"regressor": "1.0", "digits": v} for c, v in (("blue", "1.0"), ("green", "1.1"))})
    switch = FakeSwitch("blue", {"digits": "blue", "sentiment": "blue"})
    clients = fake_clients(server, switch, smoke)
    assert promote.swap(stack, "digits", clients=clients) == "digits: production is GREEN (was BLUE)"
    assert switch.models == ["digits"] and switch.production == "blue"
    assert switch.others == {"digits": "green", "sentiment": "blue"}
    assert read_production(stack, "digits") == "green" and read_production(stack) == "blue"
    assert {path for path, *_ in smoke.calls} == {"/test/predict/digits", "/predict/digits"}
    assert not any(c[1] == "describe" and c[2] == "regressor" for c in server.calls)  # its preflight is digits' only
    assert promote.which_all(stack, clients=clients) == (
        ["regressor: production is BLUE", "digits: production is GREEN", "sentiment: production is BLUE"],
        True,
    )


def test_which_all_says_which_model_has_no_colour(stack, clients):
    lines, ok = promote.which_all(stack, clients=clients)
    assert not ok and lines[0] == "regressor: production is BLUE"
    assert lines[1].startswith("digits: error: ") and "production.digits" in lines[1]
