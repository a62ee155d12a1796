"""twinserve/runtime/render.py: the rendered Nginx and TorchServe configs take every port and address
from the stack description, and Nginx accepts its config."""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from tests.unit.stacks import all_ports, raw_copy, shifted
from twinserve.errors import ConfigError
from twinserve.runtime.render import (
    ALERTMANAGER_TEMPLATE,
    EARLY_ERRORS,
    NGINX_ERRORS,
    NGINX_TEMPLATE,
    PROMETHEUS_TEMPLATE,
    PROXIED_ERRORS,
    TORCHSERVE_TEMPLATE,
    lua_literal,
    nginx_lua_config,
    render_nginx,
    render_torchserve,
    routes,
    unknown_model_body,
)
from twinserve.settings import load_stack, parse_stack


@pytest.fixture
def stack(tmp_path):
    raw = shifted(raw_copy(), 30000)
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    return parse_stack(raw, tmp_path / "stack.yaml")


def test_nginx_listens_and_proxies_on_the_stack_ports(stack):
    text = render_nginx(stack)
    assert f"listen 127.0.0.1:{stack.nginx.port} reuseport" in text
    assert f"listen 127.0.0.1:{stack.nginx.admin_port};" in text
    for name, colour in stack.colours.items():
        assert re.search(rf"upstream {name} \{{\s*server 127\.0\.0\.1:{colour.inference_port};", text)
    assert "proxy_pass http://$colour/predictions/regressor;" in text
    for model in stack.models:
        assert f'{model} = "{stack.state_dir / f"production.{model}"}"' in text
    assert "legacy_production_file" not in text  # the retired single-model file: never read
    assert f'token_file = "{stack.state_dir / "admin-token"}"' in text
    assert f"pid {stack.var_dir / 'nginx' / 'nginx.pid'};" in text


def test_nginx_mentions_no_port_but_the_stack_ones(stack):
    """Rendered from a stack with every port moved: none of the default ports may be left over."""
    text = render_nginx(stack)
    for port in all_ports(load_stack(DEFAULT_STACK)):
        assert not re.search(rf"(?<!\d){port}(?!\d)", text), port


def test_torchserve_config_takes_every_address_from_the_stack(stack):
    colour = stack.colours["green"]
    text = render_torchserve(stack, "green", {"regressor": "regressor-1.0.mar"})
    lines = set(text.splitlines())
    assert f"inference_address=http://127.0.0.1:{colour.inference_port}" in lines
    assert f"management_address=http://127.0.0.1:{colour.management_port}" in lines
    assert f"metrics_address=http://127.0.0.1:{colour.metrics_port}" in lines
    assert f"grpc_inference_port={colour.grpc_inference_port}" in lines
    assert f"grpc_management_port={colour.grpc_management_port}" in lines
    assert f"model_store={stack.colour_store('green')}" in lines
    assert "load_models=regressor=regressor-1.0.mar" in lines
    assert f"job_queue_size={stack.torchserve.job_queue_size}" in lines
    blue = stack.colours["blue"]
    for port in blue.ports:
        assert str(port) not in text


def test_torchserve_allowed_urls_is_the_colour_store_only(stack):
    text = render_torchserve(stack, "blue", {})
    [line] = [x for x in text.splitlines() if x.startswith("allowed_urls=")]
    assert line == rf"allowed_urls=^file://{stack.colour_store('blue')}/[a-z][a-z0-9_]*-[0-9.]+\\.mar$"


@pytest.mark.parametrize(
    "template",
    [
        (REPO_ROOT / NGINX_TEMPLATE),
        (REPO_ROOT / TORCHSERVE_TEMPLATE),
        (REPO_ROOT / PROMETHEUS_TEMPLATE),
        (REPO_ROOT / ALERTMANAGER_TEMPLATE),
    ],
    ids=lambda p: p.name,
)
def test_no_template_writes_a_port_of_the_stack(template):
    text = template.read_text()
    found = [port for port in all_ports(load_stack(DEFAULT_STACK)) if re.search(rf"(?<!\d){port}(?!\d)", text)]
    assert found == []


