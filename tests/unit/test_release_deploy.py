"""twinserve/release/deploy.py: a version onto staging, and staging put back when the deploy fails.

The undo runs only when a registration or the smoke test fails after staging
was changed: the fakes of tests/unit/fakes.py fail there on demand. Pruning a
colour's store is plain file work, tested on a tmp folder.
"""

import shutil

import pytest

from tests.unit.fakes import FakeSmoke, FakeSwitch, FakeTorchServe, fake_clients, make_stack, write_archive
from twinserve.errors import ConfigError, PreflightError, ServiceError
from twinserve.release import deploy
from twinserve.release.deploy import prune_store
from twinserve.store.state import deployments_file, read_deployments, write_production


@pytest.fixture
def stack(tmp_path):
    s = make_stack(tmp_path, "blue", versions=("1.0", "1.1"))
    for colour in s.colours:  # what make up staged: each colour's store holds the archive it serves
        s.colour_store(colour).mkdir(parents=True)
        (s.colour_store(colour) / "regressor-1.0.mar").write_bytes((s.model_store / "regressor-1.0.mar").read_bytes())
    return s


@pytest.fixture
def server():
    return FakeTorchServe({"blue": {"regressor": "1.0"}, "green": {"regressor": "1.0"}})


@pytest.fixture
def clients(server):
    return fake_clients(server, FakeSwitch("blue"), FakeSmoke())


def staged(stack, colour="green"):
    return sorted(p.name for p in stack.colour_store(colour).glob("*.mar"))


def served(server, colour="green"):
    return server.versions[colour]["regressor"], server.defaults[colour]["regressor"]


def test_a_deploy_registers_smokes_then_retires_the_old_version(stack, clients, server):
    line = deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert line == "regressor 1.1 is on green (staging) and passed the smoke test; production untouched"
    assert server.changes("green") == [
        ("register", "regressor", "1.1"),
        ("set_default", "regressor", "1.1"),
        ("unregister", "regressor", "1.0"),
    ]
    assert served(server) == (["1.1"], "1.1")
    assert staged(stack) == ["regressor-1.1.mar"]
    assert clients.smoke.calls == [("/test/predict/regressor", "green", "1.1")]
    # the other models untouched
    assert read_deployments(stack)["green"] == {"regressor": "1.1", "digits": "1.0", "sentiment": "1.0"}
    assert server.changes("blue") == [] and staged(stack, "blue") == ["regressor-1.0.mar"]


def test_a_failed_smoke_test_puts_staging_back_as_it_was(stack, clients, server):
    clients.smoke.fails_on = {"/test/predict/regressor"}
    with pytest.raises(PreflightError, match="smoke test of green 1.1"):
        deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert server.changes("green") == [
        ("register", "regressor", "1.1"),
        ("set_default", "regressor", "1.1"),
        ("set_default", "regressor", "1.0"),
        ("unregister", "regressor", "1.1"),
    ]
    assert served(server) == (["1.0"], "1.0")
    assert staged(stack) == ["regressor-1.0.mar"]
    assert not deployments_file(stack).exists()
    assert server.changes("blue") == []


def test_a_failed_smoke_test_leaves_the_deployments_record_as_it_was(stack, clients):
    deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    record = deployments_file(stack).read_bytes()
    write_archive(stack, "regressor", "1.2")
    clients.smoke.fails_on = {"/test/predict/regressor"}
    with pytest.raises(PreflightError):
        deploy.deploy(stack, stack.model_store / "regressor-1.2.mar", clients=clients)
    assert deployments_file(stack).read_bytes() == record


def test_a_failed_registration_removes_the_staged_copy_and_changes_nothing_else(stack, clients, server):
    server.fail[("green", "register")] = ServiceError("green: POST /models failed: HTTP 500: worker died")
    with pytest.raises(ServiceError, match="worker died"):
        deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert server.changes("green") == [("register", "regressor", "1.1")]
    assert served(server) == (["1.0"], "1.0")
    assert staged(stack) == ["regressor-1.0.mar"]
    assert clients.smoke.calls == [] and not deployments_file(stack).exists()


