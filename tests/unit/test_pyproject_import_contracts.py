"""pyproject.toml's import contracts (import-linter, `make lint`) hold, and they can fail.

Each case copies the packages and pyproject.toml into tmp_path, adds one import that breaks a
rule of twinserve/__init__.py, and runs lint-imports there: the contract named must be BROKEN.
lint-imports puts its working directory first on sys.path, so the copy is what it analyses.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkout import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
TOOLS = "the product never imports twinserve.tools"
LAYERS = "twinserve's layers: a package imports only those below it"
HANDLERS = "handlers/ (TorchServe's side) never import twinserve or archiver"
ARCHIVER = "the archiver never imports twinserve"
CYCLES = "no import cycles among twinserve's packages and modules, tools/ included"


def copy_project(root: Path) -> Path:
    for folder in ("twinserve", "archiver", "handlers"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root, capture_output=True, text=True, timeout=120
    )


def add_import(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")


def test_the_unmodified_tree_keeps_every_contract(tmp_path):
    result = lint(copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (LAYERS, TOOLS, HANDLERS, ARCHIVER, CYCLES):
        assert f"{name} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken", "named"),
    [
        ("twinserve/runtime/processes.py", "import twinserve.tools.wrk", TOOLS, "twinserve.tools.wrk"),
        ("archiver/build.py", "import twinserve.tools.swapcheck", TOOLS, "twinserve.tools.swapcheck"),
        ("twinserve/store/state.py", "import twinserve.runtime.processes", LAYERS, "twinserve.runtime.processes"),
        ("twinserve/settings.py", "import twinserve.store.state", LAYERS, "twinserve.store.state"),
        ("handlers/tabular_codec.py", "import twinserve.settings", HANDLERS, "twinserve.settings"),
        ("handlers/twinserve_handler.py", "from archiver import build", HANDLERS, "archiver"),
        ("twinserve/runtime/processes.py", "import twinserve.runtime.stack", CYCLES, "twinserve.runtime"),
    ],
    ids=[
        "runtime-imports-a-tool",
        "archiver-imports-a-tool",
        "store-imports-runtime",
        "settings-imports-store",
        "handler-imports-twinserve",
        "handler-imports-archiver",
        "cycle-inside-runtime",
    ],  # fmt: skip
)
def test_a_forbidden_import_breaks_the_contract_that_names_it(tmp_path, module, line, broken, named):
    root = copy_project(tmp_path)
    add_import(root / module, line)
    result = lint(root)
    assert result.returncode != 0
    assert f"{broken} BROKEN" in result.stdout, result.stdout
    assert named in result.stdout.split(f"{broken}\n", 1)[1]  # the report names the import


def test_lazy_imports_count_too(tmp_path):
    """An import inside a function is an import: the contracts see it (grimp reads every import statement)."""
    root = copy_project(tmp_path)
    add_import(root / "twinserve/release/deploy.py", "def _later():\n    from twinserve.tools import wrk")
    result = lint(root)
    assert f"{TOOLS} BROKEN" in result.stdout
