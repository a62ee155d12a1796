"""What the twinserve.kube tests share: the objects kustomize builds from each kustomization, and a copy
of the project (the files the renderer reads) under tmp, to break or move things in."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.checkout import REPO_ROOT

KUBECTL = str(Path(sys.executable).parent / "kubectl")  # pyproject.toml's dev extra


def built(directory: Path) -> list[dict]:
    """`kubectl kustomize directory`, as objects."""
    out = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def project_copy(root: Path) -> Path:
    """The stack descriptions, templates, rules, model configs and manifests of this checkout, under root."""
    for folder in ("config", "nginx", "deploy"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    for config in REPO_ROOT.glob("models/*/model-config.yaml"):
        (root / config.parent.relative_to(REPO_ROOT)).mkdir(parents=True)
        shutil.copy(config, root / config.relative_to(REPO_ROOT))
    return root
