"""compose/rendered/: the native templates rendered from the compose stack, committed, current and valid."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from twinserve.compose import COMPOSE_STACK, RENDERED_DIR, load, rendered, write_rendered
from twinserve.render import NGINX_LUA, PROMETHEUS_RULES, render_nginx
from twinserve.settings import DEFAULT_STACK, load_stack

STACK, SETTINGS = load(COMPOSE_STACK)
FILES = rendered(STACK, SETTINGS)
NGINX_MODULES = Path("/usr/share/nginx/modules")


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_files_are_current(name):
    """Fails after a template or stack change until `make render-compose` is run and committed."""
    assert (RENDERED_DIR / name).read_text() == FILES[name], f"compose/rendered/{name} is stale: make render-compose"


def test_nothing_else_lives_in_the_rendered_folder():
    assert sorted(p.name for p in RENDERED_DIR.iterdir()) == sorted(FILES)


def test_write_rendered_rewrites_only_what_changed(tmp_path):
    assert write_rendered(tmp_path).endswith(f"rewrote {', '.join(FILES)}")
    assert write_rendered(tmp_path).endswith("up to date")
    (tmp_path / "nginx.conf").write_text("stale")
    assert write_rendered(tmp_path).endswith("rewrote nginx.conf")
    assert (tmp_path / "nginx.conf").read_text() == FILES["nginx.conf"]


def routes(conf: str) -> list[str]:
    """Every location, error page, proxy target and limit: what a client can reach and how."""
    keep = ("location", "error_page", "proxy_pass", "limit_req", "client_max_body_size", "return", "if (")
    return [line.strip() for line in conf.splitlines() if line.strip().startswith(keep)]


def test_compose_nginx_has_the_native_routes():
    native = routes(render_nginx(load_stack(DEFAULT_STACK)))
    assert native and routes(FILES["nginx.conf"]) == native


def test_compose_nginx_listens_inside_the_network_and_loads_no_module():
    conf = FILES["nginx.conf"]
    assert f"listen 0.0.0.0:{STACK.nginx.port} reuseport" in conf
    assert f"listen 0.0.0.0:{STACK.nginx.admin_port};" in conf
    assert "load_module" not in conf
    for colour in STACK.colours:
        assert re.search(rf"upstream {colour} \{{\s*server {STACK.colour_host(colour)}:", conf)
    admin = conf[conf.index(f"listen 0.0.0.0:{STACK.nginx.admin_port};") :]
    allowed = re.findall(r"allow (\S+);", admin[: admin.index("deny all;")])
    assert allowed == ["127.0.0.0/8", "::1", *STACK.nginx.admin_allow]
    assert f'production_file = "{STACK.state_dir / "production"}"' in conf
    assert f'lua_package_path "{STACK.nginx.lua_dir}/?.lua;;";' in conf


@pytest.mark.skipif(
    shutil.which("nginx") is None or not (NGINX_MODULES / "ngx_http_lua_module.so").is_file(),
    reason="nginx with Lua not installed (make install)",
)
def test_compose_nginx_conf_passes_nginx_t(tmp_path):
    """OpenResty is not here: Debian's Nginx with its Lua module checks the same file, with the
    container paths moved under tmp_path and the service names resolved to loopback."""
    conf = FILES["nginx.conf"].replace(str(STACK.var_dir), str(tmp_path))
    conf = conf.replace(STACK.nginx.lua_dir, str(NGINX_LUA))  # docker-compose.yml mounts nginx/lua there
    for colour in STACK.colours:
        conf = conf.replace(f"server {STACK.colour_host(colour)}:", "server 127.0.0.1:")
    modules = "".join(f"load_module {NGINX_MODULES / m};\n" for m in ("ndk_http_module.so", "ngx_http_lua_module.so"))
    for d in ("nginx/tmp", "logs", "state"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "nginx.conf").write_text(modules + conf)
    check = [shutil.which("nginx"), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    result = subprocess.run([*check, "-e", str(tmp_path / "logs" / "error.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make install)")
def test_compose_prometheus_yml_passes_promtool_with_the_native_rules(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(FILES["prometheus.yml"].replace(SETTINGS.prometheus_rules, str(PROMETHEUS_RULES)))
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list(PROMETHEUS_RULES.glob('*.yml')))} rule files found" in result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed (make install)")
def test_compose_alertmanager_yml_passes_amtool(tmp_path):
    config = tmp_path / "alertmanager.yml"
    config.write_text(FILES["alertmanager.yml"])
    result = subprocess.run(["amtool", "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    port = STACK.monitoring.alert_receiver_port
    assert f"url: http://{SETTINGS.hosts['alert_receiver']}:{port}/alerts" in FILES["alertmanager.yml"]
