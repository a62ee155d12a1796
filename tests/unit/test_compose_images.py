"""`make images` (twinserve/compose/images.py) without an engine: what it installs, and how it chooses a base."""

import subprocess
import tomllib

import pytest

from tests.checkout import REPO_ROOT
from twinserve.compose import images
from twinserve.errors import ServiceError


def test_the_image_installs_pyproject_s_pins_torch_apart_and_no_test_tool():
    torch, others = images.pins()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert torch == [d for d in project["dependencies"] if d.startswith("torch==")] == ["torch==2.13.0"]
    assert set(project["dependencies"]) - set(torch) <= set(others), "every runtime pin is in the image"
    assert "locust==2.47.0" in others, "the pipeline's load gate and the loadtest profile run Locust"
    assert not [p for p in others if p.split("==")[0].split("[")[0] in images.NOT_IN_IMAGE]
    assert all("==" in p for p in torch + others)


def test_the_twinserve_dockerfile_installs_each_wheel_folder_with_no_index():
    text = (REPO_ROOT / "compose" / "twinserve" / "Dockerfile").read_text()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert len(installs) == 2 and all("--no-index" in line for line in installs)
    assert text.index("COPY torch/") < text.index("COPY app/"), "torch's layer first: it changes least"
    assert "COPY --from=venv /opt/twinserve /opt/twinserve" in text, "no wheel is left in the final image"


class FakeDocker:
    """What `docker image inspect` / `docker pull` answer, recorded."""

    def __init__(self, present=(), pullable=()):
        self.present, self.pullable, self.calls = set(present), set(pullable), []

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        name = argv[-1]
        ok = name in self.present if argv[1:3] == ["image", "inspect"] else name in self.pullable
        return subprocess.CompletedProcess(argv, 0 if ok else 1, "", "" if ok else "Error: no such host")


@pytest.fixture
def docker(monkeypatch):
    def install(**kwargs):
        fake = FakeDocker(**kwargs)
        monkeypatch.setattr(images.subprocess, "run", fake)
        made = []
        monkeypatch.setattr(images, "make_debootstrap_base", made.append)
        fake.made = made
        return fake

    return install


def test_a_base_docker_has_is_used_as_is(docker, capsys):
    fake = docker(present={"debian:bookworm-slim"})
    assert images.ensure_base("debian:bookworm-slim") == "debian:bookworm-slim"
    assert "already in Docker" in capsys.readouterr().out and not fake.made


def test_a_pullable_base_is_pulled(docker, capsys):
    fake = docker(pullable={"debian:bookworm-slim"})
    assert images.ensure_base("debian:bookworm-slim") == "debian:bookworm-slim"
    assert "(pulled)" in capsys.readouterr().out and not fake.made


def test_without_a_registry_the_base_is_debootstrapped_once(docker, capsys):
    fake = docker()
    assert images.ensure_base(images.DEFAULT_BASE) == images.DEBOOTSTRAP_TAG
    assert fake.made == [images.DEBOOTSTRAP_TAG]
    assert "made now with debootstrap (debian:bookworm-slim cannot be pulled: no such host)" in capsys.readouterr().out
    fake = docker(present={images.DEBOOTSTRAP_TAG})
    assert images.ensure_base(images.DEFAULT_BASE) == images.DEBOOTSTRAP_TAG and not fake.made


def test_a_chosen_base_that_cannot_be_had_is_an_error(docker):
    fake = docker()
    with pytest.raises(ServiceError, match="cannot pull BASE_IMAGE=ubuntu:24.04"):
        images.ensure_base("ubuntu:24.04")
    assert not fake.made


def test_make_images_passes_base_image_through():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert '$(PY) -m twinserve images $(if $(BASE_IMAGE),--base "$(BASE_IMAGE)")' in makefile
