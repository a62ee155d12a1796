"""twinserve/observe/exporter.py: what the control plane's exporter says, from injected sources.

The management API is the fake of tests/unit/fakes.py (a colour down on demand,
any versions); the state file and the publishers' counter files are real files
under tmp. Each collector is read through its own CollectorRegistry.
"""

import json

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.fakes import FakeTorchServe, make_stack
from twinserve.observe.exporter import ControlPlaneCollector, SupervisionCollector
from twinserve.runtime.torchserve import publisher_stats_dir
from twinserve.store.state import production_file, write_production


@pytest.fixture
def stack(tmp_path):
    stack = make_stack(tmp_path, "blue")
    write_production(stack, "blue", "digits")
    return stack


@pytest.fixture
def server():
    return FakeTorchServe({"blue": {"regressor": "1.0"}, "green": {"regressor": "1.1"}})


R = {"model": "regressor"}


def read(stack, server) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(stack, management=server))
    return registry


def test_production_and_what_each_colour_serves(stack, server):
    registry = read(stack, server)
    value = registry.get_sample_value
    assert value("twinserve_state_valid", R) == 1.0
    assert value("twinserve_production", {**R, "colour": "blue"}) == 1.0
    assert value("twinserve_production", {**R, "colour": "green"}) == 0.0
    assert value("twinserve_colour_up", {"colour": "blue"}) == value("twinserve_colour_up", {"colour": "green"}) == 1.0
    info = {"model": "regressor"}
    assert (
        value("twinserve_model_version_info", {"colour": "blue", "role": "production", "version": "1.0", **info}) == 1
    )
    assert value("twinserve_model_version_info", {"colour": "green", "role": "staging", "version": "1.1", **info}) == 1
    assert value("twinserve_ready_workers", {"colour": "green", "model": "regressor", "version": "1.1"}) == 1.0


def test_the_roles_follow_the_state_file(stack, server):
    write_production(stack, "green")
    value = read(stack, server).get_sample_value
    labels = {"model": "regressor", "version": "1.1", "colour": "green"}
    assert value("twinserve_model_version_info", {**labels, "role": "production"}) == 1.0
    assert value("twinserve_model_version_info", {**labels, "role": "staging"}) is None
    assert value("twinserve_production", {**R, "colour": "green"}) == 1.0


@pytest.mark.parametrize("content", [b"purple\n", b"\xff\xfe", b""])
def test_an_invalid_state_file_is_a_zero_and_the_rest_is_still_said(stack, server, content, capsys):
    production_file(stack).write_bytes(content)
    value = read(stack, server).get_sample_value
    assert value("twinserve_state_valid", R) == 0.0
    assert (
        value("twinserve_production", {**R, "colour": "blue"})
        == value("twinserve_production", {**R, "colour": "green"})
        == 0
    )
    assert value("twinserve_colour_up", {"colour": "green"}) == 1.0
    assert value("twinserve_ready_workers", {"colour": "blue", "model": "regressor", "version": "1.0"}) == 1.0
    assert "exporter: " in capsys.readouterr().out  # the reason goes to the log


def test_a_missing_state_file_is_invalid_too(stack, server):
    production_file(stack).unlink()
    assert read(stack, server).get_sample_value("twinserve_state_valid", R) == 0.0


def test_a_colour_that_is_down_is_a_zero_and_serves_nothing(stack, server):
    server.down.add("green")
    value = read(stack, server).get_sample_value
    assert value("twinserve_colour_up", {"colour": "green"}) == 0.0
    assert value("twinserve_colour_up", {"colour": "blue"}) == 1.0
    assert value("twinserve_ready_workers", {"colour": "green", "model": "regressor", "version": "1.1"}) is None
    assert value("twinserve_production", {**R, "colour": "blue"}) == 1.0


@pytest.mark.parametrize("error", [ValueError("not JSON"), KeyError("modelVersion")])
def test_an_answer_that_cannot_be_read_counts_as_down(stack, server, error):
    server.fail[("blue", "describe")] = error
    assert read(stack, server).get_sample_value("twinserve_colour_up", {"colour": "blue"}) == 0.0


