"""pyproject.toml: a non-editable install works outside the checkout: the wheel holds every package and nothing is
looked up beside the installed code (templates, Lua, rules, handlers: the project directory, settings.py).

The wheel is built from a copy of the sources (pip wheel would leave build/ in the checkout) and
installed with --no-deps into a new venv in tmp_path. Its dependencies are the checkout's .venv's,
reached through a .pth line after the venv's own site-packages, so nothing is downloaded; the
.venv's editable twinserve is not on that path (its finder is installed by a .pth file there,
which Python reads only in a site directory), and the test checks that twinserve is the wheel's.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.checkout import REPO_ROOT

MODULES = """
import importlib, json, pkgutil, twinserve, archiver
names = ["twinserve", "archiver"]
for top in (twinserve, archiver):
    names += [m.name for m in pkgutil.walk_packages(top.__path__, top.__name__ + ".")]
names = [n for n in names if not n.endswith("__main__")]  # a __main__ runs its command when imported
print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))
"""
RENDER = """
from twinserve.runtime.render import render_nginx
from twinserve.settings import load_stack
stack = load_stack()
print(stack.project)
print(render_nginx(stack))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new venv holding the wheel of this checkout; returns the venv's folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for folder in ("twinserve", "archiver"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", source / "pyproject.toml")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = (root / "dist").glob("twinserve-*.whl")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())  # fmt: skip
    (site / "checkout-venv-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return env_dir


def run(env_dir: Path, argv: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    """argv with the venv's bin first on PATH, from `cwd`, with no twinserve variable but `env`'s."""
    base = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(argv, cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_the_wheel_holds_every_package_and_no_data(installed):
    (wheel,) = installed.parent.joinpath("dist").glob("twinserve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    sources = [
        p.relative_to(REPO_ROOT).as_posix() for f in ("twinserve", "archiver") for p in (REPO_ROOT / f).rglob("*.py")
    ]
    assert set(sources) <= set(names), set(sources) - set(names)
    assert not [n for n in names if n.endswith((".j2", ".lua", ".yml", ".yaml", ".xml"))]


def test_twinserve_help_outside_the_checkout(installed, tmp_path):
    result = run(installed, ["twinserve", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: twinserve")


def test_every_module_imports_from_the_venv_outside_the_checkout(installed, tmp_path):
    """Every module, not only the packages: none may need handlers/, simulator/ or peers/ beside it."""
    result = run(installed, [str(installed / "bin" / "python"), "-c", MODULES], tmp_path)
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    expected = {"twinserve.store", "twinserve.drift", "twinserve.runtime", "twinserve.release", "twinserve.observe",
                "twinserve.compose", "twinserve.pipeline", "twinserve.tools", "twinserve.tools.bench"}  # fmt: skip
    assert expected <= set(files)
    assert {"twinserve.tools.bench.peers", "twinserve.cli.drift_demo", "twinserve.drift.consumer"} <= set(files)
    outside = {name: f for name, f in files.items() if not Path(f).is_relative_to(installed)}
    assert not outside, f"imported from outside the new venv: {outside}"


def test_nginx_config_is_rendered_from_the_project_directory(installed, tmp_path):
    python = str(installed / "bin" / "python")
    result = run(installed, [python, "-c", RENDER], tmp_path, TWINSERVE_HOME=str(REPO_ROOT))
    assert result.returncode == 0, result.stderr
    project, conf = result.stdout.split("\n", 1)
    assert project == str(REPO_ROOT)
    assert f"{REPO_ROOT}/nginx/lua" in conf and str(installed) not in conf
    port = yaml.safe_load((REPO_ROOT / "config" / "stack.yaml").read_text())["nginx"]["port"]
    assert f"listen 127.0.0.1:{port} " in conf  # from the project's stack description


def test_outside_any_project_a_command_says_which_variable_to_set(installed, tmp_path):
    result = run(installed, ["twinserve", "which"], tmp_path)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "set TWINSERVE_HOME" in result.stderr, result.stderr
