"""twinserve/settings.py: config/stack.yaml, the one source of ports, loaded and validated field by field."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.checkout import DEFAULT_STACK, REPO_ROOT
from tests.unit.stacks import RAW, all_ports, raw_copy, shifted
from twinserve.errors import ConfigError
from twinserve.runtime.render import render_nginx
from twinserve.settings import STACK_FILE, ModelSpec, load_stack, parse_size, parse_stack, project_dir


def test_the_default_stack_loads(monkeypatch):
    monkeypatch.delenv("TWINSERVE_STACK", raising=False)
    stack = load_stack()
    assert stack.path == DEFAULT_STACK
    assert stack.colour_names == ["blue", "green"]
    assert stack.other("blue") == "green" and stack.other("green") == "blue"
    assert stack.nginx.url == "http://127.0.0.1:8080"
    assert stack.inference_url("green") == "http://127.0.0.1:8280"
    assert stack.management_url("blue") == "http://127.0.0.1:8181"
    assert stack.models["regressor"].version == "1.0"
    assert stack.models["regressor"].dir == REPO_ROOT / "models" / "regressor"
    assert stack.var_dir == REPO_ROOT / "var"
    assert stack.colour_store("green") == REPO_ROOT / "var" / "green" / "model-store"
    assert len(set(all_ports(stack))) == len(all_ports(stack)) == 20


def test_twinserve_stack_names_another_file(tmp_path, monkeypatch):
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(shifted(RAW, 100)))
    monkeypatch.setenv("TWINSERVE_STACK", str(path))
    stack = load_stack()
    assert stack.path == path
    assert stack.nginx.port == 8180


def test_relative_paths_are_resolved_against_the_root(tmp_path):
    stack = parse_stack(raw_copy(), tmp_path / "s.yaml", root=tmp_path)
    assert stack.state_dir == tmp_path / "var" / "state"
    assert stack.model_store == tmp_path / "model_store"
    absolute = raw_copy()
    absolute["var_dir"] = "/srv/twinserve"
    assert parse_stack(absolute, tmp_path / "s.yaml", root=tmp_path).var_dir == Path("/srv/twinserve")


def test_version_is_always_a_string():
    raw = raw_copy()
    raw["models"]["regressor"]["version"] = 2.0  # unquoted in YAML
    assert parse_stack(raw, Path("s.yaml")).models["regressor"].version == "2.0"


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("colours", "green"), "inference_port"),  # same as blue's after the change below
        (("nginx",), "admin_port"),
        (("monitoring",), "exporter_port"),
        (("drift",), "broker_port"),
    ],
)
def test_a_port_used_twice_is_refused(where, key):
    raw = raw_copy()
    section = raw
    for name in where:
        section = section[name]
    section[key] = raw["colours"]["blue"]["inference_port"]
    with pytest.raises(ConfigError, match="a port is used twice"):
        parse_stack(raw, Path("s.yaml"))


@pytest.mark.parametrize(
    "colours",
    [
        ["blue"],
        ["blue", "green", "red"],
        ["Blue", "green"],
        ["blue", "green-2"],
    ],
)
def test_colours_must_be_exactly_two_lower_case_names(colours):
    raw = raw_copy()
    spec = raw["colours"]["blue"]
    raw["colours"] = {}
    for i, name in enumerate(colours):
        raw["colours"][name] = {k: v + 1000 * i for k, v in spec.items()}
    with pytest.raises(ConfigError, match="colours must be exactly two lower-case names"):
        parse_stack(raw, Path("s.yaml"))


@pytest.mark.parametrize("section", ["nginx", "torchserve", "monitoring", "drift", "colours", "models", "var_dir"])
def test_a_missing_section_is_refused(section):
    raw = raw_copy()
    del raw[section]
    with pytest.raises(ConfigError, match=f"missing or malformed section '{section}'"):
        parse_stack(raw, Path("s.yaml"))


def test_a_missing_field_is_named():
    raw = raw_copy()
    del raw["torchserve"]["job_queue_size"]
    with pytest.raises(ConfigError, match=r"torchserve: missing \['job_queue_size'\], unknown nothing"):
        parse_stack(raw, Path("s.yaml"))


def test_an_unknown_field_is_named():
    raw = raw_copy()
    raw["colours"]["green"]["debug_port"] = 8299
    with pytest.raises(ConfigError, match=r"colours.green: missing nothing, unknown \['debug_port'\]"):
        parse_stack(raw, Path("s.yaml"))


def test_no_model_is_refused():
    raw = raw_copy()
    raw["models"] = {}
    with pytest.raises(ConfigError, match="at least one model"):
        parse_stack(raw, Path("s.yaml"))


@pytest.mark.parametrize("raw", [None, [], "text"])
def test_a_stack_that_is_not_a_mapping(raw):
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_stack(raw, Path("s.yaml"))


def test_a_section_of_the_wrong_type():
    raw = raw_copy()
    raw["colours"] = ["blue", "green"]
    with pytest.raises(ConfigError, match="missing or malformed section"):
        parse_stack(raw, Path("s.yaml"))


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_stack(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nginx: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_stack(bad)


def test_config_errors_exit_with_the_usage_code():
    with pytest.raises(ConfigError) as caught:
        parse_stack(None, Path("s.yaml"))
    assert caught.value.exit_code == 2


# The project directory (settings.project_dir): $TWINSERVE_HOME if set, else the current directory;
# either must hold config/stack.yaml. Never the installed package's folder (test_pyproject_wheel.py).


def a_project(root):
    (root / "config").mkdir(parents=True)
    (root / STACK_FILE).write_text((REPO_ROOT / STACK_FILE).read_text())
    return root


def test_the_current_directory_when_no_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TWINSERVE_HOME", raising=False)
    monkeypatch.chdir(a_project(tmp_path))
    assert project_dir() == tmp_path.resolve()


def test_the_variable_wins_over_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(a_project(tmp_path / "here"))
    monkeypatch.setenv("TWINSERVE_HOME", str(a_project(tmp_path / "there")))
    assert project_dir() == (tmp_path / "there").resolve()


def test_no_project_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TWINSERVE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        project_dir()
    message = str(raised.value)
    assert "\n" not in message and "TWINSERVE_HOME" in message and str(tmp_path) in message


def test_a_variable_naming_no_project_is_refused_not_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # a project here: the variable must still not fall back to it
    monkeypatch.setenv("TWINSERVE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=rf"TWINSERVE_HOME={tmp_path} holds no config/stack.yaml"):
        project_dir()


def test_relative_paths_and_templates_come_from_the_project(tmp_path, monkeypatch):
    """A stack loaded for another project directory resolves var/ there and renders that project's template."""
    project = a_project(tmp_path / "project")
    (project / "nginx").mkdir()
    (project / "nginx" / "nginx.conf.j2").write_text("# the other project's template, port {{ nginx.port }}\n")
    monkeypatch.setenv("TWINSERVE_HOME", str(project))
    monkeypatch.delenv("TWINSERVE_STACK", raising=False)
    stack = load_stack()
    assert stack.project == project.resolve() and stack.var_dir == project.resolve() / "var"
    assert render_nginx(stack) == f"# the other project's template, port {stack.nginx.port}\n"


