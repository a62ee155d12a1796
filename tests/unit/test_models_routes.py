"""Several models per colour: the stack names them, each gets its own routes, body limit and
entry in Nginx's switch (rendered config and Lua, outside Nginx)."""

import copy
import json
import re
import shutil

import pytest
import yaml

from tests.unit.test_nginx_lua import lua
from twinserve.errors import ConfigError
from twinserve.runtime.render import render_nginx, render_torchserve, routes, unknown_model_body
from twinserve.settings import DEFAULT_STACK, ModelSpec, parse_size, parse_stack

RAW = yaml.safe_load(DEFAULT_STACK.read_text())


@pytest.fixture
def stack(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["var_dir"], raw["state_dir"] = str(tmp_path / "var"), str(tmp_path / "var" / "state")
    return parse_stack(raw, tmp_path / "stack.yaml")


def test_the_stack_serves_both_models_and_regressor_by_default(stack):
    assert list(stack.models) == ["regressor", "digits"]
    assert stack.default == "regressor" and stack.model() == "regressor" and stack.model("digits") == "digits"
    with pytest.raises(ConfigError, match="unknown model 'cats'; this stack serves regressor, digits"):
        stack.model("cats")


def test_without_default_model_the_first_model_is_the_default(tmp_path):
    raw = copy.deepcopy(RAW)
    del raw["default_model"]
    raw["models"] = dict(reversed(raw["models"].items()))
    assert parse_stack(raw, tmp_path / "s.yaml").default == "digits"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("default_model", "cats", "default_model 'cats' is not one of models"),
    ("models", {"Bad-Name": {"dir": "models/x", "version": "1"}}, "model names must be lower-case words"),
    ("models", {"a b": {"dir": "models/x", "version": "1"}}, "model names must be lower-case words"),
])  # fmt: skip
def test_bad_model_names_are_refused(tmp_path, field, value, message):
    raw = copy.deepcopy(RAW)
    raw[field] = value
    if field == "models":
        raw.pop("default_model")
    with pytest.raises(ConfigError, match=message):
        parse_stack(raw, tmp_path / "s.yaml")


@pytest.mark.parametrize(("value", "size"), [(65536, 65536), ("64k", 65536), ("1m", 1 << 20), (" 2K ", 2048)])
def test_sizes(value, size):
    assert parse_size(value, "x") == size


@pytest.mark.parametrize("value", ["", "1g", "-1", "1.5k", True, None])
def test_bad_sizes(value):
    with pytest.raises(ConfigError, match="not a size"):
        parse_size(value, "x")


@pytest.mark.parametrize(("config", "limit"), [
    ({"twinserve": {"max_body": 1000}, "handler": {"max_bytes": 5}}, 1000),  # twinserve: wins
    ({"handler": {"max_bytes": 262144}}, 262144),
    ({"twinserve": {"handler": "tabular"}}, 65536),  # the stack's nginx.max_body
])  # fmt: skip
def test_a_model_s_body_limit_comes_from_its_model_config(tmp_path, config, limit):
    (tmp_path / "model-config.yaml").write_text(yaml.safe_dump(config))
    assert ModelSpec("m", tmp_path, "1.0").body_limit("64k") == limit


def test_the_shipped_models_limits(stack):
    assert stack.body_limits() == {"regressor": 65536, "digits": 262144}


def test_every_model_has_its_routes_and_the_default_keeps_the_short_ones(stack):
    found = {(r.path, r.route, r.model) for r in routes(stack)}
    assert found == {
        ("/predict", "production", "regressor"), ("/test/predict", "test", "regressor"),
        ("/predict/regressor", "production", "regressor"), ("/test/predict/regressor", "test", "regressor"),
        ("/predict/digits", "production", "digits"), ("/test/predict/digits", "test", "digits"),
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
    assert body["models"] == ["regressor", "digits"] and "regressor, digits" in body["error"]
    for prefix in ("/predict/", "/test/predict/"):
        block = text.split(f"location ^~ {prefix} {{")[1].split("\n        }")[0]
        assert f"return 404 '{unknown_model_body(stack)}\\n';" in block


def test_torchserve_takes_the_largest_model_s_body(stack):
    assert "max_request_size=262144" in render_torchserve(stack, "blue", {}).splitlines()


FAKE_DICT = """
local shared = { data = {} }
function shared:set(k, v) self.data[k] = v end
function shared:get(k) return self.data[k] end
ngx.shared.t = shared
"""


def switch_init(tmp_path, files: dict[str, str | None], legacy: str | None = None) -> dict:
    """Run switch.init on state files; returns {model: colour or the problem}."""
    paths = {}
    for model, text in files.items():
        paths[model] = str(tmp_path / f"production.{model}")
        if text is not None:
            (tmp_path / f"production.{model}").write_text(text)
    if legacy is not None:
        (tmp_path / "production").write_text(legacy)
    cfg = {
        "dict": "t", "colours": ["blue", "green"], "models": list(files), "default_model": next(iter(files)),
        "production_files": paths, "legacy_production_file": str(tmp_path / "production"),
        "token_file": str(tmp_path / "none"), "key_files": {},
    }  # fmt: skip
    from twinserve.runtime.render import lua_literal

    out = lua(
        FAKE_DICT
        + f"local s = require('twinserve.switch')\ns.init({lua_literal(cfg)})\n"
        + "".join(f"print(s.production('{m}') or shared:get('problem|{m}'))\n" for m in files)
    )
    return dict(zip(files, out.splitlines(), strict=True))


@pytest.mark.skipif(shutil.which("lua5.1") is None, reason="lua5.1 not installed")
def test_nginx_keeps_one_colour_per_model_and_one_bad_file_is_that_model_s_only(tmp_path):
    got = switch_init(tmp_path, {"regressor": "green\n", "digits": "purple\n", "text": None})
    assert got["regressor"] == "green"
    assert got["digits"].startswith(f"{tmp_path}/production.digits says 'purple'")
    assert got["text"].startswith(f"{tmp_path}/production.text is missing")


@pytest.mark.skipif(shutil.which("lua5.1") is None, reason="lua5.1 not installed")
def test_nginx_reads_the_single_model_file_as_the_default_model_s(tmp_path):
    got = switch_init(tmp_path, {"regressor": None, "digits": "blue\n"}, legacy="green\n")
    assert got == {"regressor": "green", "digits": "blue"}