def test_every_version_counts_its_ready_workers_and_only_the_default_is_the_info(stack, server):
    server.versions["green"]["regressor"] = ["1.1", "1.2"]
    server.defaults["green"]["regressor"] = "1.2"
    server.workers[("green", "regressor", "1.1")] = ["READY", "UNLOADING"]
    server.workers[("green", "regressor", "1.2")] = ["READY", "READY", "STARTING"]
    value = read(stack, server).get_sample_value
    assert value("twinserve_ready_workers", {"colour": "green", "model": "regressor", "version": "1.1"}) == 1.0
    assert value("twinserve_ready_workers", {"colour": "green", "model": "regressor", "version": "1.2"}) == 2.0
    staging = {"colour": "green", "role": "staging", "model": "regressor"}
    assert value("twinserve_model_version_info", {**staging, "version": "1.2"}) == 1.0
    assert value("twinserve_model_version_info", {**staging, "version": "1.1"}) is None


def test_a_model_registered_nowhere_has_no_version(stack, server):
    server.versions["blue"]["regressor"] = []
    server.defaults["blue"]["regressor"] = None
    value = read(stack, server).get_sample_value
    assert value("twinserve_colour_up", {"colour": "blue"}) == 1.0
    assert value("twinserve_ready_workers", {"colour": "blue", "model": "regressor", "version": "1.0"}) is None


def test_the_publishers_counters_are_summed_per_colour(stack, server):
    stats = publisher_stats_dir(stack, "blue")
    stats.mkdir(parents=True)
    (stats / "publisher-1.json").write_text(json.dumps({"rows_sent": 10, "rows_dropped": 1, "send_errors": 2}))
    (stats / "publisher-2.json").write_text(json.dumps({"rows_sent": 5}))
    (stats / "publisher-3.json").write_text("{half a wri")  # a worker writing it right now: skipped
    (stats / "other.json").write_text(json.dumps({"rows_sent": 1000}))
    value = read(stack, server).get_sample_value
    assert value("twinserve_inputs_rows_sent_total", {"colour": "blue"}) == 15.0
    assert value("twinserve_inputs_rows_dropped_total", {"colour": "blue"}) == 1.0
    assert value("twinserve_inputs_send_errors_total", {"colour": "blue"}) == 2.0
    assert value("twinserve_inputs_rows_sent_total", {"colour": "green"}) == 0.0


def test_supervision_of_a_stack_that_never_ran(stack):
    registry = CollectorRegistry()
    collector = SupervisionCollector(stack)
    registry.register(collector)
    value = registry.get_sample_value
    assert "nginx" in collector.names and "supervisor" in collector.names
    for name in collector.names:
        assert value("twinserve_process_up", {"process": name}) == 0.0
        assert value("twinserve_process_restarts_total", {"process": name}) == 0.0
    assert value("twinserve_broker_recycles_total") == 0.0


def test_each_model_has_its_own_production_colour_and_roles(stack):
    server = FakeTorchServe({c: {"regressor": "1.0", "digits": "1.0"} for c in ("blue", "green")})
    write_production(stack, "green", "digits")
    value = read(stack, server).get_sample_value
    assert value("twinserve_production", {"model": "digits", "colour": "green"}) == 1.0
    assert value("twinserve_production", {"model": "digits", "colour": "blue"}) == 0.0
    assert value("twinserve_production", {"model": "regressor", "colour": "blue"}) == 1.0
    digits_green = {"colour": "green", "model": "digits", "version": "1.0"}
    assert value("twinserve_model_version_info", {**digits_green, "role": "production"}) == 1.0
    regressor_green = {"colour": "green", "model": "regressor", "version": "1.0"}
    assert value("twinserve_model_version_info", {**regressor_green, "role": "staging"}) == 1.0


def test_one_model_s_invalid_state_file_is_that_model_s_zero(stack, server):
    production_file(stack, "digits").write_text("purple\n")
    value = read(stack, server).get_sample_value
    assert value("twinserve_state_valid", {"model": "digits"}) == 0.0
    assert value("twinserve_state_valid", R) == 1.0
    assert value("twinserve_production", {**R, "colour": "blue"}) == 1.0
