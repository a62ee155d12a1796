"""A real stack for the integration tests: both TorchServe colours and Nginx,
on free ports, with their own state, logs and model store under tmp.

The stack is the repository's config/stack.yaml with ports and paths replaced,
started and stopped by the same code as `make up` / `make down`.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archiver import build_archive
from tests.checkout import REPO_ROOT
from tests.integration.helpers import stack_description
from tests.ports import free_ports
from twinserve.runtime import nginx
from twinserve.runtime import stack as stack_mod
from twinserve.settings import Stack, parse_stack
from twinserve.store.state import initialise

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items):
    """test_supervision.py last: it kills every process of the stack, and ends with `make down` and `make up`."""
    items.sort(key=lambda item: item.path.name == "test_supervision.py")  # stable: the rest keep their order


def train(model_dir: Path, seed: int) -> None:
    subprocess.run(
        [sys.executable, str(model_dir / "train.py"), "--seed", str(seed), "--epochs", "10"],
        check=True,
        capture_output=True,
    )


def train_from_repository(model_dir: Path, seed: int) -> None:
    """A model trained by the repository's own train.py into model_dir/artifacts (digits' and sentiment's
    import the handlers' codecs from handlers/; sentiment's reads its data from the repository)."""
    script = REPO_ROOT / "models" / model_dir.name / "train.py"
    argv = [sys.executable, str(script), "--seed", str(seed), "--out", str(model_dir / "artifacts")]
    subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """Model directories copied from models/: regressor with archives 1.0 and 1.1, digits and sentiment
    with 1.0 (sentiment's training, ~40 s, is paid once per session: test_text_model serves this archive)."""
    root = tmp_path_factory.mktemp("twinserve")
    model_dir = root / "models" / "regressor"
    shutil.copytree(REPO_ROOT / "models" / "regressor", model_dir, ignore=shutil.ignore_patterns("artifacts"))
    train(model_dir, seed=42)
    build_archive(model_dir, "1.0", root / "model_store")
    train(model_dir, seed=7)
    build_archive(model_dir, "1.1", root / "model_store")
    for name in ("digits", "sentiment"):
        model_dir = root / "models" / name
        shutil.copytree(REPO_ROOT / "models" / name, model_dir, ignore=shutil.ignore_patterns("artifacts", "data"))
        train_from_repository(model_dir, seed=42)
        build_archive(model_dir, "1.0", root / "model_store")
    return root


@pytest.fixture(scope="session")
def stack(workdir) -> Stack:
    """The running stack; always stopped at the end of the session."""
    raw = stack_description(workdir)
    path = workdir / "stack.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))  # models in the order of config/stack.yaml
    s = parse_stack(raw, path)
    try:
        stack_mod.up(s)
        yield s
    finally:
        stack_mod.down(s)


@pytest.fixture
def spare_nginx(stack, tmp_path):
    """A second Nginx in front of the same colours, with its own state dir (the session's stays whole)."""
    port, admin_port = free_ports(2)
    spare = dataclasses.replace(
        stack,
        var_dir=tmp_path / "var",
        state_dir=tmp_path / "state",
        nginx=dataclasses.replace(stack.nginx, port=port, admin_port=admin_port),
    )
    initialise(spare)
    for colour in stack.colours:  # the running colours' TorchServe keys, where this Nginx reads them at start
        spare.key_file(colour).parent.mkdir(parents=True)
        shutil.copy(stack.key_file(colour), spare.key_file(colour))
    yield spare
    nginx.stop(spare)
