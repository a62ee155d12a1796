"""docker-compose.yml agrees with the stack description: its hosts, ports, networks and files are the native stack's."""

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from tests.checkout import REPO_ROOT
from twinserve.compose.configs import COMPOSE_FILE, COMPOSE_STACK, RENDERED_DIR, load
from twinserve.compose.images import VERSION
from twinserve.compose.services import API_NETWORKS
from twinserve.runtime.render import PROMETHEUS_RULES, log_dir, nginx_dir

STACK, SETTINGS = load(REPO_ROOT / COMPOSE_STACK)
TEXT = (REPO_ROOT / COMPOSE_FILE).read_text()
COMPOSE = yaml.safe_load(TEXT)  # anchors and merge keys resolved
SERVICES = COMPOSE["services"]
CORE = {s: spec for s, spec in SERVICES.items() if not spec.get("profiles")}
TWINSERVE_IMAGE = {s: spec for s, spec in SERVICES.items() if spec["image"] == f"twinserve:{VERSION}"}
COLOURS = {c: f"torchserve_{c}" for c in STACK.colours}
M = STACK.monitoring
INTERNAL = {name for name, spec in COMPOSE["networks"].items() if spec.get("internal")}


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


def networks(service: str) -> dict[str, list[str]]:
    """{network: aliases} of a service."""
    nets = SERVICES[service]["networks"]
    if isinstance(nets, list):
        return {n: [] for n in nets}
    return {n: (v or {}).get("aliases", []) for n, v in nets.items()}


def members(network: str) -> set[str]:
    return {s for s in CORE if network in networks(s)} - {"archives"}


