"""`docker-compose config` (Debian's docker-compose 1.29; no engine needed) validates the file and every profile."""

import shutil
import subprocess

import pytest
import yaml

from tests.checkout import REPO_ROOT
from twinserve.compose.configs import COMPOSE_FILE

DOCKER_COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose not installed (make install)")
PROFILES = sorted(
    {
        p
        for s in yaml.safe_load((REPO_ROOT / COMPOSE_FILE).read_text())["services"].values()
        for p in s.get("profiles", [])
    }
)


def config(*args, compose_file=REPO_ROOT / COMPOSE_FILE) -> subprocess.CompletedProcess:
    argv = [DOCKER_COMPOSE, "-f", str(compose_file), "--project-directory", str(REPO_ROOT), *args, "config"]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_docker_compose_validates_the_file(profile):
    result = config(*(["--profile", profile] if profile else []))
    assert result.returncode == 0, result.stderr
    normalized = yaml.safe_load(result.stdout)
    services = normalized["services"]
    assert all("healthcheck" in s for s in services.values())
    if profile:
        assert any(profile in s.get("profiles", []) for s in services.values())


def test_docker_compose_resolves_the_anchors_to_distinct_colours():
    services = yaml.safe_load(config().stdout)["services"]
    colours = {
        name: s["environment"]["TWINSERVE_COLOUR"] for name, s in services.items() if name.startswith("torchserve")
    }
    assert colours == {"torchserve_blue": "blue", "torchserve_green": "green"}
    assert services["torchserve_blue"]["environment"]["TWINSERVE_STACK"] == "/twinserve/config/stack.compose.yaml"


def test_docker_compose_rejects_a_broken_file(tmp_path):
    """The check above is not vacuous: the same tool refuses an invalid service."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (REPO_ROOT / COMPOSE_FILE).read_text().replace("    restart: unless-stopped\n", "    restart: 3\n", 1)
    )
    result = config(compose_file=broken)
    assert result.returncode != 0
    assert "restart" in result.stderr


def test_the_profiles_make_compose_config_walks_are_the_file_s():
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(REPO_ROOT / COMPOSE_FILE), "config", "--profiles"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.stdout.split() == PROFILES == ["control", "grafana", "kafka", "loadtest", "simulator"]
    assert "docker-compose config --profiles" in (REPO_ROOT / "Makefile").read_text()
