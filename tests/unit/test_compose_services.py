"""twinserve/compose/services.py (`twinserve container`, `twinserve health`): what the twinserve image's
containers run (entry points, binds, healthchecks), without a server."""

import re
from pathlib import Path

import pytest
import yaml

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve.cli import main, parser
from twinserve.compose import services as container
from twinserve.compose.configs import COMPOSE_FILE, COMPOSE_STACK
from twinserve.errors import ConfigError
from twinserve.settings import load_stack


@pytest.fixture
def compose_stack(tmp_path):
    """The compose stack description over a copy of stack.yaml with every port moved (nothing
    listens there) and its container paths moved under tmp_path."""
    base = yaml.safe_load(DEFAULT_STACK.read_text())
    for section in ("nginx", "monitoring", "drift"):
        base[section] |= {k: v + 31000 for k, v in base[section].items() if k == "port" or k.endswith("_port")}
    for colour in base["colours"].values():
        colour |= {k: v + 31000 for k, v in colour.items()}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(base))
    raw = yaml.safe_load((REPO_ROOT / COMPOSE_STACK).read_text())
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    path = tmp_path / "stack.compose.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_stack(path)


BINDS = {"inference": "172.29.1.5", "management": "172.29.2.5", "metrics": "172.29.3.5", "grpc": "127.0.0.1"}


def test_container_torchserve_binds_each_api_to_its_network_and_publishes_to_the_broker(compose_stack):
    """Same function as natively (twinserve.runtime.torchserve.command); the compose stack changes only addresses."""
    archives = {"regressor": "regressor-1.0.mar"}
    argv, env = container.torchserve_command(compose_stack, "green", archives, BINDS)
    config = (compose_stack.colour_dir("green") / "config.properties").read_text()
    green = compose_stack.colours["green"]
    assert argv[argv.index("-f") + 1] == str(compose_stack.colour_dir("green") / "config.properties")
    assert env["TWINSERVE_KAFKA_BOOTSTRAP"] == f"broker:{compose_stack.drift.broker_port}"
    assert f"inference_address=http://172.29.1.5:{green.inference_port}\n" in config
    assert f"management_address=http://172.29.2.5:{green.management_port}\n" in config
    assert f"metrics_address=http://172.29.3.5:{green.metrics_port}\n" in config
    assert "grpc_inference_address=127.0.0.1\n" in config and "grpc_management_address=127.0.0.1\n" in config
    assert "load_models=regressor=regressor-1.0.mar" in config


def test_the_native_torchserve_config_binds_every_api_to_loopback():
    from twinserve.runtime.render import render_torchserve

    native = load_stack(DEFAULT_STACK)
    config = render_torchserve(native, "blue", {})
    assert re.findall(r"_address=(?:http://)?([\d.]+)", config) == ["127.0.0.1"] * 5


def test_api_binds_pick_the_address_in_each_network_s_subnet():
    networks = {"serving": "172.29.1.0/24", "control": "172.29.2.0/24", "monitoring": "172.29.3.0/24",
                "drift": "172.29.4.0/24"}  # fmt: skip
    addresses = ["127.0.0.1", "172.29.4.5", "172.29.3.5", "172.29.1.5", "172.29.2.5"]
    assert container.api_binds(networks, addresses) == BINDS
    with pytest.raises(ConfigError, match="no address on network control"):
        container.api_binds(networks, ["127.0.0.1", "172.29.1.5", "172.29.3.5"])


def test_local_addresses_include_loopback():
    assert "127.0.0.1" in container.local_addresses()


def test_container_healthchecks_ask_the_stack_ports(compose_stack, monkeypatch):
    s = compose_stack
    blue, green = s.colours["blue"], s.colours["green"]
    assert container.ready_url(s, "torchserve", "blue") == f"http://blue.serving:{blue.inference_port}/ping"
    monkeypatch.setenv("TWINSERVE_COLOUR", "green")
    assert container.ready_url(s, "torchserve") == f"http://green.serving:{green.inference_port}/ping"
    assert container.ready_url(s, "exporter") == f"http://127.0.0.1:{s.monitoring.exporter_port}/metrics"
    assert container.ready_url(s, "alert-receiver").endswith(f":{s.monitoring.alert_receiver_port}/healthz")
    assert container.ready_url(s, "drift-consumer").endswith(f":{s.drift.consumer_metrics_port}/metrics")
    assert container.ready_url(s, "broker") == f"tcp://127.0.0.1:{s.drift.broker_port}"
    with pytest.raises(ConfigError, match="unknown service"):
        container.ready_url(s, "grafana")
    monkeypatch.setenv("TWINSERVE_COLOUR", "purple")
    with pytest.raises(ConfigError, match="purple"):
        container.ready_url(s, "torchserve")


def test_a_tcp_healthcheck_connects(compose_stack):
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert container.healthy(f"tcp://127.0.0.1:{server.getsockname()[1]}")
    assert not container.healthy(f"tcp://127.0.0.1:{compose_stack.drift.broker_port}")


def test_container_health_is_an_exit_code_and_prints_nothing(compose_stack, monkeypatch, capsys):
    monkeypatch.setenv("TWINSERVE_STACK", str(compose_stack.path))
    assert main(["health", "stack"]) == 0
    assert main(["health", "exporter"]) == 1, "nothing listens on the exporter port of this stack copy"
    assert capsys.readouterr() == ("", "")
    assert main(["health", "bogus"]) == 2
    assert main(["container", "exporter", "blue"]) == 2, "only torchserve takes a colour"
    assert len(capsys.readouterr().err.splitlines()) == 2


def compose_commands() -> list[list[str]]:
    """Every `python -m twinserve ...` that docker-compose.yml runs: commands and healthchecks."""
    found = []
    for spec in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values():
        for argv in (spec.get("command", []), spec.get("healthcheck", {}).get("test", [])[1:]):
            if argv[:2] == ["python", "-m"]:
                found.append(argv)
    return found


def test_every_python_command_in_the_compose_file_is_a_twinserve_verb_that_parses():
    commands = compose_commands()
    assert len(commands) >= 15
    for argv in commands:
        assert argv[2] == "twinserve", argv
        parser().parse_args(argv[3:])  # raises UsageError if the verb or its arguments are wrong
    verbs = {argv[3] for argv in commands}
    assert {"container", "health", "which", "drift-demo", "loadtest"} <= verbs
    services = {argv[4] for argv in commands if argv[3] == "container"}
    assert services == set(container.SERVICES) | {"archives"}


def test_container_archives_builds_each_initial_version_as_make_up_does(compose_stack, monkeypatch, capsys):
    from twinserve.store import archives as models

    built = []
    monkeypatch.setattr(models, "ensure_archive", lambda s, d, v: built.append((d, v)) or Path(f"{d.name}-{v}.mar"))
    monkeypatch.setenv("TWINSERVE_STACK", str(compose_stack.path))
    assert main(["container", "archives"]) == 0
    models = list(compose_stack.models)
    assert sorted(models) == ["digits", "regressor", "sentiment"]
    assert built == [(REPO_ROOT / "models" / m, "1.0") for m in models]
    state_dir = compose_stack.state_dir
    every_model = ", ".join(str(state_dir / f"production.{m}") for m in models)
    assert capsys.readouterr().out == (
        f"archives: {', '.join(f'{m}-1.0.mar' for m in models)}\nstate: {every_model}, {state_dir / 'admin-token'}\n"
    )