def env_file() -> dict[str, str]:
    lines = (REPO_ROOT / "compose" / "twinserve.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# --- the shape the issue asks for ---------------------------------------------


def test_the_whole_stack_runs_by_default_and_the_rest_under_profiles():
    expected = {"nginx", STACK.drift.broker_host, M.prometheus_host, "archives", *COLOURS.values()}
    expected |= set(SETTINGS.hosts.values()) - {h for h in SETTINGS.hosts.values() if "." in h}
    assert set(CORE) == expected
    assert {s: spec["profiles"] for s, spec in SERVICES.items() if s not in CORE} == {
        "control": ["control"], "producer": ["simulator"], "locust": ["loadtest"], "grafana": ["grafana"],
        "kafka": ["kafka"],
    }  # fmt: skip


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_is_pinned_checked_and_restarted(service):
    spec = SERVICES[service]
    assert "container_name" not in spec and "build" not in spec, "images come from `make images`"
    assert spec["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL") and len(spec["healthcheck"]["test"]) > 1
    name, _, tag = spec["image"].rpartition(":")
    assert name and tag and tag != "latest" and "/" not in tag, spec["image"]
    one_shot = service in ("archives", "control", "producer", "locust")
    assert spec["restart"] == ("no" if one_shot else "unless-stopped")
    assert "expose" not in spec and "network_mode" not in spec and networks(service)


def test_volumes_are_named_and_all_declared():
    used = {
        m.split(":")[0] for spec in SERVICES.values() for m in spec.get("volumes", []) if not m.startswith((".", "/"))
    }
    assert used == set(COMPOSE["volumes"])


def test_only_nginx_and_the_uis_are_published_on_the_host_loopback():
    published = {s: spec["ports"] for s, spec in SERVICES.items() if "ports" in spec}
    ip = SETTINGS.publish_address

    def port(name, number):
        return [f"{ip}:${{TWINSERVE_PUBLISH_{name}:-{number}}}:{number}"]

    assert published == {
        "nginx": port("NGINX", STACK.nginx.port),
        M.prometheus_host: port("PROMETHEUS", M.prometheus_port),
        SETTINGS.hosts["alertmanager"]: port("ALERTMANAGER", M.alertmanager_port),
        SETTINGS.hosts["alert_receiver"]: port("ALERTS", M.alert_receiver_port),
        "grafana": port("GRAFANA", SETTINGS.grafana_port),
    }
    assert not {n for s in published for n in networks(s)} & INTERNAL - {"serving", "control", "monitoring"}


def test_every_port_in_the_file_is_a_stack_port():
    """A port written here that the stack description does not have would be a second source."""
    without_subnets = re.sub(r"subnet: \S+", "", TEXT)
    found = {int(p) for p in re.findall(r"[:/-](\d{2,5})(?![\w.])", without_subnets)}
    allowed = set(STACK.ports) | set(SETTINGS.ports)
    assert found and found <= allowed, sorted(found - allowed)
    management = {p for c in STACK.colours.values() for p in (c.management_port, c.metrics_port)}
    assert not management & found, "TorchServe's management and metrics ports are never written (nor published)"


# --- networks: each API reachable from one network -----------------------------


def test_the_networks_are_the_stack_description_s_internal_subnets():
    assert set(SETTINGS.networks) == INTERNAL
    for name, subnet in SETTINGS.networks.items():
        assert COMPOSE["networks"][name]["ipam"] == {"config": [{"subnet": subnet}]}
    nets = [ipaddress.ip_network(s) for s in SETTINGS.networks.values()]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    assert set(COMPOSE["networks"]) - INTERNAL == {"edge", "ui"}


def test_who_sits_on_which_network():
    assert members("serving") == {"nginx", *COLOURS.values()}
    assert members("control") == {"nginx", "exporter", *COLOURS.values()}
    assert members("drift") == {STACK.drift.broker_host, SETTINGS.hosts["drift"], *COLOURS.values()}
    assert members("edge") == {"nginx"}
    assert members("ui") == {M.prometheus_host, SETTINGS.hosts["alertmanager"], SETTINGS.hosts["alert_receiver"]}
    assert "nginx" in members("monitoring") and M.prometheus_host in members("monitoring")
    assert set(networks("control")) == {"control", "serving", "monitoring", "drift"}


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_each_colour_api_has_an_alias_on_its_own_network_only(colour):
    aliases = networks(COLOURS[colour])
    assert aliases == {
        "serving": [STACK.colour_host(colour)],
        "control": [STACK.colours[colour].management_host],
        "monitoring": [SETTINGS.hosts[colour]],
        "drift": [],
    }
    assert set(API_NETWORKS.values()) == {"serving", "control", "monitoring"}


def test_nginx_is_reached_by_alias_where_the_admin_server_allows_it():
    aliases = networks("nginx")
    assert aliases["control"] == [STACK.nginx.host] and aliases["monitoring"] == [SETTINGS.hosts["nginx"]]
    assert STACK.nginx.admin_allow == tuple(SETTINGS.networks[n] for n in ("control", "monitoring"))
    assert SETTINGS.admin_networks == ("control", "monitoring")


# --- each service against the stack -------------------------------------------


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_one_torchserve_service_per_colour_from_the_same_anchor(colour):
    spec = SERVICES[COLOURS[colour]]
    assert spec["environment"] == {"TWINSERVE_COLOUR": colour}
    assert spec["command"] == ["python", "-m", "twinserve", "container", "torchserve"]
    assert spec["healthcheck"]["test"][-2:] == ["health", "torchserve"]
    assert "ports" not in spec
    assert TEXT.count('"container", "torchserve"]') == 1, "the colours share one x-torchserve anchor"


def test_nginx_runs_its_image_with_the_state():
    m = mounts("nginx")
    assert SERVICES["nginx"]["image"] == f"twinserve-nginx:{VERSION}"
    assert m[str(STACK.state_dir)] == ("state", "ro")
    assert str(log_dir(STACK)) in m
    assert SERVICES["nginx"]["tmpfs"] == [str(nginx_dir(STACK) / "tmp")]
    assert f"/{STACK.nginx.admin_port} " in SERVICES["nginx"]["healthcheck"]["test"][-1]
    dockerfile = (REPO_ROOT / "compose" / "nginx" / "Dockerfile").read_text()
    assert "COPY nginx/ /etc/twinserve/nginx/" in dockerfile
    assert f"COPY {rel(REPO_ROOT / RENDERED_DIR / 'nginx.conf')[2:]} /etc/twinserve/nginx.conf" in dockerfile


def test_prometheus_and_alertmanager_read_the_rendered_files_and_native_rules():
    prometheus, alertmanager = M.prometheus_host, SETTINGS.hosts["alertmanager"]
    m = mounts(prometheus)
    assert m[flag(prometheus, "--config.file")] == (rel(REPO_ROOT / RENDERED_DIR / "prometheus.yml"), "ro")
    assert m[SETTINGS.prometheus_rules] == (rel(REPO_ROOT / PROMETHEUS_RULES), "ro")
    assert flag(prometheus, "--web.listen-address") == f":{M.prometheus_port}"
    m = mounts(alertmanager)
    assert m[flag(alertmanager, "--config.file")] == (rel(REPO_ROOT / RENDERED_DIR / "alertmanager.yml"), "ro")
    assert flag(alertmanager, "--web.listen-address") == f":{M.alertmanager_port}"


def test_exporters_listen_and_scrape_where_the_stack_says():
    assert flag(SETTINGS.hosts["node"], "--web.listen-address") == f":{M.node_exporter_port}"
    exporter = SETTINGS.hosts["nginx_exporter"]
    assert flag(exporter, "-web.listen-address") == f":{M.nginx_exporter_port}"
    assert (
        flag(exporter, "-nginx.scrape-uri") == f"http://{SETTINGS.hosts['nginx']}:{STACK.nginx.admin_port}/stub_status"
    )
    for role, verb in (("exporter", "exporter"), ("alert_receiver", "alert-receiver"), ("drift", "drift-consumer")):
        spec = SERVICES[SETTINGS.hosts[role]]
        assert spec["command"][-1] == verb and spec["healthcheck"]["test"][-1] == verb
    assert SERVICES[STACK.drift.broker_host]["command"][-1] == "broker"


def test_the_kafka_profile_listens_on_the_stack_broker_port():
    env = SERVICES["kafka"]["environment"]
    port = STACK.drift.broker_port
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka:{port}"
    assert env["KAFKA_LISTENERS"] == f"PLAINTEXT://:{port},CONTROLLER://:{SETTINGS.kafka_controller_port}"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka:{SETTINGS.kafka_controller_port}"


def test_grafana_is_provisioned_from_config_grafana():
    m = mounts("grafana")
    assert m["/etc/grafana/provisioning"] == ("./config/grafana/provisioning", "ro")
    providers = yaml.safe_load((REPO_ROOT / "config/grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert m[providers["providers"][0]["options"]["path"]] == ("./config/grafana/dashboards", "ro")
    datasources = yaml.safe_load((REPO_ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == f"http://{M.prometheus_host}:{M.prometheus_port}"
    assert SERVICES["grafana"]["environment"]["GF_SERVER_HTTP_PORT"] == str(SETTINGS.grafana_port)
    assert set(networks("grafana")) == {"ui"}


# --- the twinserve image: the repository mounted, the stack description read ----


def test_the_twinserve_image_reads_the_compose_stack_from_the_mounted_repository():
    assert set(TWINSERVE_IMAGE) >= {*COLOURS.values(), "control", "producer", "locust", "broker"}
    env = env_file()
    for service, spec in TWINSERVE_IMAGE.items():
        root = spec["working_dir"]
        assert env["PYTHONPATH"] == root
        assert env["TWINSERVE_STACK"] == f"{root}/{COMPOSE_STACK}"
        m = mounts(service)
        for folder in ("twinserve", "config", "models", "simulator"):
            assert m.get(f"{root}/{folder}", m.get(root, ("?",)))[0] in (f"./{folder}", "."), (service, folder)
        assert m[str(STACK.model_store)][0] == rel(REPO_ROOT / "model_store")
        assert m[str(STACK.var_dir)] == ("var", "rw")
        assert STACK.model_store == Path(root) / "model_store"


def test_the_colours_start_after_their_archives_and_the_broker():
    for service in COLOURS.values():
        depends = SERVICES[service]["depends_on"]
        assert depends == {
            "archives": {"condition": "service_completed_successfully"},
            STACK.drift.broker_host: {"condition": "service_healthy"},
        }
    assert SERVICES["archives"]["command"][-1] == "archives" and SERVICES["archives"]["restart"] == "no"


def test_only_the_control_plane_writes_the_state_and_the_model_store():
    def mode(service, path):
        return mounts(service).get(str(path), ("", "ro"))[1]

    assert {s for s in TWINSERVE_IMAGE if mode(s, STACK.state_dir) == "rw"} == {"control", "archives"}
    assert {s for s in TWINSERVE_IMAGE if mode(s, STACK.model_store) == "rw"} == {"control", "archives"}
    assert {s for s, spec in SERVICES.items() if spec.get("user") == "root"} == {"control", "archives"}


def test_every_bind_mount_exists_in_the_repository():
    for spec in SERVICES.values():
        for entry in spec.get("volumes", []):
            source = entry.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), source


def test_the_image_creates_the_volume_folders_and_builds_from_the_base_argument():
    dockerfile = (REPO_ROOT / "compose" / "twinserve" / "Dockerfile").read_text()
    [line] = [x for x in dockerfile.splitlines() if "install -d" in x]
    assert set(line.split()) >= {str(STACK.var_dir), str(STACK.state_dir)}
    for name in ("twinserve", "nginx", "monitoring"):
        text = (REPO_ROOT / "compose" / name / "Dockerfile").read_text()
        assert text.count("ARG BASE_IMAGE=debian:bookworm-slim") == 1
        assert {line for line in text.splitlines() if line.startswith("FROM")} <= {
            "FROM ${BASE_IMAGE}", "FROM ${BASE_IMAGE} AS venv"
        }  # fmt: skip
        assert "--no-index" in text or "pip" not in text
