"""The compose stack description: an overlay of config/stack.yaml that changes hosts and paths, never a port."""

from pathlib import Path

import pytest
import yaml

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve.compose.configs import COMPOSE_STACK, load, prometheus_hosts
from twinserve.errors import ConfigError
from twinserve.runtime.render import render_prometheus
from twinserve.settings import load_stack, merge


@pytest.fixture(scope="module")
def native():
    return load_stack(DEFAULT_STACK)


@pytest.fixture(scope="module")
def compose():
    return load(REPO_ROOT / COMPOSE_STACK)


def test_merge_overlays_mappings_key_by_key():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    assert merge(base, {"a": {"y": 5}, "b": [9]}) == {"a": {"x": 1, "y": 5}, "b": [9], "c": 3}
    assert base == {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}, "the base must not change"


def test_every_port_comes_from_the_native_stack(native, compose):
    stack, _ = compose
    assert stack.ports == native.ports
    overlay = yaml.safe_load((REPO_ROOT / COMPOSE_STACK).read_text())
    written = [k for section in overlay.values() if isinstance(section, dict) for k in section if k.endswith("port")]
    written += [k for c in overlay["colours"].values() for k in c if k.endswith("port")]
    assert set(written) <= {"grafana_port", "kafka_controller_port"}, written


def test_compose_hosts_are_network_aliases_and_listeners_are_all_interfaces(native, compose):
    stack, settings = compose
    assert stack.nginx.url == f"http://nginx.control:{native.nginx.port}"
    assert stack.nginx.listen_host == "0.0.0.0" and stack.nginx.modules_dir == native.nginx.modules_dir
    assert stack.inference_url("blue") == f"http://blue.serving:{native.colours['blue'].inference_port}"
    assert stack.management_url("green") == f"http://green.control:{native.colours['green'].management_port}"
    assert stack.drift.bootstrap == f"broker:{native.drift.broker_port}"
    assert settings.publish_address == "127.0.0.1"
    assert stack.var_dir == Path("/var/lib/twinserve") and stack.state_dir == Path("/var/lib/twinserve/state")


def test_the_admin_server_allows_the_admin_networks_only(compose, tmp_path):
    stack, settings = compose
    assert stack.nginx.admin_allow == ("172.29.2.0/24", "172.29.3.0/24")
    raw = yaml.safe_load((REPO_ROOT / COMPOSE_STACK).read_text())
    raw["extends"] = str(DEFAULT_STACK)
    raw["compose"]["admin_networks"] = ["control", "elsewhere"]
    with pytest.raises(ConfigError, match="admin_networks"):
        load(write(tmp_path / "c.yaml", raw))
    raw["compose"]["admin_networks"] = ["control"]
    raw["compose"]["networks"]["control"] = "172.29.2.0/33"
    with pytest.raises(ConfigError, match="compose.networks"):
        load(write(tmp_path / "c.yaml", raw))


def test_the_native_stack_keeps_its_defaults(native):
    assert native.nginx.listen_host == native.nginx.host == "127.0.0.1"
    assert native.nginx.admin_allow == ()
    assert native.colour_host("green") == native.torchserve.host
    assert native.management_url("green") == f"http://127.0.0.1:{native.colours['green'].management_port}"
    assert native.drift.bootstrap == f"127.0.0.1:{native.drift.broker_port}"


def write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_extends_is_relative_to_the_file_and_may_chain(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", yaml.safe_load(DEFAULT_STACK.read_text()))
    write(tmp_path / "sub" / "mid.yaml", {"extends": "../base.yaml", "nginx": {"port": 18080}})
    top = write(tmp_path / "sub" / "top.yaml", {"extends": "mid.yaml", "colours": {"blue": {"host": "b"}}})
    stack = load_stack(top)
    assert stack.nginx.port == 18080 and stack.nginx.admin_port == 8079
    assert stack.colour_host("blue") == "b" and stack.colour_host("green") == "127.0.0.1"


def test_an_overlay_that_extends_itself_is_refused(tmp_path):
    write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(ConfigError, match="extends"):
        load_stack(tmp_path / "a.yaml")


def test_an_overlay_cannot_reuse_a_port(tmp_path):
    write(tmp_path / "base.yaml", yaml.safe_load(DEFAULT_STACK.read_text()))
    clash = write(tmp_path / "o.yaml", {"extends": "base.yaml", "nginx": {"admin_port": 8180}})
    with pytest.raises(ConfigError, match="a port is used twice"):
        load_stack(clash)


def test_compose_settings_must_not_take_a_stack_port(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / COMPOSE_STACK).read_text())
    raw["extends"] = str(DEFAULT_STACK)
    raw["compose"]["grafana_port"] = 9090
    with pytest.raises(ConfigError, match="already a stack port"):
        load(write(tmp_path / "c.yaml", raw))


def test_compose_settings_must_name_every_host(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / COMPOSE_STACK).read_text())
    raw["extends"] = str(DEFAULT_STACK)
    del raw["compose"]["hosts"]["drift"]
    with pytest.raises(ConfigError, match="drift"):
        load(write(tmp_path / "c.yaml", raw))


def test_an_unknown_optional_field_is_still_refused():
    raw = yaml.safe_load(DEFAULT_STACK.read_text())
    raw["nginx"]["listne"] = "0.0.0.0"
    from twinserve.settings import parse_stack

    with pytest.raises(ConfigError, match="listne"):
        parse_stack(raw, Path("s.yaml"))


def test_prometheus_targets_each_service_by_name(compose):
    stack, settings = compose
    scrape = yaml.safe_load(render_prometheus(stack, hosts=prometheus_hosts(stack, settings)))
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    m = stack.monitoring
    assert targets == {
        f"blue.monitoring:{stack.colours['blue'].metrics_port}",
        f"green.monitoring:{stack.colours['green'].metrics_port}",
        f"nginx.monitoring:{stack.nginx.admin_port}",
        f"nginx_exporter:{m.nginx_exporter_port}",
        f"exporter:{m.exporter_port}",
        f"drift_consumer:{stack.drift.consumer_metrics_port}",
        f"node_exporter:{m.node_exporter_port}",
        f"prometheus:{m.prometheus_port}",
        f"alertmanager:{m.alertmanager_port}",
    }
    assert scrape["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"alertmanager:{m.alertmanager_port}"
    ]