def test_every_error_nginx_answers_itself_is_json(stack):
    text = render_nginx(stack)
    for code, (status, message) in NGINX_ERRORS.items():
        target = f"/.errors/{code}" if code in EARLY_ERRORS else f"@error{code}"
        status_change = f"={status} " if status != code else ""  # else Nginx keeps the original code
        assert f"error_page {code} {status_change}{target};" in text
        assert f"""return {status} '{{"error": "{message}"}}\\n';""" in text or code == 413
    assert "Retry-After 1" in text.split("location @error507")[1].split("}")[0]
    # On the proxied routes every answer of TorchServe passes (the handler's 400/413/500 name the bad
    # input); edge.lua replaces its frontend's 400/503/507 (no X-Model-Version) with a JSON 503.
    predict = text.split("location = /predict {")[1].split("\n        }\n")[0]
    assert "proxy_intercept_errors off;" in predict
    assert set(re.findall(r"error_page (\d+) ", predict)) == {str(c) for c in PROXIED_ERRORS}
    assert not {"400", "404", "500", "507"} & set(re.findall(r"error_page (\d+) ", predict))
    frontend = nginx_lua_config(stack)["frontend_errors"]
    assert frontend == [[503, NGINX_ERRORS[503][1]], [507, NGINX_ERRORS[507][1]]]


def test_every_answer_is_counted_and_logged_at_server_level(stack):
    """Not per location: error_page's named locations must be counted too."""
    public = render_nginx(stack).split("    server {")[1]
    assert public.count('log_by_lua_block { require("twinserve.edge").observe() }') == 1
    assert public.count("access_log ") == 3 and "access_log off" not in public
    admin = render_nginx(stack).split("    server {")[2]
    assert "access_log " in admin and " admin;" in admin  # a format with no unset variable: no warning per scrape


@pytest.mark.parametrize(
    ("value", "lua"),
    [
        ({"a": ["x", 1, 0.5, True]}, '{ a = { "x", 1, 0.5, true } }'),
        ('quo"te\\back', '"quo\\"te\\\\back"'),
        ({"503": "retry"}, '{ ["503"] = "retry" }'),  # not a Lua name: `503 = ...` would not parse
    ],
)
def test_lua_literal(value, lua):
    assert lua_literal(value) == lua


@pytest.mark.parametrize("bad", ["new\nline", "caf\u00e9"])
def test_lua_literal_refuses_what_it_cannot_quote(bad):
    with pytest.raises(ConfigError, match="printable ASCII"):
        lua_literal(bad)


