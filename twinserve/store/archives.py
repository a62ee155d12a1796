"""Where a model version's archive and metadata are, and building the missing ones."""

import os
import subprocess
import sys
from pathlib import Path

from archiver.build import ArchiveError, BuiltArchive, archive_path, build_archive, read_metadata
from twinserve.errors import ConfigError, TwinserveError
from twinserve.settings import Stack, project_dir


def archive_for(stack: Stack, model: str, version: str) -> tuple[Path, dict]:
    """The archive of model:version in the model store, with its metadata."""
    path = archive_path(stack.model_store, model, version)
    if not path.is_file():
        raise ConfigError(f"{path} not found; build it: twinserve archive <model dir> --version {version}")
    try:
        return path, read_metadata(path)
    except ArchiveError as exc:
        raise ConfigError(str(exc)) from None


def training(script: Path, seed: int | None = None) -> tuple[list[str], dict]:
    """(argv, environment) that run a model's train.py: it may import the handlers' codecs
    (handlers/) and the archiver (golden cases of any content type) wherever its folder is."""
    argv = [sys.executable, str(script)] + (["--seed", str(seed)] if seed is not None else [])
    root = project_dir()
    return argv, {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "handlers")])}


def train(model_dir: Path) -> None:
    """Run the model's own seeded training script (writes model_dir/artifacts)."""
    script = model_dir / "train.py"
    if not script.is_file():
        raise ConfigError(f"{script} not found: cannot train {model_dir.name}")
    argv, env = training(script)
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise TwinserveError(f"training {model_dir.name} failed: {result.stderr.strip().splitlines()[-1:]}")


def ensure_archive(stack: Stack, model_dir: Path, version: str) -> Path:
    """The archive of model_dir at version: built (and trained first, if never trained) when missing."""
    path = archive_path(stack.model_store, model_dir.name, version)
    if path.is_file():
        return path
    if not (model_dir / "artifacts" / "weights.pt").is_file():
        train(model_dir)
    try:
        built: BuiltArchive = build_archive(model_dir, version, stack.model_store)
    except ArchiveError as exc:
        raise ConfigError(str(exc)) from None
    return built.path


def next_version(stack: Stack, model: str) -> str:
    """One minor version above the highest archived version of `model`."""
    versions = []
    for path in stack.model_store.glob(f"{model}-*.mar"):
        raw = path.stem[len(model) + 1 :]
        try:
            versions.append(tuple(int(p) for p in raw.split(".")))
        except ValueError:
            continue
    if not versions:
        return "1.0"
    major, minor = (max(versions) + (0,))[:2]
    return f"{major}.{minor + 1}"
