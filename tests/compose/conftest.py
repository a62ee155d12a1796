"""The compose stack, for real: Docker Engine, the images `make images` builds, `docker-compose up`.

`make test-compose` runs these (marker `compose`; `make test` does not collect tests/compose).
The session starts Docker Engine if none answers (installing Debian's docker.io if missing)
and stops only what it started; builds the images (cached layers make a rebuild quick);
brings the stack up as project COMPOSE_PROJECT_NAME=twinserve-test with its published ports
moved to free ones on 127.0.0.1, through which every test reaches it; and at the end takes it
down with its volumes, checking that no container or network of the project is left.
"""

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.checkout import REPO_ROOT
from tests.ports import free_ports
from twinserve.compose.images import install_missing

PROJECT = "twinserve-test"
PUBLISHED = ("NGINX", "PROMETHEUS", "ALERTMANAGER", "ALERTS", "GRAFANA")
FIGURES: dict[str, str] = {}  # what the run measured, printed at the end (docs/compose.md quotes them)
LOGS = REPO_ROOT / "var" / "compose"


def free_port() -> int:
    return free_ports(1)[0]


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def engine():
    """A running Docker Engine; one started here is stopped at the end."""
    if engine_answers():
        yield None
        return
    install_missing()
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "dockerd.log").open("ab") as log:
        dockerd = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not engine_answers():
        assert dockerd.poll() is None and time.monotonic() < deadline, f"dockerd did not start; see {LOGS}"
        time.sleep(0.5)
    yield dockerd.pid
    dockerd.terminate()
    dockerd.wait(timeout=60)


@pytest.fixture(scope="session")
def images(engine):
    """`make images`: its output goes to var/compose/images.log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with (LOGS / "images.log").open("w") as log:
        built = subprocess.run([sys.executable, "-m", "twinserve", "images"], stdout=log, stderr=subprocess.STDOUT)
    assert built.returncode == 0, (LOGS / "images.log").read_text()[-3000:]
    FIGURES["make images"] = f"{time.monotonic() - start:.0f} s"
    for line in (LOGS / "images.log").read_text().splitlines():
        if line.startswith(("base:", "wheelhouse:", "twinserve")):
            name, value = line.split(None, 1)
            name = name.rstrip(":")
            FIGURES[name] = "; ".join(filter(None, (FIGURES.get(name), value.strip())))
    return time.monotonic() - start


class Compose:
    """docker-compose on the test project, with the host ports it published."""

    def __init__(self):
        self.figures = FIGURES
        self.ports = {name: free_port() for name in PUBLISHED}
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "TWINSERVE_MODE": "compose",
            **{f"TWINSERVE_PUBLISH_{name}": str(port) for name, port in self.ports.items()},
        }

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        argv = ["docker-compose", "-f", str(REPO_ROOT / "docker-compose.yml"), *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert not check or done.returncode == 0, f"{' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    def script(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO_ROOT / "scripts" / name), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def containers(self, *filters: str) -> list[dict]:
        ids = self.run("ps", "-q", *filters).stdout.split()
        if not ids:
            return []
        return json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout)

    def unhealthy(self) -> list[str]:
        """Running services whose healthcheck does not (yet) say healthy."""
        return [
            c["Name"] for c in self.containers()
            if c["State"]["Status"] == "running" and c["State"].get("Health", {}).get("Status") != "healthy"
        ]  # fmt: skip

    def up(self, timeout: float = 300) -> float:
        """`up -d`, then wait until every service is healthy; returns the seconds it took."""
        start = time.monotonic()
        self.run("up", "-d", "--no-build")
        while True:
            running = [c for c in self.containers() if c["State"]["Status"] == "running"]
            waiting = self.unhealthy()
            if running and not waiting:
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, f"not healthy after {timeout:.0f}s: {waiting}"
            time.sleep(1)

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={PROJECT}"
        found = []
        for kind in (["ps", "-a"], ["network", "ls"]):
            out = subprocess.run(["docker", *kind, "-q", "--filter", label], capture_output=True, text=True)
            found += out.stdout.split()
        return found


@pytest.fixture(scope="session")
def compose(images):
    stack = Compose()
    stack.run("down", "-v", "--remove-orphans")
    stack.seconds_to_healthy = stack.up()
    try:
        yield stack
    finally:
        logs = stack.run("logs", "--no-color", "--tail", "200", check=False)
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / "stack.log").write_text(logs.stdout)
        stack.run("down", "-v", "--remove-orphans", check=False)


def pytest_collection_modifyitems(config, items):
    """A bare `pytest` collects tests/ whole: these run only when asked for (`-m compose`)."""
    if "compose" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="builds images and runs Docker: `make test-compose` (-m compose)")
    for item in items:
        if "compose" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("compose stack: measured")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


def prometheus(compose: Compose, query: str) -> list:
    answer = requests.get(f"{compose.url('PROMETHEUS')}/api/v1/query", params={"query": query}, timeout=10)
    return answer.json()["data"]["result"]
