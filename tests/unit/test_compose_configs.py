"""compose/rendered/: the native templates rendered from the compose stack, committed, current and valid."""

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from twinserve.compose.configs import COMPOSE_STACK, NGINX_DIR, RENDERED_DIR, load, nginx_conf, rendered, write_rendered
from twinserve.runtime.render import PROMETHEUS_RULES, render_nginx
from twinserve.settings import load_stack

STACK, SETTINGS = load(REPO_ROOT / COMPOSE_STACK)
FILES = rendered(STACK, SETTINGS)
NGINX_MODULES = Path("/usr/share/nginx/modules")


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_files_are_current(name):
    """Fails after a template or stack change until `make render-compose` is run and committed."""
    assert (REPO_ROOT / RENDERED_DIR / name).read_text() == FILES[name], (
        f"compose/rendered/{name} is stale: make render-compose"
    )


def test_nothing_else_lives_in_the_rendered_folder():
    assert sorted(p.name for p in (REPO_ROOT / RENDERED_DIR).iterdir()) == sorted(FILES)


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


def test_compose_nginx_listens_inside_the_network_with_debian_s_lua_module():
    conf = FILES["nginx.conf"]
    assert f"listen 0.0.0.0:{STACK.nginx.port} reuseport" in conf
    assert f"listen 0.0.0.0:{STACK.nginx.admin_port};" in conf
    assert f"load_module {NGINX_MODULES}/ngx_http_lua_module.so;" in conf, "the image's Nginx is Debian's, as natively"
    for colour in STACK.colours:
        assert re.search(rf"upstream {colour} \{{\s*server {STACK.colour_host(colour)}:", conf)
    admin = conf[conf.index(f"listen 0.0.0.0:{STACK.nginx.admin_port};") :]
    allowed = re.findall(r"allow (\S+);", admin[: admin.index("deny all;")])
    assert allowed == ["127.0.0.0/8", "::1", *(SETTINGS.networks[n] for n in SETTINGS.admin_networks)]
    assert f'{STACK.default} = "{STACK.state_dir / f"production.{STACK.default}"}"' in conf
    assert f'lua_package_path "{NGINX_DIR}/lua/?.lua;;";' in conf


def test_compose_nginx_names_no_path_of_this_checkout():
    """The repository's nginx/ folder (Lua files) is where the image copies it, not where this clone is."""

    def names_checkout(conf: str) -> bool:
        return re.search(rf"(?<![\w./-]){re.escape(str(REPO_ROOT))}/", conf) is not None

    assert not names_checkout(FILES["nginx.conf"])
    stack = dataclasses.replace(STACK, var_dir=REPO_ROOT / "nginx" / "lua")  # a template naming a file of nginx/
    assert names_checkout(render_nginx(stack))
    assert f"{NGINX_DIR}/lua" in nginx_conf(stack) and not names_checkout(nginx_conf(stack))
    # Not the same letters inside another path: a checkout at /twinserve, the var volume at /var/lib/twinserve.
    at_twinserve = dataclasses.replace(STACK, nginx=dataclasses.replace(STACK.nginx, lua_dir="/twinserve/nginx/lua"))
    assert nginx_conf(at_twinserve, root=Path("/twinserve")) == FILES["nginx.conf"].split("\n", 1)[1]


@pytest.mark.skipif(
    shutil.which("nginx") is None or not (NGINX_MODULES / "ngx_http_lua_module.so").is_file(),
    reason="nginx with Lua not installed (make install)",
)
def test_compose_nginx_conf_passes_nginx_t(tmp_path):
    """Debian's Nginx with its Lua module checks the file the image bakes in, with the container
    paths moved under tmp_path and the colours' names resolved to loopback."""
    conf = FILES["nginx.conf"].replace(str(STACK.var_dir), str(tmp_path)).replace(NGINX_DIR, str(REPO_ROOT / "nginx"))
    for colour in STACK.colours:
        conf = conf.replace(f"server {STACK.colour_host(colour)}:", "server 127.0.0.1:")
    for d in ("nginx/tmp", "logs", "state"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "nginx.conf").write_text(conf)
    check = [shutil.which("nginx"), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    result = subprocess.run([*check, "-e", str(tmp_path / "logs" / "error.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make install)")
def test_compose_prometheus_yml_passes_promtool_with_the_native_rules(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(FILES["prometheus.yml"].replace(SETTINGS.prometheus_rules, str(REPO_ROOT / PROMETHEUS_RULES)))
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"SUCCESS: {len(list((REPO_ROOT / PROMETHEUS_RULES).glob('*.yml')))} rule files found"
        in result.stdout + result.stderr
    )


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed (make install)")
def test_compose_alertmanager_yml_passes_amtool(tmp_path):
    config = tmp_path / "alertmanager.yml"
    config.write_text(FILES["alertmanager.yml"])
    result = subprocess.run(["amtool", "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    port = STACK.monitoring.alert_receiver_port
    assert f"url: http://{SETTINGS.hosts['alert_receiver']}:{port}/alerts" in FILES["alertmanager.yml"]