def test_a_registration_that_failed_late_keeps_the_archive_the_colour_loaded(stack, clients, server):
    """TorchServe registered the version but the call failed (a timeout): the version stays, not as the
    default, and so does the copy it was loaded from; the next deploy of that version reuses both."""
    server.fail[("green", "register")] = ServiceError("green management API unreachable: ReadTimeout")
    server.registers_anyway = True
    with pytest.raises(ServiceError, match="ReadTimeout"):
        deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert served(server) == (["1.0", "1.1"], "1.0")
    assert staged(stack) == ["regressor-1.0.mar", "regressor-1.1.mar"]
    deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert served(server) == (["1.1"], "1.1")


def test_a_refused_default_unregisters_the_new_version(stack, clients, server):
    server.fail[("green", "set_default")] = ServiceError("green: PUT set-default failed: HTTP 500")
    with pytest.raises(ServiceError, match="set-default"):
        deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert server.changes("green")[-1] == ("unregister", "regressor", "1.1")
    assert served(server) == (["1.0"], "1.0")
    assert staged(stack) == ["regressor-1.0.mar"]
    assert clients.smoke.calls == []


def test_a_version_staging_had_already_is_not_unregistered_by_the_undo(stack, clients, server):
    server.versions["green"]["regressor"].append("1.1")  # registered before, not the default
    clients.smoke.fails_on = {"/test/predict/regressor"}
    with pytest.raises(PreflightError):
        deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert served(server) == (["1.0", "1.1"], "1.0")
    assert ("unregister", "regressor", "1.1") not in server.changes("green")


def test_staging_is_the_colour_that_is_not_production(stack, clients, server):
    write_production(stack, "green")
    deploy.deploy(stack, stack.model_store / "regressor-1.1.mar", clients=clients)
    assert served(server, "blue") == (["1.1"], "1.1")
    assert server.changes("green") == []


@pytest.mark.parametrize(
    ("source", "version", "says"),
    [
        ("elsewhere/regressor-1.1.mar", None, "is not in the model store"),
        ("store/regressor-9.9.mar", None, "not found"),
        ("store/regressor-1.1.mar", "1.0", "is version 1.1, not 1.0"),
        ("nothing-here", None, "neither a .mar archive nor a model directory"),
    ],
)
def test_what_cannot_be_deployed_is_refused_first(stack, tmp_path, clients, server, source, version, says):
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(stack.model_store / "regressor-1.1.mar", tmp_path / "elsewhere")
    shutil.copy(stack.model_store / "regressor-1.1.json", tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=says):
        deploy.deploy(stack, tmp_path / source, version, clients=clients)
    assert server.calls == []


def test_a_model_not_in_the_stack_is_refused(stack, clients, server):
    write_archive(stack, "other", "1.0")
    with pytest.raises(ConfigError, match="model 'other' is not in the stack description"):
        deploy.deploy(stack, stack.model_store / "other-1.0.mar", clients=clients)
    assert server.calls == []


# --- prune_store ---------------------------------------------------------------


def touch(store, *names):
    for name in names:
        (store / name).write_bytes(b"mar")


def test_only_the_served_archive_of_the_model_stays(tmp_path):
    touch(tmp_path, "regressor-1.0.mar", "regressor-1.1.mar", "regressor-1.2.mar")
    assert prune_store(tmp_path, "regressor", keep="regressor-1.2.mar") == ["regressor-1.0.mar", "regressor-1.1.mar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regressor-1.2.mar"]


def test_other_models_and_other_files_are_left_alone(tmp_path):
    touch(tmp_path, "regressor-1.0.mar", "regressor-1.1.mar", "regressor-big-1.0.mar", "digits-1.0.mar", "notes.txt")
    assert prune_store(tmp_path, "regressor", keep="regressor-1.1.mar") == ["regressor-1.0.mar"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["digits-1.0.mar", "notes.txt", "regressor-1.1.mar", "regressor-big-1.0.mar"]


def test_an_empty_or_missing_store_prunes_nothing(tmp_path):
    assert prune_store(tmp_path, "regressor", keep="regressor-1.0.mar") == []
    assert prune_store(tmp_path / "absent", "regressor", keep="regressor-1.0.mar") == []
