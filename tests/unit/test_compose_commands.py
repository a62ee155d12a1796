"""What scripts/*.sh and the twinserve image's containers run, native and compose, without a server."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from twinserve import doorway
from twinserve.compose import services as container
from twinserve.compose.configs import COMPOSE_FILE, COMPOSE_STACK
from twinserve.errors import ConfigError
from twinserve.settings import DEFAULT_STACK, REPO_ROOT, load_stack, parse_stack
from twinserve.store.state import write_production

SCRIPTS = {"swap_deploy.sh": "swap", "rollback.sh": "rollback", "which_is_production.sh": "which",
           "deploy_model.sh": "deploy"}  # fmt: skip
ROOT = Path("/repo")


# --- twinserve/doorway.py: the pure function the scripts run ------------------


def test_native_mode_runs_the_venv_cli_as_before():
    assert doorway.command("swap", [], "native", ROOT) == ["/repo/.venv/bin/python", "-m", "twinserve", "swap"]
    assert doorway.command("deploy", ["m", "1.1"], "native", ROOT)[-3:] == ["deploy", "m", "1.1"]


def test_compose_mode_runs_the_same_verb_in_a_one_off_control_container():
    assert doorway.command("rollback", [], "compose", ROOT) == [
        "docker-compose", "-f", "/repo/docker-compose.yml", "run", "--rm", "-T", "control",
        "python", "-m", "twinserve", "rollback",
    ]  # fmt: skip


def test_the_pipeline_runs_its_own_module_in_either_mode():
    assert doorway.command("pipeline", ["run", "--approve"], "native", ROOT) == [
        "/repo/.venv/bin/python", "-m", "twinserve.pipeline", "run", "--approve",
    ]  # fmt: skip
    assert doorway.command("pipeline", ["show"], "compose", ROOT)[-5:] == [
        "control", "python", "-m", "twinserve.pipeline", "show",
    ]  # fmt: skip
    assert "@python3 -I twinserve/doorway.py pipeline run --model-dir" in (REPO_ROOT / "Makefile").read_text()


def test_the_control_service_exists_and_the_compose_file_is_the_root_one():
    assert doorway.ROOT == REPO_ROOT
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert doorway.CONTROL_SERVICE in services
    assert doorway.command("which", [], "compose")[2] == str(COMPOSE_FILE)


def test_every_cli_verb_the_doorway_passes_exists():
    from twinserve.cli import VERBS

    assert set(SCRIPTS.values()) <= set(VERBS)


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


def test_the_doorway_needs_only_the_standard_library():
    source = (REPO_ROOT / "twinserve" / "doorway.py").read_text()
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    assert imported <= set(sys.stdlib_module_names), imported


# --- scripts/*.sh: doorways through the shell ----------------------------------


@pytest.mark.parametrize("script,verb", sorted(SCRIPTS.items()))
def test_each_script_only_hands_its_verb_to_the_doorway(script, verb):
    text = (REPO_ROOT / "scripts" / script).read_text()
    code = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert code[0] == "set -euo pipefail"
    assert code[-1] == f'exec python3 -I "$root/twinserve/doorway.py" {verb} "$@"'
    assert len(code) == 3 and os.access(REPO_ROOT / "scripts" / script, os.X_OK)


@pytest.fixture
def offline_stack(tmp_path):
    """A native stack on ports nothing listens on, with green as production."""
    raw = yaml.safe_load(DEFAULT_STACK.read_text())
    for colour in raw["colours"].values():
        for key in colour:
            colour[key] += 31000
    raw["nginx"]["port"], raw["nginx"]["admin_port"] = 39080, 39079
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw))
    write_production(parse_stack(raw, path), "green")
    return path


def run_script(script, env, *args):
    return subprocess.run([str(REPO_ROOT / "scripts" / script), *args], env=env, capture_output=True, text=True)


def test_native_which_through_the_shell_reads_the_state(offline_stack):
    env = {**os.environ, "TWINSERVE_STACK": str(offline_stack)}
    env.pop("TWINSERVE_MODE", None)
    result = run_script("which_is_production.sh", env)
    assert (result.returncode, result.stdout) == (0, "production is GREEN\n"), result.stderr


def test_compose_mode_through_the_shell_runs_docker_compose(tmp_path):
    """A stand-in docker-compose on PATH records what the script runs (no engine here)."""
    fake = tmp_path / "bin" / "docker-compose"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\nexit 3\n')
    fake.chmod(0o755)
    record = tmp_path / "argv"
    env = {
        **os.environ,
        "TWINSERVE_MODE": "compose",
        "RECORD": str(record),
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
    }
    result = run_script("deploy_model.sh", env, str(REPO_ROOT / "models" / "regressor"), "1.4")
    assert result.returncode == 3, "the script exits with docker-compose's status"
    assert record.read_text().splitlines() == [
        "-f", str(COMPOSE_FILE), "run", "--rm", "-T", "control", "python", "-m", "twinserve", "deploy",
        "models/regressor", "1.4",
    ]  # fmt: skip


def test_compose_mode_without_docker_compose_says_so(tmp_path):
    """A PATH with only what the script needs besides docker-compose."""
    for tool in ("python3", "dirname"):
        (tmp_path / tool).symlink_to(os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool))
    env = {**os.environ, "TWINSERVE_MODE": "compose", "PATH": str(tmp_path)}
    script = str(REPO_ROOT / "scripts" / "swap_deploy.sh")
    result = subprocess.run([shutil.which("bash"), script], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "twinserve swap: error: cannot run docker-compose: No such file or directory"


# --- twinserve/compose/services.py: the containers' entry points ----------------------


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
    raw = yaml.safe_load(COMPOSE_STACK.read_text())
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


def test_container_health_is_an_exit_code(compose_stack, monkeypatch):
    monkeypatch.setenv("TWINSERVE_STACK", str(compose_stack.path))
    assert container.main(["health", "stack"]) == 0
    assert container.main(["health", "exporter"]) == 1, "nothing listens on the exporter port of this stack copy"
    assert container.main(["bogus"]) == 2


def test_every_container_command_in_the_compose_file_is_one_main_accepts():
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for spec in services.values():
        for argv in (spec.get("command", []), spec["healthcheck"]["test"][1:]):
            if argv[:3] == ["python", "-m", "twinserve.compose.services"]:
                rest = argv[3:]
                if rest[0] == "health":
                    assert rest[1] in (*container.SERVICES, "stack"), argv
                else:
                    assert rest[0] in (*container.SERVICES, *container.ONE_SHOTS), argv


def test_container_archives_builds_each_initial_version_as_make_up_does(compose_stack, monkeypatch, capsys):
    from twinserve.store import archives as models

    built = []
    monkeypatch.setattr(models, "ensure_archive", lambda s, d, v: built.append((d, v)) or Path(f"{d.name}-{v}.mar"))
    monkeypatch.setenv("TWINSERVE_STACK", str(compose_stack.path))
    assert container.main(["archives"]) == 0
    models = list(compose_stack.models)
    assert sorted(models) == ["digits", "regressor"]
    assert built == [(REPO_ROOT / "models" / m, "1.0") for m in models]
    state_dir = compose_stack.state_dir
    every_model = ", ".join(str(state_dir / f"production.{m}") for m in models)
    assert capsys.readouterr().out == (
        f"archives: {', '.join(f'{m}-1.0.mar' for m in models)}\nstate: {every_model}, {state_dir / 'admin-token'}\n"
    )


# --- the control plane against TorchServe in a container ----------------------


class Answer:
    def __init__(self, status: int, message: str = ""):
        self.status_code, self.text = status, message

    def json(self):
        return {"message": self.text}


INTERRUPTED = "Interrupted while cleaning resources: regressor"


@pytest.mark.parametrize(
    "answers,raises,deletes",
    [
        ([Answer(500, INTERRUPTED), Answer(200)], None, 2),
        ([Answer(500, INTERRUPTED), Answer(500, INTERRUPTED)], "HTTP 500", 2),
        ([Answer(500, "something else"), Answer(200)], "something else", 1),
    ],
)
def test_unregister_repeats_a_delete_that_torchserve_interrupted_once(
    monkeypatch, compose_stack, answers, raises, deletes
):
    from twinserve.errors import ServiceError
    from twinserve.runtime import torchserve

    calls = []

    def request(method, url, **kwargs):
        calls.append((method, url))
        return answers.pop(0)

    monkeypatch.setattr(torchserve.requests, "request", request)
    client = torchserve.Management(compose_stack, "green")  # compose: no token authorization
    if raises:
        with pytest.raises(ServiceError, match=raises):
            client.unregister("regressor", "1.0")
    else:
        client.unregister("regressor", "1.0")
    assert calls == [("DELETE", f"{client.url}/models/regressor/1.0")] * deletes