def test_a_command_outside_any_project_says_so_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "twinserve", "which"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "TWINSERVE_HOME" in result.stderr, result.stderr


# --- several models ----------------------------------------------------------


def test_the_stack_serves_every_model_and_regressor_by_default(tmp_path):
    stack = parse_stack(raw_copy(), tmp_path / "stack.yaml")
    assert list(stack.models) == ["regressor", "digits", "sentiment"]
    assert stack.default == "regressor" and stack.model() == "regressor" and stack.model("digits") == "digits"
    with pytest.raises(ConfigError, match="unknown model 'cats'; this stack serves regressor, digits, sentiment"):
        stack.model("cats")


def test_without_default_model_the_first_model_is_the_default(tmp_path):
    raw = raw_copy()
    del raw["default_model"]
    raw["models"] = dict(reversed(raw["models"].items()))
    assert parse_stack(raw, tmp_path / "s.yaml").default == "sentiment"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("default_model", "cats", "default_model 'cats' is not one of models"),
    ("models", {"Bad-Name": {"dir": "models/x", "version": "1"}}, "model names must be lower-case words"),
    ("models", {"a b": {"dir": "models/x", "version": "1"}}, "model names must be lower-case words"),
])  # fmt: skip
def test_bad_model_names_are_refused(tmp_path, field, value, message):
    raw = raw_copy()
    raw[field] = value
    if field == "models":
        raw.pop("default_model")
    with pytest.raises(ConfigError, match=message):
        parse_stack(raw, tmp_path / "s.yaml")


def test_a_model_s_pipeline_gates_are_the_stack_s_with_its_own_on_top(tmp_path):
    stack = parse_stack(raw_copy(), tmp_path / "s.yaml")
    assert stack.gates("regressor") == stack.pipeline and stack.gates("digits") == stack.pipeline
    text = stack.gates("sentiment")
    assert (text.load_users, text.load_max_p99_ms, text.load_min_rps, text.bake_max_p99_ms) == (8, 1500, 10, 1500)
    assert (text.load_seconds, text.bake_seconds) == (stack.pipeline.load_seconds, stack.pipeline.bake_seconds)
    raw = raw_copy()
    raw["pipeline"] = {"bake_seconds": 5, "load_max_p99_ms": 100}
    text = parse_stack(raw, tmp_path / "s.yaml").gates("sentiment")
    assert (text.bake_seconds, text.load_max_p99_ms) == (5, 1500)  # the stack's section, the model's on top


@pytest.mark.parametrize(("entry", "message"), [
    ({"pipeline": {"load_p99": 3}}, r"models.sentiment.pipeline: missing nothing, unknown \['load_p99'\]"),
    ({"pipeline": [1]}, "models.sentiment.pipeline: expected a mapping"),
    ({"gates": {}}, r"models.sentiment: unknown \['gates'\]; expected dir, version, pipeline"),
])  # fmt: skip
def test_a_bad_model_pipeline_section_is_named(tmp_path, entry, message):
    raw = raw_copy()
    raw["models"]["sentiment"].pop("pipeline", None)
    raw["models"]["sentiment"].update(entry)
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


def test_the_shipped_models_limits(tmp_path):
    stack = parse_stack(raw_copy(), tmp_path / "stack.yaml")
    assert stack.body_limits() == {"regressor": 65536, "digits": 262144, "sentiment": 131072}