@pytest.mark.skipif(
    shutil.which("nginx") is None or not Path("/usr/share/nginx/modules/ngx_http_lua_module.so").is_file(),
    reason="nginx with Lua not installed (make install)",
)
def test_native_nginx_conf_passes_nginx_t_with_its_lua(stack):
    """nginx -t checks the configuration; it does not run init_by_lua (Debian's module: a Lua syntax
    error there passes -t and stops Nginx at start), so Lua 5.1 evaluates the rendered init block too."""
    for d in ("nginx/tmp", "logs"):
        (stack.var_dir / d).mkdir(parents=True, exist_ok=True)
    conf = stack.var_dir / "nginx.conf"
    conf.write_text(render_nginx(stack))
    check = [shutil.which("nginx"), "-t", "-p", str(stack.var_dir), "-c", str(conf)]
    result = subprocess.run([*check, "-e", str(stack.var_dir / "logs" / "error.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    init = re.search(r"init_by_lua_block \{ (.*) \}\n", conf.read_text()).group(1)
    got = "got = {}\npackage.loaded['twinserve.edge'] = { init = function(cfg) got = cfg end }\n"
    script = got + init + "\nprint(got.default_model, #got.models, got.frontend_errors[1][1])\n"
    lua = subprocess.run(["lua5.1", "-"], input=script, capture_output=True, text=True)
    assert lua.returncode == 0, lua.stderr
    assert lua.stdout.split() == [stack.default, str(len(stack.models)), "503"]


def test_torchserve_token_authorization_is_on_and_keys_outlive_the_process(stack):
    lines = set(render_torchserve(stack, "blue", {}).splitlines())
    assert "disable_token_authorization=false" in lines
    [expiry] = [x for x in lines if x.startswith("token_expiration_min=")]
    assert int(expiry.split("=")[1]) >= 5 * 365 * 24 * 60  # a restart, not a clock, renews the keys


def test_nginx_carries_the_inference_key_and_never_the_client_authorization(stack):
    text = render_nginx(stack)
    for path in ("/predict", "/test/predict", "/healthz"):
        location = text.split(f"location = {path} {{")[1].split("\n        }\n")[0]
        assert "proxy_set_header Authorization $ts_authorization;" in location
    for colour in stack.colours:
        assert f'{colour} = "{stack.colour_dir(colour) / "key_file.json"}"' in text


# --- several models: routes, body limits, unknown models ---------------------


def test_every_model_has_its_routes_and_the_default_keeps_the_short_ones(stack):
    found = {(r.path, r.route, r.model) for r in routes(stack)}
    assert found == {
        ("/predict", "production", "regressor"), ("/test/predict", "test", "regressor"),
        ("/predict/regressor", "production", "regressor"), ("/test/predict/regressor", "test", "regressor"),
        ("/predict/digits", "production", "digits"), ("/test/predict/digits", "test", "digits"),
        ("/predict/sentiment", "production", "sentiment"), ("/test/predict/sentiment", "test", "sentiment"),
    }  # fmt: skip


def location(text: str, path: str) -> str:
    return text.split(f"location = {path} {{")[1].split("\n        }\n")[0]


def test_each_route_proxies_to_its_model_with_its_own_body_limit(stack):
    text = render_nginx(stack)
    cases = [("/predict/digits", "digits", 262144), ("/test/predict/digits", "digits", 262144),
             ("/predict", "regressor", 65536), ("/predict/regressor", "regressor", 65536)]  # fmt: skip
    for path, model, limit in cases:
        block = location(text, path)
        assert f"proxy_pass http://$colour/predictions/{model};" in block
        assert f"client_max_body_size {limit};" in block
        assert f"error_page 413 @error413_{model};" in block
        route = "test" if path.startswith("/test") else "production"
        assert f'require("twinserve.edge").route("{route}", "{model}")' in block
    assert re.search(r"location @error413_digits \{[^}]*at most 262144 bytes for digits", text)


def test_an_unknown_model_gets_a_404_listing_the_models(stack):
    text = render_nginx(stack)
    body = json.loads(unknown_model_body(stack))
    assert body["models"] == ["regressor", "digits", "sentiment"] and "regressor, digits, sentiment" in body["error"]
    for prefix in ("/predict/", "/test/predict/"):
        block = text.split(f"location ^~ {prefix} {{")[1].split("\n        }")[0]
        assert f"return 404 '{unknown_model_body(stack)}\\n';" in block


def test_torchserve_takes_the_largest_model_s_body(stack):
    assert "max_request_size=262144" in render_torchserve(stack, "blue", {}).splitlines()


def test_a_model_is_cached_on_its_production_routes_when_its_settings_say_so(stack, tmp_path):
    config = nginx_lua_config(stack)
    assert config["cached_models"] == ["sentiment"]  # deterministic: true; the others say cache: false
    assert config["cache_max_entry"] == 64 * 1024
    text = render_nginx(stack)
    assert "lua_shared_dict twinserve_cache 67108864;" in text
    for r in routes(stack):
        block = location(text, r.path)
        assert f'require("twinserve.edge").lookup("{r.model}")' in block
        assert f'require("twinserve.edge").header_filter("{r.model}")' in block

    own = tmp_path / "models" / "digits"
    shutil.copytree(stack.models["digits"].dir, own, ignore=shutil.ignore_patterns("artifacts", "samples"))
    cfg = own / "model-config.yaml"
    original = cfg.read_text()
    on = dataclasses.replace(
        stack, models={**stack.models, "digits": dataclasses.replace(stack.models["digits"], dir=own)}
    )
    cfg.write_text(original.replace("cache: false", "cache: true"))
    assert nginx_lua_config(on)["cached_models"] == ["digits", "sentiment"]
    cfg.write_text(original.replace("  cache: false", "  # no cache key: deterministic decides"))
    assert nginx_lua_config(on)["cached_models"] == ["digits", "sentiment"]
    cfg.write_text(original.replace("cache: false", "cache: maybe"))
    with pytest.raises(ConfigError, match=r"model-config.yaml: twinserve.cache is 'maybe'; expected true or false"):
        nginx_lua_config(on)
